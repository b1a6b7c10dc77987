"""The frame chain: audio chunks -> motion -> renderer -> sink.

One code path, two drivers: `render_file` feeds it a whole file as fast as it can; the live
daemon feeds it microphone chunks on a clock. Neither knows how motion or pixels are made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

import numpy as np

from . import latent
from .camera.sinks import Sink
from .errors import AvatarCamError

if TYPE_CHECKING:
    from .provenance.stamp import Provenance

log = logging.getLogger(__name__)

ENGINES = ("dsp", "diffusion")
CHUNK_S = 0.02  # audio pushed per step: what a live microphone callback delivers

_POSE_AND_GAZE = slice(0, len(latent.POSE) + len(latent.GAZE))


class MotionEngine(Protocol):
    def push(self, samples: np.ndarray) -> np.ndarray: ...
    def flush(self) -> np.ndarray: ...


class FrameRenderer(Protocol):
    size: tuple[int, int]

    def render(self, frame: np.ndarray) -> np.ndarray: ...


def engine_name(setting: str, fps: int) -> str:
    """The engine a setting means at a frame rate: `auto` is the learned model, live and for files,
    wherever it can make the frames (30 fps or a multiple), else the DSP driver."""
    if setting != "auto":
        return setting
    if fps >= latent.FPS and fps % latent.FPS == 0:
        return "diffusion"
    log.warning("the motion model makes %d fps or a multiple: at %d fps the DSP driver moves the face", latent.FPS, fps)
    return "dsp"


def motion_engine(name: str, seed: int = 0, fps: int = latent.FPS, rate: int = 16000, chunk: int = 1,
                  lookahead_s: float | None = None, steps: int = 2,
                  guidance: tuple[float, float] = (1.0, 1.0)) -> MotionEngine:
    """A streaming motion generator by name; `chunk`, `lookahead_s` (None: all the model can hear),
    `steps` and `guidance` (audio, controls) tune the diffusion model. The DSP driver works at any
    frame rate; the model makes 30 fps, and at a multiple of that (60, 90, 120) the frames in
    between are interpolated (`motion.upsample`). `lookahead_s` is the audio any frame waits for
    past its instant, so the live latency is the same at every frame rate."""
    if name == "dsp":
        from .motion.dsp import DspDriver
        return DspDriver(seed=seed, fps=fps, rate=rate)
    if name != "diffusion":
        raise AvatarCamError(f"unknown motion engine {name!r}: choose one of {', '.join(ENGINES)}")
    if fps < latent.FPS or fps % latent.FPS:
        raise AvatarCamError(f"the motion model makes {latent.FPS} fps: choose {latent.FPS} fps or a multiple of it "
                             f"(60, 90, 120), not {fps}, or the dsp engine")
    from .motion.diffusion import DiffusionEngine
    from .motion.upsample import Upsampled, wait_s
    factor = fps // latent.FPS
    if lookahead_s is not None:  # a frame in between waits for the next model frame: the wait counts as lookahead
        lookahead_s = max(lookahead_s - wait_s(factor), 0.0)
    engine = DiffusionEngine(seed=seed, chunk=chunk, lookahead_s=lookahead_s, steps=steps, rate=rate,
                             audio_scale=guidance[0], control_scale=guidance[1])
    return engine if factor == 1 else Upsampled(engine, factor, rate)


def compose(track: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Place generated motion on a portrait.

    Generators move the head and eyes about zero; the portrait keeps its own pose and gaze as
    the centre of that motion. Expressions are absolute, but the portrait's own expression (a
    smile, raised brows) stays unless the generated one is stronger: a talking avatar should
    not lose the smile it was photographed with. How far its lips are apart is not kept: the
    rest of every portrait is a closed mouth (`render.rig.MOUTH_STATE` at 0), so the voice alone
    opens it.
    """
    out = np.array(track, np.float32, copy=True)
    out[..., _POSE_AND_GAZE] += rest[_POSE_AND_GAZE]
    out[..., latent.EXPRESSION_SLICE] = np.maximum(out[..., latent.EXPRESSION_SLICE], rest[latent.EXPRESSION_SLICE])
    return latent.clip(out) if out.ndim == 1 else np.stack([latent.clip(f) for f in out])


def frames(chunks: Iterable[np.ndarray], engine: MotionEngine) -> Iterator[np.ndarray]:
    """Motion frames as audio chunks arrive, then the rest when the audio ends."""
    for chunk in chunks:
        yield from engine.push(chunk)
    yield from engine.flush()


def run(chunks: Iterable[np.ndarray], engine: MotionEngine, renderer: FrameRenderer,
        rest: np.ndarray | Callable[[], np.ndarray], sink: Sink, *, provenance: Provenance,
        on_frame: Callable[[int], None] | None = None) -> int:
    """Drive the chain until the audio ends; returns the number of frames written.

    `rest` is the portrait's rest latent, or a function giving it per frame: the live daemon
    swaps profile and renderer together between two frames.

    Every frame passes `provenance`, the provenance stage (invisible watermark + visible label),
    before the sink. It is required: the caller's settings decide the label and the installation
    the watermark names (``provenance.stamp.Provenance.for_profile`` for one profile; with a
    `source`, the stage follows the profile on air).
    """
    from .provenance.stamp import Provenance

    if not isinstance(provenance, Provenance):  # nothing but the real stage may stand in for it
        raise TypeError(f"provenance must be a provenance.stamp.Provenance, got {type(provenance).__name__}")
    count = 0
    for motion in frames(chunks, engine):
        sink.write(render_marked(renderer, compose(motion, rest() if callable(rest) else rest), provenance))
        count += 1
        if on_frame is not None:
            on_frame(count)
    return count


def render_marked(renderer: FrameRenderer, motion: np.ndarray, stamp: Provenance) -> np.ndarray:
    """One frame with its watermark and label: inside the kernel where the renderer can
    (`render_stamped`, the GPU renderer), else on the rendered frame, in place (a renderer hands
    over a new frame each call)."""
    stamped = getattr(renderer, "render_stamped", None)
    return stamped(motion, stamp) if stamped is not None else stamp(renderer.render(motion), in_place=True)


def file_chunks(samples: np.ndarray, rate: int = 16000, chunk_s: float = CHUNK_S) -> Iterator[np.ndarray]:
    """A whole clip cut into the chunks a microphone would deliver."""
    step = max(1, int(round(rate * chunk_s)))
    for start in range(0, len(samples), step):
        yield samples[start:start + step]
