"""Per-video-frame audio features: loudness (the lip-sync reference), silence, spectrum.

Definitions (all functions here and the streaming `FrameAnalyzer` share them):

- Video frame `i` stands for the instant t_i = i / fps (the frame's presentation time). Its
  audio window is the `WINDOW_S` = 40 ms of samples centred on t_i: sample indices
  [c_i - W/2, c_i + W/2) with c_i = round(t_i * rate) and W = round(0.040 * rate). Samples
  outside the signal are absent (not zeros): edge windows are shorter, so a clip that starts
  loud does not read quieter at frame 0.
- A clip of N samples has ceil(N / rate * fps) frames: the last frame is the last instant
  inside the audio.
- **Loudness envelope**: 10 log10(mean of squared samples in the window + 1e-10), in dB re
  digital full scale (a full-scale sine reads -3 dB, digital silence -100 dB). This is the
  reference the lip-sync benchmark compares the rendered mouth with.

A window centred on the frame time needs W/2 = 20 ms of audio after that time, so a live stream
can compute frame i 20 ms after t_i: that is the features' lookahead (`LOOKAHEAD_S`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW_S = 0.040  # analysis window per video frame, centred on the frame time
LOOKAHEAD_S = WINDOW_S / 2  # audio needed after a frame's time before the frame can be analysed
FLOOR_DB = -100.0  # the envelope of digital silence (from the 1e-10 energy guard)
SILENCE_DBFS = -60.0  # frames below this are silent whatever the noise floor
SPEECH_MARGIN_DB = 6.0  # a frame must rise this far above the noise floor to count as speech

VOICE_BAND_HZ = (100.0, 4000.0)  # where vowel formants live: the band the centroid is taken over
SIBILANT_HZ = 4000.0  # energy above this, relative to all, marks /s/, /sh/, /f/


def frame_count(n_samples: int, rate: int, fps: int) -> int:
    """Video frames for `n_samples` of audio: ceil(duration * fps), in exact integer arithmetic."""
    return -(-int(n_samples) * int(fps) // int(rate))


def frame_centres(frames: np.ndarray, rate: int, fps: int) -> np.ndarray:
    """Sample index of each frame's time, round(i * rate / fps), in exact integer arithmetic."""
    frames = np.asarray(frames, np.int64)
    return (2 * frames * rate + fps) // (2 * fps)


def window_length(rate: int) -> int:
    """Samples in one analysis window (even, so it centres exactly)."""
    return 2 * int(round(WINDOW_S * rate / 2))


def frame_windows(
    buffer: np.ndarray, buffer_start: int, frames: np.ndarray, rate: int, fps: int, total: int
) -> tuple[np.ndarray, np.ndarray]:
    """The analysis windows of `frames`, cut from a buffer that begins at sample `buffer_start`.

    Returns (windows, counts): (n, W) float32 with absent samples (before 0 or at/after
    `total`, the number of samples known to exist) set to zero, and how many samples of each
    window are present. Both the offline functions and the streaming analyzer cut their windows
    here, which is what makes them agree exactly.
    """
    width = window_length(rate)
    starts = frame_centres(frames, rate, fps) - width // 2
    index = starts[:, None] + np.arange(width)[None, :]
    present = (index >= 0) & (index < total)
    local = np.clip(index - buffer_start, 0, max(len(buffer) - 1, 0))
    if len(buffer) == 0:
        return np.zeros(index.shape, np.float32), np.zeros(len(frames), np.int64)
    windows = np.where(present, buffer[local], 0.0).astype(np.float32, copy=False)
    return windows, present.sum(axis=1)


def level_db(windows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """RMS level of each window in dB re full scale, over its present samples."""
    energy = np.square(windows, dtype=np.float64).sum(axis=1) / np.maximum(counts, 1)
    return (10.0 * np.log10(energy + 1e-10)).astype(np.float32)


@dataclass
class FrameFeatures:
    """Audio features of consecutive video frames (all arrays of the same length)."""

    level_db: np.ndarray  # the loudness envelope (see the module docstring)
    centroid_hz: np.ndarray  # spectral centroid in VOICE_BAND_HZ: low for /u o/, high for /i e/
    sibilance: np.ndarray  # fraction of energy above SIBILANT_HZ (0..1): high for /s/ /f/

    def __len__(self) -> int:
        return len(self.level_db)

    @staticmethod
    def concat(parts: list[FrameFeatures]) -> FrameFeatures:
        """Join the features of consecutive chunks."""
        return FrameFeatures(
            level_db=np.concatenate([p.level_db for p in parts]),
            centroid_hz=np.concatenate([p.centroid_hz for p in parts]),
            sibilance=np.concatenate([p.sibilance for p in parts]),
        )


def spectral_shape(windows: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(centroid_hz, sibilance) of each window from its Hann-windowed power spectrum."""
    n = windows.shape[1]
    tapered = windows * np.hanning(n).astype(np.float32)
    # one FFT per row: a batched FFT's SIMD path rounds differently with the batch size, and
    # a streamed frame must come out bit-identical to the same frame offline
    power = np.empty((len(windows), n // 2 + 1), np.float64)
    for row, window in enumerate(tapered):
        power[row] = np.abs(np.fft.rfft(window)) ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    voice = (freqs >= VOICE_BAND_HZ[0]) & (freqs <= VOICE_BAND_HZ[1])
    voice_power = power[:, voice]
    centroid = (voice_power * freqs[voice]).sum(axis=1) / (voice_power.sum(axis=1) + 1e-12)
    total = power[:, freqs >= VOICE_BAND_HZ[0]].sum(axis=1)
    sibilance = power[:, freqs >= SIBILANT_HZ].sum(axis=1) / (total + 1e-12)
    # an empty window has no spectrum: call it the middle of the voice band, not sibilant
    silent = voice_power.sum(axis=1) <= 1e-12
    centroid[silent] = 1000.0
    return centroid.astype(np.float32), sibilance.astype(np.float32)


def analyze(
    buffer: np.ndarray, buffer_start: int, frames: np.ndarray, rate: int, fps: int, total: int
) -> FrameFeatures:
    """All features of `frames` (see `frame_windows` for the buffer arguments)."""
    windows, counts = frame_windows(buffer, buffer_start, frames, rate, fps, total)
    centroid, sibilance = spectral_shape(windows, rate)
    return FrameFeatures(level_db(windows, counts), centroid, sibilance)


class FrameAnalyzer:
    """Streaming per-frame features: push audio in any chunks, get each frame once it is complete.

    A frame is complete when its whole window has arrived (LOOKAHEAD_S after its time) or the
    input has ended (`flush`). Chunking never changes a value: every frame is computed from
    the same samples by the same function as the offline `frame_features`.
    """

    def __init__(self, rate: int = 16000, fps: int = 30) -> None:
        self.rate, self.fps = rate, fps
        self.lookahead_s = window_length(rate) / 2 / rate
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # absolute index of self._buffer[0]
        self._received = 0  # samples pushed so far
        self._next_frame = 0
        self._finished = False

    def push(self, samples: np.ndarray) -> FrameFeatures:
        """Add mono float samples at `rate`; return the features of the frames now complete."""
        if self._finished:
            raise RuntimeError("this analyzer was flushed; start a new one for a new stream")
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer, samples])
        self._received += len(samples)
        # frame i is complete once its window end c_i + W/2 <= received
        return self._emit(self._complete_frames(), total=self._received)

    def flush(self) -> FrameFeatures:
        """End of input: the features of every frame left, up to ceil(duration * fps)."""
        features = self._emit(frame_count(self._received, self.rate, self.fps), total=self._received)
        self._finished = True
        return features

    def _complete_frames(self) -> int:
        """How many frames have their whole window in the audio received so far."""
        limit = self._received - window_length(self.rate) // 2  # frame i is complete iff c_i <= limit
        if limit < 0:
            return 0
        guess = limit * self.fps // self.rate + 2  # c_i grows by rate/fps per frame: the answer is near
        candidates = np.arange(max(0, guess - 3), guess + 1)
        complete = candidates[frame_centres(candidates, self.rate, self.fps) <= limit]
        return int(complete[-1]) + 1

    def _emit(self, end: int, total: int) -> FrameFeatures:
        frames = np.arange(self._next_frame, max(end, self._next_frame))
        features = analyze(self._buffer, self._buffer_start, frames, self.rate, self.fps, total)
        self._next_frame = max(end, self._next_frame)
        # keep only what later windows can still need
        next_centre = int(frame_centres(np.array([self._next_frame]), self.rate, self.fps)[0])
        keep_from = next_centre - window_length(self.rate) // 2
        drop = max(0, keep_from - self._buffer_start)
        if drop:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop
        return features


def frame_features(samples: np.ndarray, rate: int = 16000, fps: int = 30) -> FrameFeatures:
    """Features of every video frame of a whole clip (the offline form of `FrameAnalyzer`)."""
    samples = np.asarray(samples, np.float32).reshape(-1)
    frames = np.arange(frame_count(len(samples), rate, fps))
    return analyze(samples, 0, frames, rate, fps, len(samples))


def loudness_envelope(samples: np.ndarray, rate: int = 16000, fps: int = 30) -> np.ndarray:
    """The loudness envelope: one dB value per video frame (definition in the module docstring)."""
    samples = np.asarray(samples, np.float32).reshape(-1)
    frames = np.arange(frame_count(len(samples), rate, fps))
    return level_db(*frame_windows(samples, 0, frames, rate, fps, len(samples)))


def noise_floor_db(envelope_db: np.ndarray) -> float:
    """Estimated background level of a clip: the 10th percentile of its envelope.

    Speech has pauses and stops, so its quietest tenth is background, not voice. Digital
    silence (padding, a gated microphone, TTS) counts as background too: that is what lets a
    steady vowel between silences read as speech rather than as the floor.
    """
    envelope_db = np.asarray(envelope_db)
    return float(np.percentile(envelope_db, 10)) if envelope_db.size else FLOOR_DB


def speech_loudness(
    envelope_db: np.ndarray, floor_db: float | None = None, peak_db: float | None = None
) -> np.ndarray:
    """0..1 speech loudness per frame: 0 at or below noise floor + margin, 1 at the clip's peak.

    `floor_db` defaults to `noise_floor_db`, `peak_db` to the 98th percentile of the envelope
    (robust to a few clicks). The range is at least 20 dB so a near-silent clip's noise does not
    stretch to full loudness.
    """
    envelope_db = np.asarray(envelope_db, np.float32)
    if envelope_db.size == 0:
        return envelope_db.copy()
    floor = noise_floor_db(envelope_db) if floor_db is None else floor_db
    low = max(floor + SPEECH_MARGIN_DB, SILENCE_DBFS)
    peak = float(np.percentile(envelope_db, 98)) if peak_db is None else peak_db
    span = max(peak - low, 20.0)
    return np.clip((envelope_db - low) / span, 0.0, 1.0).astype(np.float32)


def silent_frames(samples: np.ndarray, rate: int = 16000, fps: int = 30) -> np.ndarray:
    """True for frames clearly without speech: below noise floor + margin, or below -60 dBFS."""
    envelope = loudness_envelope(samples, rate, fps)
    if envelope.size == 0:
        return np.zeros(0, bool)
    threshold = max(noise_floor_db(envelope) + SPEECH_MARGIN_DB, SILENCE_DBFS)
    return envelope < threshold
