"""The motion model on TensorRT: its ONNX export (`onnx_export`) and the engine build (`build`).

`python -m avatarcam.engines --check` (or `avatarcam engines`) exports the shipped motion model to
ONNX and builds TensorRT engines for this machine's GPU into the user cache directory
(`~/.cache/avatarcam/engines/<gpu>/trt-<version>/` on Linux), with a timing cache beside them.
Built files are never committed: an engine is only valid for one GPU model, one TensorRT version
and one set of weights, and its name says all three. The runtime that loads them is
`avatarcam.motion` (`runtime`, `backends`), which never imports this package: building needs
torch and the training code, running does not.

Needs: an NVIDIA GPU and driver, and `pip install 'avatarcam[gpu]'` (CuPy, TensorRT, and the
exporter's torch, onnx and onnxscript).
"""
