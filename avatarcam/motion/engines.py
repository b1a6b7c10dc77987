"""TensorRT engines for the motion model: where they live, how they are built, which runtime runs.

An engine is compiled for one GPU model by one TensorRT version from one set of weights, so it
is built on the user's machine (``python -m engines.build``) and cached per GPU and TensorRT
version in the user cache directory (`Settings.cache_dir`), named by the weights' hash:

    <cache>/engines/<gpu>/trt-<version>/audio_encoder-<sha12>.engine
    <cache>/engines/<gpu>/trt-<version>/denoiser-<sha12>.engine
    <cache>/engines/<gpu>/trt-<version>/timing.cache    (kernel timings: a rebuild takes seconds)

A retrained model, another GPU or another TensorRT then simply finds no engine and falls back
to numpy, instead of loading one that does not match. `best_network` makes that choice and says
it in one log line.

Engines are built as strongly typed networks from the FP32 ONNX graphs: TensorRT 11 has no FP16
builder flag any more (precision belongs to the graph), and FP32 without TF32 keeps the sampler's
outputs within 1e-3 of numpy's. The network is so small (under 1M parameters, at most 48 tokens)
that reduced precision would buy little.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from avatarcam.motion import onnx_export
from avatarcam.motion.network import Config, Network

log = logging.getLogger(__name__)

TIMING_CACHE = "timing.cache"
BUILD_COMMAND = "avatarcam engines (or python -m engines.build)"
TOLERANCE = 1e-3  # the engines' largest difference from numpy that `check` accepts


@dataclass(frozen=True)
class EnginePaths:
    directory: Path
    audio: Path
    denoiser: Path
    timing_cache: Path

    def exist(self) -> bool:
        return self.audio.is_file() and self.denoiser.is_file()


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


def _cache_dir(settings=None) -> Path:
    from avatarcam.config import load_settings

    return Path((settings if settings is not None else load_settings()).cache_dir)


def paths_here(model_sha256: str, settings=None) -> EnginePaths | str:
    """This machine's engine paths for the weights, or why there can be none (a sentence)."""
    version = tensorrt_version()
    if version is None:
        return "TensorRT is not installed (pip install 'avatarcam[gpu]')"
    gpu = gpu_name()
    if gpu is None:
        return "no NVIDIA GPU found"
    return engine_paths(_cache_dir(settings), gpu, version, model_sha256)


def best_network(weights: str | Path | None = None, settings=None):
    """The motion network on the fastest runtime this machine has: TensorRT when engines for
    this GPU, TensorRT version and weights exist, else numpy. One log line says which, and why."""
    from avatarcam.motion.backends import TrtNetwork

    weights = Path(weights) if weights is not None else onnx_export.shipped_weights()
    net = Network.load(weights)
    where = paths_here(onnx_export.model_sha256(weights), settings)
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


# ---------------------------------------------------------------------------------------------
# Building

def denoiser_profile(config: Config, opt_chunk: int = 2) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Input shapes (min, opt, max) the denoiser engine must take: 1..MAX_BATCH guidance branches,
    chunks of 1..max_chunk frames, tuned for one branch and the live chunk of `opt_chunk` frames."""
    from avatarcam import latent

    b_max, c_max, p = onnx_export.MAX_BATCH, config.max_chunk, config.past

    def span(*dims):  # dims: ("b" | "c" | "n" | int) per axis
        def at(b, c):
            return tuple(b if d == "b" else c if d == "c" else p + c if d == "n" else d for d in dims)
        return at(1, 1), at(1, opt_chunk), at(b_max, c_max)

    return {"noisy": span("b", "c", latent.DIM), "past": span("b", p, latent.DIM),
            "audio": span("b", "n", config.width), "controls": span("b", config.controls + 1),
            "t": span("b"), "audio_on": span("b"), "cues": span("b", "n", config.cues)}


def audio_profile(config: Config) -> dict[str, tuple[tuple[int, ...], ...]]:
    from avatarcam.audio import mel

    w = (config.mel_window, mel.BANDS)
    return {"windows": ((1, *w), (config.past + 2, *w), (onnx_export.MAX_TOKENS, *w))}


def build_engine(onnx_path: Path, engine_path: Path, profile: dict[str, tuple[tuple[int, ...], ...]],
                 timing_cache: Path) -> Path:
    """Compile one ONNX graph into a TensorRT engine for the GPU at hand (TensorRT 10 or 11)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if typed is not None:  # required for strong typing on 10.x, accepted (and always on) in 11.x
        flags |= 1 << int(typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # full FP32: the 1e-3 agreement with numpy
    timings = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(timings, ignore_mismatch=False)
    shapes = builder.create_optimization_profile()
    for name, (low, opt, high) in profile.items():
        shapes.set_shape(name, low, opt, high)
    config.add_optimization_profile(shapes)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT could not build an engine from {onnx_path} (see its messages above)")
    _write(engine_path, bytes(plan))
    _write(timing_cache, bytes(config.get_timing_cache().serialize()))
    return engine_path


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # a reader never sees half an engine


def build(weights: str | Path | None = None, settings=None, onnx_dir: str | Path | None = None,
          force: bool = False) -> EnginePaths:
    """Export the model to ONNX (unless `onnx_dir` already holds it) and build both engines for
    this GPU into the cache; returns where they are. Raises with what is missing when it cannot."""
    weights = Path(weights) if weights is not None else onnx_export.shipped_weights()
    sha = onnx_export.model_sha256(weights)
    where = paths_here(sha, settings)
    if isinstance(where, str):
        raise RuntimeError(f"cannot build TensorRT engines here: {where}")
    if where.exist() and not force:
        return where
    net = Network.load(weights)
    onnx_dir = Path(onnx_dir) if onnx_dir is not None else where.directory / f"onnx-{sha[:12]}"
    audio_onnx, denoiser_onnx = onnx_dir / onnx_export.AUDIO_FILE, onnx_dir / onnx_export.DENOISER_FILE
    if force or not (audio_onnx.is_file() and denoiser_onnx.is_file()):
        onnx_export.export(net, onnx_dir, sha)
    build_engine(audio_onnx, where.audio, audio_profile(net.config), where.timing_cache)
    build_engine(denoiser_onnx, where.denoiser, denoiser_profile(net.config), where.timing_cache)
    return where


def check(paths: EnginePaths, weights: str | Path | None = None) -> float:
    """Run the engines against numpy on random inputs of each shape class the sampler uses (one
    and three guidance branches, chunks of 1, 2 and 32 frames); returns the largest difference,
    raises RuntimeError beyond TOLERANCE or if the engines fail."""
    import numpy as np

    from avatarcam.audio import mel
    from avatarcam.motion.backends import TrtNetwork

    net = Network.load(weights if weights is not None else onnx_export.shipped_weights())
    trt_net = TrtNetwork.load(paths.audio, paths.denoiser, net)
    rng = np.random.default_rng(0)
    windows = (rng.standard_normal((40, net.config.mel_window, mel.BANDS)) * 15 - 60).astype(np.float32)
    worst = float(np.abs(trt_net.audio_tokens(windows) - net.audio_tokens(windows)).max())
    for batch, chunk in ((1, 1), (1, 2), (3, 2), (1, 32), (3, 32)):
        ex = onnx_export.example_inputs(net.config, batch, chunk, seed=batch * 100 + chunk)
        args = [ex[k] for k in onnx_export.DENOISER_INPUTS]
        worst = max(worst, float(np.abs(trt_net(*args) - net(*args)).max()))
    if trt_net.failed:
        raise RuntimeError("the engines failed to run (see the warning above)")
    if worst > TOLERANCE:
        raise RuntimeError(f"TensorRT differs from numpy by {worst:.2e} (> {TOLERANCE})")
    return worst
