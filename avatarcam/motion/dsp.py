"""The DSP motion driver: audio energy and spectrum to mouth shapes, with no model at all.

It is the zero-model, lowest-latency engine (20 ms of lookahead, the half analysis window of
`avatarcam.audio.features`) and the baseline a learned motion model must beat. The mouth
follows the loudness envelope frame by frame (no lag), relative to an adaptive noise floor so
background noise keeps it closed; the spectrum shapes the lips; `procedural.Behaviour` adds
blinks, gaze, head motion and brows.

Live and offline share one code path: `generate` pushes a whole clip through `DspDriver`, and
every step is causal with carried state, so any chunking gives the same frames.
"""

from __future__ import annotations

import bisect
from collections import deque

import numpy as np

from avatarcam import latent
from avatarcam.audio.features import FLOOR_DB, LOOKAHEAD_S, SILENCE_DBFS, SPEECH_MARGIN_DB, FrameAnalyzer, FrameFeatures
from avatarcam.motion.procedural import Behaviour

JAW_MAX = 0.62  # jawOpen at the loudest recent syllable: wide but not a scream
FLOOR_WINDOW_S = 3.0  # noise floor = 10th percentile of the last this-many seconds of levels
FLOOR_QUANTILE = 0.10  # the same statistic as features.noise_floor_db, over a trailing window
PEAK_DECAY_DB_S = 4.0  # the loudness reference relaxes this fast after a loud peak
MIN_RANGE_DB = 20.0  # floor to full opening spans at least this, so faint noise stays small
DYNAMIC_RANGE_DB = 28.0  # sounds this far below the recent peak leave the mouth shut (breaths, hiss)
ATTACK, RELEASE = 0.95, 0.85  # per-frame approach of the jaw to its target when opening / closing

CENTROID_MEMORY_S = 3.0  # the speaker's typical spectral centroid is averaged over this long
ROUND_OCTAVES = 0.5  # centroid this far below the speaker's typical one = fully rounded lips
SHAPE_SMOOTHING = 0.5  # per-frame approach of lip shapes to their targets
PRESS_RELEASE = 0.5  # per-frame fraction by which pressed lips let go
DIP_DB = 12.0  # a fall this far below the last DIP_WINDOW_S of speech starts to press the lips (m b p)
DIP_WINDOW_S = 0.1  # only a sharp fall: a slow fade is a phrase ending, not a closure


def _channels(*names: str) -> list[int]:
    return [latent.index(n) for n in names]


JAW = latent.index("jawOpen")
FUNNEL, PUCKER = latent.index("mouthFunnel"), latent.index("mouthPucker")
STRETCH = _channels("mouthStretchLeft", "mouthStretchRight")
SMILE = _channels("mouthSmileLeft", "mouthSmileRight")
PRESS = _channels("mouthPressLeft", "mouthPressRight")
CLOSE = latent.index("mouthClose")
LOWER_DOWN = _channels("mouthLowerDownLeft", "mouthLowerDownRight")
UPPER_UP = _channels("mouthUpperUpLeft", "mouthUpperUpRight")


class _RunningQuantile:
    """A quantile of the last `size` values, updated in O(size) per value (no full sort)."""

    def __init__(self, size: int) -> None:
        self._order: deque[float] = deque(maxlen=size)
        self._sorted: list[float] = []

    def append(self, value: float) -> None:
        if len(self._order) == self._order.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self._order[0])]
        self._order.append(value)
        bisect.insort(self._sorted, value)

    def quantile(self, q: float, default: float) -> float:
        """Linear interpolation between order statistics, as numpy.percentile does by default."""
        if not self._sorted:
            return default
        position = q * (len(self._sorted) - 1)
        low = int(position)
        high = min(low + 1, len(self._sorted) - 1)
        return self._sorted[low] + (self._sorted[high] - self._sorted[low]) * (position - low)


class Mouth:
    """Causal mouth shapes from per-frame audio features, with an adaptive noise floor.

    The speech loudness of a frame is its level above a gate, as a fraction of the range up to
    a slowly decaying recent peak. The gate is the highest of: the noise floor (10th percentile
    of the last FLOOR_WINDOW_S of levels, as `features.noise_floor_db` but causal) plus
    SPEECH_MARGIN_DB; DYNAMIC_RANGE_DB below the recent peak; and SILENCE_DBFS. Stationary
    noise becomes the floor within a second or two, so it does not open the mouth.
    """

    def __init__(self, fps: int = latent.FPS) -> None:
        self.fps = fps
        self._levels = _RunningQuantile(max(1, int(FLOOR_WINDOW_S * fps)))
        self._recent: deque[tuple[float, float]] = deque(maxlen=max(1, int(DIP_WINDOW_S * fps)))  # level, loudness
        self._peak = -np.inf
        self._jaw = 0.0
        self._log_centroid = np.log2(1000.0)  # the speaker's typical centroid, learnt as they talk
        self._voiced_frames = 0
        self._shape = np.zeros(2)  # rounded, spread
        self._pressed = 0.0

    def animate(self, features: FrameFeatures, track: np.ndarray) -> np.ndarray:
        """Write mouth channels for consecutive frames into `track`; return their loudness (0..1)."""
        loudness = np.zeros(len(features))
        for i in range(len(features)):
            loudness[i] = self._step(
                float(features.level_db[i]), float(features.centroid_hz[i]), float(features.sibilance[i]), track[i]
            )
        return loudness

    def _step(self, level: float, centroid: float, sibilance: float, row: np.ndarray) -> float:
        # loudness above the adaptive floor
        self._levels.append(level)
        noise = self._levels.quantile(FLOOR_QUANTILE, default=FLOOR_DB)
        decay = PEAK_DECAY_DB_S / self.fps
        self._peak = max(level, self._peak - decay)
        floor = max(noise + SPEECH_MARGIN_DB, self._peak - DYNAMIC_RANGE_DB, SILENCE_DBFS)
        span = max(self._peak - floor, MIN_RANGE_DB)
        loudness = min(max((level - floor) / span, 0.0), 1.0)

        # jaw: near-instant opening and slightly gentler closing, so it never lags the voice
        target = JAW_MAX * loudness
        self._jaw += (target - self._jaw) * (ATTACK if target > self._jaw else RELEASE)

        # lip shape from the spectrum, relative to this speaker's typical centroid
        log_centroid = np.log2(max(centroid, 50.0))
        voiced = loudness > 0.15 and sibilance < 0.3
        if voiced:
            self._voiced_frames += 1
            rate = max(1.0 / self._voiced_frames, 1.0 / (CENTROID_MEMORY_S * self.fps))
            self._log_centroid += (log_centroid - self._log_centroid) * rate
        relative = log_centroid - self._log_centroid
        presence = min(1.0, 2.0 * loudness) if voiced else 0.0
        rounded = min(max(-relative / ROUND_OCTAVES, 0.0), 1.0) * presence
        spread = min(max(relative / ROUND_OCTAVES, 0.0), 1.0) * presence
        hiss = min(max((sibilance - 0.25) / 0.35, 0.0), 1.0) * (loudness > 0)
        spread = max(spread, 0.6 * hiss)  # /s/ /sh/: teeth together, lips drawn back

        # bilabial closure: a sharp fall below the last DIP_WINDOW_S of speech
        recent_level = max((lv for lv, _ in self._recent), default=-np.inf)
        recent_loud = max((ld for _, ld in self._recent), default=0.0)
        pressed = min(max((recent_level - level - DIP_DB) / 10.0, 0.0), 1.0) * min(1.0, 2.5 * recent_loud)
        self._recent.append((level, loudness))

        self._shape += (np.array([rounded, spread]) - self._shape) * SHAPE_SMOOTHING
        rounded, spread = self._shape
        # lips seal at once (a /p/ is short) and part a little more slowly
        self._pressed = max(pressed, self._pressed * (1 - PRESS_RELEASE))
        pressed = self._pressed
        jaw = self._jaw
        row[JAW] = jaw
        row[FUNNEL] = 0.45 * rounded
        row[PUCKER] = 0.5 * rounded
        row[STRETCH] = 0.3 * spread
        row[SMILE] = 0.15 * spread
        row[PRESS] = 0.4 * pressed
        row[CLOSE] = pressed * jaw  # ARKit's mouthClose: lips together however far the jaw is open
        row[LOWER_DOWN] = 0.5 * jaw
        row[UPPER_UP] = 0.2 * jaw + 0.1 * hiss
        return loudness


class DspDriver:
    """Streaming audio-to-motion: push 16 kHz mono audio, get 30 fps motion-latent frames.

    `push` returns the frames whose audio, including `lookahead_s` after the frame's time, has
    arrived; `flush` returns the rest at the end of input. A driver serves one stream.
    """

    latency_s = LOOKAHEAD_S  # audio it needs past a frame's instant before it can make the frame

    def __init__(self, seed: int = 0, fps: int = latent.FPS, rate: int = 16000) -> None:
        self.fps, self.rate = fps, rate
        self._analyzer = FrameAnalyzer(rate, fps)
        self._mouth = Mouth(fps)
        self._behaviour = Behaviour(seed, fps)
        self.lookahead_s: float = self._analyzer.lookahead_s

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add audio (mono float at `rate`, or int16); return the (n, DIM) float32 frames now ready."""
        return self._animate(self._analyzer.push(_as_float(samples)))

    def flush(self) -> np.ndarray:
        """End of input: the remaining frames, up to ceil(duration * fps) in all."""
        return self._animate(self._analyzer.flush())

    def _animate(self, features: FrameFeatures) -> np.ndarray:
        track = latent.zeros(len(features))
        loudness = self._mouth.animate(features, track)
        self._behaviour.animate(loudness, track)
        return latent.clip(track)


def generate(samples: np.ndarray, seed: int = 0, fps: int = latent.FPS, rate: int = 16000) -> np.ndarray:
    """Motion for a whole clip, (ceil(duration * fps), DIM) float32: the live driver, fed at once."""
    driver = DspDriver(seed=seed, fps=fps, rate=rate)
    return np.concatenate([driver.push(samples), driver.flush()])


def _as_float(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(
            f"the driver takes mono audio as a 1-D array, got shape {samples.shape}; average the channels first"
        )
    if np.issubdtype(samples.dtype, np.integer):
        return samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
    return samples.astype(np.float32, copy=False)
