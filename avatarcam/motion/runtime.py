"""Which runtime runs the motion network: TensorRT engines built for this GPU, else numpy.

An engine is compiled for one GPU model by one TensorRT version from one set of weights, so it
is built on the user's machine (`avatarcam.engines`) and cached per GPU and TensorRT version in
the user cache directory (`Settings.cache_dir`), named by the weights' hash:

    <cache>/engines/<gpu>/trt-<version>/audio_encoder-<sha12>.engine
    <cache>/engines/<gpu>/trt-<version>/denoiser-<sha12>.engine
    <cache>/engines/<gpu>/trt-<version>/timing.cache    (kernel timings: a rebuild takes seconds)

A retrained model, another GPU or another TensorRT then simply finds no engine and falls back
to numpy, instead of loading one that does not match. `best_network` makes that choice and says
it in one log line. This module only reads the cache; `avatarcam.engines.build` fills it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from avatarcam.config import Settings
from avatarcam.motion.backends import TrtNetwork
from avatarcam.motion.network import MotionNetwork, Network, shipped_weights

log = logging.getLogger(__name__)

TIMING_CACHE = "timing.cache"
BUILD_COMMAND = "avatarcam engines (or python -m avatarcam.engines)"


@dataclass(frozen=True)
class EnginePaths:
    directory: Path
    audio: Path
    denoiser: Path
    timing_cache: Path

    def exist(self) -> bool:
        return self.audio.is_file() and self.denoiser.is_file()


def model_sha256(weights: str | Path) -> str:
    return hashlib.sha256(Path(weights).read_bytes()).hexdigest()


def slug(text: str) -> str:
    """A file-name-safe form of a GPU name or version: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "unknown"


def engine_paths(cache_dir: str | Path, gpu: str, trt_version: str, model_sha256: str) -> EnginePaths:
    directory = Path(cache_dir) / "engines" / slug(gpu) / f"trt-{slug(trt_version)}"
    tag = model_sha256[:12]
    return EnginePaths(directory, directory / f"audio_encoder-{tag}.engine", directory / f"denoiser-{tag}.engine",
                       directory / TIMING_CACHE)


@cache
def gpu_name() -> str | None:
    """The first NVIDIA GPU's name, or None when there is none (or no driver to ask)."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
            return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no device: ask nvidia-smi, else none
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0].strip() if out and out[0].strip() else None


def tensorrt_version() -> str | None:
    try:
        import tensorrt
    except Exception:  # noqa: BLE001 - a broken install is as good as none here
        return None
    return str(tensorrt.__version__)


def paths_here(model_sha256: str, settings: Settings) -> EnginePaths | str:
    """This machine's engine paths for the weights in `settings`' cache, or why there can be none (a sentence)."""
    version = tensorrt_version()
    if version is None:
        return "TensorRT is not installed (pip install 'avatarcam[gpu]')"
    gpu = gpu_name()
    if gpu is None:
        return "no NVIDIA GPU found"
    return engine_paths(Path(settings.cache_dir), gpu, version, model_sha256)


def best_network(weights: str | Path | None = None, settings: Settings | None = None) -> MotionNetwork:
    """The motion network on the fastest runtime this machine has: TensorRT when engines for this
    GPU, TensorRT version and weights exist in `settings`' cache, else numpy (always, without
    settings to name the cache). One log line says which, and why."""
    weights = Path(weights) if weights is not None else shipped_weights()
    net = Network.load(weights)
    where = "no engine cache named" if settings is None else paths_here(model_sha256(weights), settings)
    if isinstance(where, EnginePaths) and not where.exist():
        where = f"no TensorRT engine for this GPU and model yet (build one: {BUILD_COMMAND})"
    if isinstance(where, EnginePaths):
        try:
            trt_net = TrtNetwork.load(where.audio, where.denoiser, net)
        except Exception as e:  # noqa: BLE001 - a stale or broken engine must not stop the avatar
            where = f"the TensorRT engine in {where.directory} did not load ({e}); rebuild it: {BUILD_COMMAND}"
        else:
            log.info("motion model: TensorRT on %s (%s)", gpu_name(), where.directory)
            return trt_net
    log.info("motion model: numpy on the CPU, %s", where)
    return net
