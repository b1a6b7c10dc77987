"""Other runtimes for the motion network: onnxruntime and TensorRT, behind `Network`'s interface.

`DiffusionEngine` only calls ``net.audio_tokens(windows)``, ``net(noisy, past, audio, controls, t,
audio_on, cues)`` and ``net.lip_shapes(windows)``, and reads ``net.config`` and
``net.stats`` (`MotionNetwork`); these classes offer exactly that, the first two over the graphs
`avatarcam.engines` exports, so the sampler runs unchanged on any of them. The numpy `Network`
stays the reference and the fallback, and runs the lip head (one small MLP per frame) everywhere.
The graphs' inputs are named here, where they are fed, and the exporter names them from here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from avatarcam.motion.network import Config, Network

log = logging.getLogger(__name__)

AUDIO_INPUTS = ("windows",)
DENOISER_INPUTS = ("noisy", "past", "audio", "controls", "t", "audio_on", "cues")
MAX_TOKENS = 4096  # audio windows one engine call takes (a whole clip's frames, offline)


def _cues(cues: np.ndarray | None, like: np.ndarray, config: Config) -> np.ndarray:
    """The cues input: the graph always takes one (zeros mean none given, as in `Network`)."""
    if cues is not None:
        return np.ascontiguousarray(cues, np.float32)
    return np.zeros((*like.shape[:2], config.cues), np.float32)


def _inputs(config: Config, noisy, past, audio, controls, t, audio_on, cues) -> dict[str, np.ndarray]:
    f = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
    values = (f(noisy), f(past), f(audio), f(controls), f(t), f(audio_on), _cues(cues, audio, config))
    return dict(zip(DENOISER_INPUTS, values, strict=True))


class OnnxNetwork:
    """The exported graphs on onnxruntime (CPU by default; CUDA where onnxruntime-gpu has it)."""

    def __init__(self, audio: str | Path, denoiser: str | Path, network: Network,
                 providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # the graphs are fine; ort's notes about them are noise to a user
        providers = providers or ["CPUExecutionProvider"]
        self._audio = ort.InferenceSession(str(audio), options, providers=providers)
        self._denoiser = ort.InferenceSession(str(denoiser), options, providers=providers)
        self.config, self.stats = network.config, network.stats
        self.lip_shapes = network.lip_shapes

    def audio_tokens(self, windows: np.ndarray) -> np.ndarray:
        lead = windows.shape[:-2]
        flat = np.ascontiguousarray(windows, np.float32).reshape(-1, *windows.shape[-2:])
        if len(flat) == 0:
            return np.zeros((*lead, self.config.width), np.float32)
        return self._audio.run(None, {AUDIO_INPUTS[0]: flat})[0].reshape(*lead, self.config.width)

    def __call__(self, noisy, past, audio, controls, t, audio_on, cues=None) -> np.ndarray:
        return self._denoiser.run(None, _inputs(self.config, noisy, past, audio, controls, t, audio_on, cues))[0]


class _TrtEngine:
    """One deserialised TensorRT engine with its execution context, run on a CuPy stream."""

    def __init__(self, path: Path) -> None:
        import cupy as cp
        import tensorrt as trt

        self._cp = cp
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not load {path} (built by another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.stream = cp.cuda.Stream(non_blocking=True)

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        cp = self._cp
        with self.stream:
            held = []  # device copies must outlive the launch
            for name, value in inputs.items():
                d = cp.asarray(value)
                held.append(d)
                self.context.set_input_shape(name, tuple(value.shape))
                self.context.set_tensor_address(name, d.data.ptr)
            name = self.outputs[0]
            out = cp.empty(tuple(self.context.get_tensor_shape(name)), cp.float32)
            self.context.set_tensor_address(name, out.data.ptr)
            if not self.context.execute_async_v3(self.stream.ptr):
                raise RuntimeError("TensorRT refused to run the motion model's engine")
            host = out.get(stream=self.stream)
            self.stream.synchronize()
        return host


class TrtNetwork:
    """The motion network on TensorRT engines, falling back to `fallback` (numpy) for good if the GPU
    fails mid-stream: a talking avatar that keeps moving beats one that stops with an error.

    `audio` and `denoiser` are anything with ``run(inputs: dict) -> array`` (`_TrtEngine`s, from
    `load`); the fallback gives the config and the normalisation statistics.
    """

    def __init__(self, audio, denoiser, fallback: Network) -> None:
        self._audio, self._denoiser = audio, denoiser
        self.fallback = fallback
        self.config, self.stats = fallback.config, fallback.stats
        self.lip_shapes = fallback.lip_shapes
        self.failed = False

    @classmethod
    def load(cls, audio: str | Path, denoiser: str | Path, fallback: Network) -> TrtNetwork:
        return cls(_TrtEngine(Path(audio)), _TrtEngine(Path(denoiser)), fallback)

    def _guarded(self, gpu, cpu):
        if not self.failed:
            try:
                return gpu()
            except Exception as e:  # noqa: BLE001 - any GPU error: the CPU can carry on
                self.failed = True
                log.warning("motion model: TensorRT failed (%s); continuing on the CPU (numpy)", e)
        return cpu()

    def audio_tokens(self, windows: np.ndarray) -> np.ndarray:
        def gpu():
            lead = windows.shape[:-2]
            flat = np.ascontiguousarray(windows, np.float32).reshape(-1, *windows.shape[-2:])
            if len(flat) == 0:
                return np.zeros((*lead, self.config.width), np.float32)
            parts = [self._audio.run({AUDIO_INPUTS[0]: flat[i:i + MAX_TOKENS]})
                     for i in range(0, len(flat), MAX_TOKENS)]
            return np.concatenate(parts).reshape(*lead, self.config.width)

        return self._guarded(gpu, lambda: self.fallback.audio_tokens(windows))

    def __call__(self, noisy, past, audio, controls, t, audio_on, cues=None) -> np.ndarray:
        args = (noisy, past, audio, controls, t, audio_on, cues)
        return self._guarded(lambda: self._denoiser.run(_inputs(self.config, *args)),
                             lambda: self.fallback(*args))
