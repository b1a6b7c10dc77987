"""Motion at a multiple of the engines' 30 fps: the frames in between, interpolated.

The engines make one latent per 1/30 s. A camera at 60 fps shows those frames at their own
instants and, halfway between two of them, their mean (at 90 or 120 fps, the points a third or
a quarter of the way). A frame between two motion frames can only be made once the later one
exists, so the in-between frames wait up to one motion frame longer than their instant:
`latency_s` says so, and the live chain's delay budget takes it in.
"""

from __future__ import annotations

import numpy as np

from .. import latent
from ..audio.features import frame_count


def wait_s(factor: int) -> float:
    """How much longer than its instant the last frame in between waits: until the next motion frame."""
    return (factor - 1) / (factor * latent.FPS)


class Upsampled:
    """A motion engine at `factor` times its frame rate (same interface: push, flush, latency_s,
    and the emotion the controls set on it)."""

    def __init__(self, engine, factor: int, rate: int = 16000) -> None:
        if factor < 1:
            raise ValueError(f"factor must be at least 1, not {factor}")
        self.engine, self.factor, self.rate = engine, factor, rate
        self._last: np.ndarray | None = None
        self._samples = self._emitted = 0

    @property
    def latency_s(self) -> float:
        return self.engine.latency_s + wait_s(self.factor)

    @property
    def styles(self) -> tuple[str, ...]:
        return getattr(self.engine, "styles", ())

    @property
    def emotion(self) -> str:
        return self.engine.emotion

    @emotion.setter
    def emotion(self, name: str) -> None:
        self.engine.emotion = name

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._samples += len(samples)
        return self._spread(self.engine.push(samples))

    def flush(self) -> np.ndarray:
        """The rest, ending where the audio does (ceil(duration x fps) frames in all, as a
        file's frame count is everywhere): the last motion frame holds to the end."""
        before = self._emitted
        out = self._spread(self.engine.flush())
        if self._last is not None:
            out = np.concatenate([out, np.repeat(self._last[None], self.factor - 1, axis=0)])
        out = out[:max(frame_count(self._samples, self.rate, latent.FPS * self.factor) - before, 0)]
        self._emitted = before + len(out)
        return out

    def _spread(self, track: np.ndarray) -> np.ndarray:
        rows = []
        for frame in np.asarray(track, np.float32).reshape(-1, latent.DIM):
            if self._last is not None:
                rows += [self._last + (frame - self._last) * (j / self.factor) for j in range(1, self.factor)]
            rows.append(frame)
            self._last = frame
        self._emitted += len(rows)
        return np.array(rows, np.float32).reshape(-1, latent.DIM)
