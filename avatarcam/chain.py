"""The frame chain: audio chunks -> motion -> renderer -> sink.

One code path, two drivers: `run` takes a whole file as fast as it can (`avatarcam render`,
`offline.render_clip`); the live daemon drives `stream` with microphone chunks on a clock. Neither
knows how motion or pixels are made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from . import latent
from .camera.sinks import Sink
from .errors import AvatarCamError

if TYPE_CHECKING:
    from .config import Settings
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

    def render_stamped(self, frame: np.ndarray, stamp: Provenance) -> np.ndarray:
        """The frame with `stamp`'s watermark and label (the GPU marks inside its kernel)."""
        ...


@dataclass(frozen=True)
class Shot:
    """What is on air for a frame, as one unit: the renderer, its provenance stage and the
    portrait's rest. The live daemon swaps a whole shot between two frames, so a frame never
    shows one profile marked as another."""

    renderer: FrameRenderer
    stamp: Provenance
    rest: np.ndarray

    def __post_init__(self) -> None:
        from .provenance.stamp import Provenance

        if not isinstance(self.stamp, Provenance):  # nothing but the real stage may stand in for it
            raise TypeError(f"a shot's stamp must be a provenance.stamp.Provenance, got {type(self.stamp).__name__}")

    def frame(self, motion: np.ndarray) -> np.ndarray:
        """The marked frame showing generated `motion` on this portrait."""
        return self.renderer.render_stamped(compose(motion, self.rest), self.stamp)


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
                  guidance: tuple[float, float] = (1.0, 1.0), settings: Settings | None = None) -> MotionEngine:
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
                             audio_scale=guidance[0], control_scale=guidance[1], settings=settings)
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


def run(chunks: Iterable[np.ndarray], engine: MotionEngine, renderer: FrameRenderer, rest: np.ndarray,
        sink: Sink, *, provenance: Provenance, on_frame: Callable[[int], None] | None = None) -> int:
    """Drive the chain over one portrait until the audio ends; returns the number of frames written.

    Every frame passes `provenance`, the provenance stage (invisible watermark + visible label),
    before the sink. It is required: the caller's settings decide the label and the installation
    the watermark names (``provenance.stamp.Provenance.for_profile``).
    """
    shot = Shot(renderer, provenance, rest)
    return stream(chunks, engine, lambda: shot, sink, on_frame=on_frame)


def stream(chunks: Iterable[np.ndarray], engine: MotionEngine, on_air: Callable[[], Shot], sink: Sink, *,
           late: Callable[[int], bool] | None = None, on_frame: Callable[[int], None] | None = None) -> int:
    """The chain as the live daemon drives it: audio chunks -> motion -> the shot on air (asked
    for every frame) -> sink. A frame `late(index)` says is already too late for its tick is not
    rendered: the previous picture stands in, while the motion still advances, so after a stall
    the stream is back on time within a few frames. `on_frame(index)` follows each frame written."""
    count, previous = 0, None
    for motion in frames(chunks, engine):
        shot = on_air()
        if previous is None or late is None or not late(count):
            previous = shot.frame(motion)
        sink.write(previous)
        if on_frame is not None:
            on_frame(count)
        count += 1
    return count


def file_chunks(samples: np.ndarray, rate: int = 16000, chunk_s: float = CHUNK_S) -> Iterator[np.ndarray]:
    """A whole clip cut into the chunks a microphone would deliver."""
    step = max(1, int(round(rate * chunk_s)))
    for start in range(0, len(samples), step):
        yield samples[start:start + step]
