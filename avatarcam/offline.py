"""One clip rendered offline: what `avatarcam render` does, and what each `avatarcam batch` job does.

Both commands call `render_clip`, so a batch job writes exactly what `render` writes for the same
profile, audio and options: the same frames for the same seed, the same watermark payload, the same
consent record in its content credentials. Loading the audio, the profile and its renderer stays
with the caller: `render` does it once, a batch worker keeps a profile's renderer for its next jobs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import chain
from .config import Settings


# The video encoder's threads, fixed: the encoded picture depends on their number (x264 cuts a
# frame into a slice per thread), and FFmpeg's own choice follows the machine's cores. Fixed, a
# clip is the same frame for frame on every machine: a Ray node of 64 cores, a worker limited to
# one, the user's laptop. Two is what FFmpeg chose on the 2-core machines the outputs so far were
# made on, and the encoder is a small share of a frame's work beside the renderer.
ENCODER_THREADS = 2


@dataclass(frozen=True)
class ClipOptions:
    """How the motion is made: frame rate, engine (a name from `chain.ENGINES`, already resolved from
    `auto`), seed, and an emotion laid under the speech (None: none, the engine as it is)."""

    fps: int
    engine: str
    seed: int = 0
    emotion: str | None = None


def offline_engine(options: ClipOptions, settings: Settings) -> chain.MotionEngine:
    """The motion engine for a whole clip: long chunks and all the lookahead the model can hear (a
    file has the whole voice at hand), the emotion laid under it as `live` does."""
    from .audio.io import AUDIO_RATE
    from .motion.controls import ControlledEngine
    from .motion.diffusion import OFFLINE_CHUNK

    engine = chain.motion_engine(options.engine, seed=options.seed, fps=options.fps, rate=AUDIO_RATE,
                                 chunk=OFFLINE_CHUNK, steps=settings.diffusion_steps,
                                 guidance=(settings.audio_guidance, settings.control_guidance), settings=settings)
    return engine if options.emotion is None else ControlledEngine(engine, emotion=options.emotion, fps=options.fps)


def render_clip(samples: np.ndarray, profile, renderer: chain.FrameRenderer, settings: Settings,
                options: ClipOptions, output: Path | None = None, frames_dir: Path | None = None,
                on_frame: Callable[[int], None] | None = None) -> int:
    """Render `samples` (mono, `AUDIO_RATE`) as `profile` talking through `renderer` (opened for that
    profile at the output size) into a video at `output` and/or PNG frames in `frames_dir`; returns
    the number of frames. Outputs appear complete or not at all (the sinks write under a temporary
    name and rename)."""
    from .audio.io import AUDIO_RATE
    from .camera import open_sink
    from .camera.sinks import Tee
    from .provenance.credentials import content_signer
    from .provenance.stamp import Provenance

    size = renderer.size
    signer = content_signer(profile, settings)  # every file carries content credentials: no switch
    engine = offline_engine(options, settings)
    with contextlib.ExitStack() as stack:
        # the sinks last: whatever can fail before a frame is made has failed before a file is
        # started; each is entered as it opens, so an error discards those opened before it
        opened = []
        if output is not None:
            opened.append(stack.enter_context(open_sink(f"file:{output}", size, options.fps, audio=samples,
                                                        audio_rate=AUDIO_RATE, signer=signer,
                                                        threads=ENCODER_THREADS)))
        if frames_dir is not None:
            opened.append(stack.enter_context(open_sink(f"frames:{frames_dir}", size, options.fps, signer=signer)))
        return chain.run(chain.file_chunks(samples, AUDIO_RATE), engine, renderer, renderer.scene.rig.rest,
                         Tee(opened), on_frame=on_frame, provenance=Provenance.for_profile(profile, size, settings))
