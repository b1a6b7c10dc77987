"""Build the motion model's TensorRT engines for the GPU at hand.

    python -m engines.build [--weights motion.safetensors] [--onnx-dir DIR] [--force] [--check]

Exports the denoiser and its audio encoder to ONNX (needs torch, onnx, onnxscript: the `test` or
`train` extra), compiles both with TensorRT 10 or 11 (the `gpu` extra) and stores them in the user
cache directory under this GPU's name and TensorRT version, beside a timing cache that makes the
next build fast. `--check` then runs the engines against numpy on random inputs of every shape
class (one and three guidance branches, chunks of 1, 2 and 32 frames) and fails beyond 1e-3.
The motion engine picks the engines up by itself (`avatarcam.motion.engines.best_network`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from avatarcam.motion import engines, onnx_export  # noqa: E402
from avatarcam.motion.network import Network  # noqa: E402

TOLERANCE = 1e-3


def check(paths: engines.EnginePaths, weights: Path) -> float:
    """Largest difference between the engines and numpy over a few shapes; raises beyond TOLERANCE."""
    from avatarcam.audio import mel
    from avatarcam.motion.backends import TrtNetwork

    net = Network.load(weights)
    trt_net = TrtNetwork.load(paths.audio, paths.denoiser, net)
    rng = np.random.default_rng(0)
    worst = 0.0
    windows = (rng.standard_normal((40, net.config.mel_window, mel.BANDS)) * 15 - 60).astype(np.float32)
    worst = max(worst, float(np.abs(trt_net.audio_tokens(windows) - net.audio_tokens(windows)).max()))
    for batch, chunk in ((1, 1), (1, 2), (3, 2), (1, 32), (3, 32)):
        ex = onnx_export.example_inputs(net.config, batch, chunk, seed=batch * 100 + chunk)
        args = [ex[k] for k in onnx_export.DENOISER_INPUTS]
        worst = max(worst, float(np.abs(trt_net(*args) - net(*args)).max()))
    if trt_net.failed:
        raise RuntimeError("the engines failed to run (see the warning above)")
    if worst > TOLERANCE:
        raise RuntimeError(f"TensorRT differs from numpy by {worst:.2e} (> {TOLERANCE})")
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.build", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None, help="motion model (default: the shipped one)")
    p.add_argument("--onnx-dir", type=Path, default=None, help="where the ONNX graphs are, or go")
    p.add_argument("--force", action="store_true", help="rebuild even if engines exist")
    p.add_argument("--check", action="store_true", help="compare the engines with numpy afterwards")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    weights = args.weights or onnx_export.shipped_weights()
    start = time.perf_counter()
    try:
        paths = engines.build(weights, onnx_dir=args.onnx_dir, force=args.force)
    except (RuntimeError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"engines for {engines.gpu_name()} (TensorRT {engines.tensorrt_version()}) in {paths.directory} "
          f"({time.perf_counter() - start:.1f} s)")
    if args.check:
        try:
            worst = check(paths, weights)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"check: largest difference from numpy {worst:.2e} (bar {TOLERANCE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
