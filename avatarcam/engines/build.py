"""The motion model's TensorRT engines, built for the GPU at hand from its ONNX export.

Where the engines go (per GPU, TensorRT version and weights) and which runtime runs them is the
runtime's business (`avatarcam.motion.runtime`); this module fills that cache.

Engines are built as strongly typed networks from the FP32 ONNX graphs: TensorRT 11 has no FP16
builder flag any more (precision belongs to the graph), and FP32 without TF32 keeps the sampler's
outputs within 1e-3 of numpy's. The network is so small (under 1M parameters, at most 48 tokens)
that reduced precision would buy little.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatarcam import latent
from avatarcam.audio import mel
from avatarcam.config import Settings
from avatarcam.engines import onnx_export
from avatarcam.motion.backends import AUDIO_INPUTS, DENOISER_INPUTS, MAX_TOKENS, TrtNetwork
from avatarcam.motion.network import Config, Network, shipped_weights
from avatarcam.motion.runtime import EnginePaths, model_sha256, paths_here

TOLERANCE = 1e-3  # the engines' largest difference from numpy that `check` accepts


def denoiser_profile(config: Config, opt_chunk: int = 2) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Input shapes (min, opt, max) the denoiser engine must take: 1..MAX_BATCH guidance branches,
    chunks of 1..max_chunk frames, tuned for one branch and the live chunk of `opt_chunk` frames."""
    b_max, c_max, p = onnx_export.MAX_BATCH, config.max_chunk, config.past

    def span(*dims):  # dims: ("b" | "c" | "n" | int) per axis
        def at(b, c):
            return tuple(b if d == "b" else c if d == "c" else p + c if d == "n" else d for d in dims)
        return at(1, 1), at(1, opt_chunk), at(b_max, c_max)

    return {"noisy": span("b", "c", latent.DIM), "past": span("b", p, latent.DIM),
            "audio": span("b", "n", config.width), "controls": span("b", config.controls + 1),
            "t": span("b"), "audio_on": span("b"), "cues": span("b", "n", config.cues)}


def audio_profile(config: Config) -> dict[str, tuple[tuple[int, ...], ...]]:
    w = (config.mel_window, mel.BANDS)
    return {AUDIO_INPUTS[0]: ((1, *w), (config.past + 2, *w), (MAX_TOKENS, *w))}


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


def build(weights: str | Path | None, settings: Settings, onnx_dir: str | Path | None = None,
          force: bool = False) -> EnginePaths:
    """Export the model to ONNX (unless `onnx_dir` already holds it) and build both engines for
    this GPU into the cache; returns where they are. Raises with what is missing when it cannot."""
    weights = Path(weights) if weights is not None else shipped_weights()
    sha = model_sha256(weights)
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
    net = Network.load(weights if weights is not None else shipped_weights())
    trt_net = TrtNetwork.load(paths.audio, paths.denoiser, net)
    rng = np.random.default_rng(0)
    windows = (rng.standard_normal((40, net.config.mel_window, mel.BANDS)) * 15 - 60).astype(np.float32)
    worst = float(np.abs(trt_net.audio_tokens(windows) - net.audio_tokens(windows)).max())
    for batch, chunk in ((1, 1), (1, 2), (3, 2), (1, 32), (3, 32)):
        ex = onnx_export.example_inputs(net.config, batch, chunk, seed=batch * 100 + chunk)
        args = [ex[k] for k in DENOISER_INPUTS]
        worst = max(worst, float(np.abs(trt_net(*args) - net(*args)).max()))
    if trt_net.failed:
        raise RuntimeError("the engines failed to run (see the warning above)")
    if worst > TOLERANCE:
        raise RuntimeError(f"TensorRT differs from numpy by {worst:.2e} (> {TOLERANCE})")
    return worst
