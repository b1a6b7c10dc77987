"""Build the motion model's TensorRT engines for the GPU at hand.

    python -m avatarcam.engines [--weights motion.safetensors] [--onnx-dir DIR] [--force] [--check]

Exports the denoiser and its audio encoder to ONNX (torch, onnx and onnxscript, all in the `gpu`
extra), compiles both with TensorRT 10 or 11 and stores them in the user cache directory under
this GPU's name and TensorRT version, beside a timing cache that makes the next build fast.
`--check` then runs the engines against numpy on random inputs of every shape class (one and
three guidance branches, chunks of 1, 2 and 32 frames) and fails beyond 1e-3.
The motion engine picks the engines up by itself (`avatarcam.motion.runtime.best_network`).
`avatarcam engines` is the same command, always with the check.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from avatarcam.config import load_settings
from avatarcam.engines import build
from avatarcam.motion.network import shipped_weights
from avatarcam.motion.runtime import gpu_name, tensorrt_version


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m avatarcam.engines", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None, help="motion model (default: the shipped one)")
    p.add_argument("--onnx-dir", type=Path, default=None, help="where the ONNX graphs are, or go")
    p.add_argument("--force", action="store_true", help="rebuild even if engines exist")
    p.add_argument("--check", action="store_true", help="compare the engines with numpy afterwards")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    weights = args.weights or shipped_weights()
    start = time.perf_counter()
    try:
        paths = build.build(weights, load_settings(), onnx_dir=args.onnx_dir, force=args.force)
    except (RuntimeError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"engines for {gpu_name()} (TensorRT {tensorrt_version()}) in {paths.directory} "
          f"({time.perf_counter() - start:.1f} s)")
    if args.check:
        try:
            worst = build.check(paths, weights)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"check: largest difference from numpy {worst:.2e} (bar {build.TOLERANCE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
