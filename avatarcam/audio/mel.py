"""Log-mel spectrogram, offline and streaming, identical frame for frame.

Mel frame k stands for the instant k * HOP_S (10 ms steps) and analyses the WINDOW samples
centred on it (25 ms, Hann); samples before the start are zeros. A stream can therefore emit
frame k once it holds WINDOW/2 samples past k * HOP_S. Values are power in dB, floored at
FLOOR_DB, so silence is a constant the motion model knows.
"""

from __future__ import annotations

import numpy as np

RATE = 16000
HOP = 160  # 10 ms
WINDOW = 400  # 25 ms
FFT = 512
BANDS = 40
FMIN, FMAX = 60.0, 7600.0
FLOOR_DB = -100.0
MEL_RATE = RATE // HOP  # mel frames per second


def _band_edges() -> np.ndarray:
    """BANDS + 2 frequencies in Hz, equally spaced in mel: band b spans edges b..b+2."""
    def to_mel(hz):
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def to_hz(mel):
        return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)

    return to_hz(np.linspace(to_mel(FMIN), to_mel(FMAX), BANDS + 2))


def _filterbank() -> np.ndarray:
    edges = _band_edges()
    bins = np.fft.rfftfreq(FFT, 1.0 / RATE)
    bank = np.zeros((BANDS, len(bins)), np.float32)
    for b in range(BANDS):
        low, centre, high = edges[b:b + 3]
        rising = (bins - low) / (centre - low)
        falling = (high - bins) / (high - centre)
        bank[b] = np.clip(np.minimum(rising, falling), 0.0, None) * (2.0 / (high - low))  # equal area
    return bank


_BANK = _filterbank()
CENTRES_HZ = _band_edges()[1:-1]  # each band's centre frequency
_HANN = np.hanning(WINDOW + 2)[1:-1].astype(np.float32)


def _frames_db(padded: np.ndarray, count: int) -> np.ndarray:
    """dB mel of `count` frames from a buffer whose index 0 is the first frame's window start."""
    if count <= 0:
        return np.zeros((0, BANDS), np.float32)
    index = np.arange(count)[:, None] * HOP + np.arange(WINDOW)[None, :]
    spectrum = np.fft.rfft(padded[index] * _HANN, FFT)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    return np.maximum(10.0 * np.log10(power @ _BANK.T + 1e-10), FLOOR_DB).astype(np.float32)


def nearest_rows(video_frames, fps: int = 30) -> np.ndarray:
    """The mel frame nearest each video frame's instant i / fps: round(i * MEL_RATE / fps)."""
    return (2 * np.asarray(video_frames, np.int64) * MEL_RATE + fps) // (2 * fps)


def frame_count(n_samples: int) -> int:
    """Mel frames whose instants lie inside `n_samples` of audio."""
    return -(-int(n_samples) // HOP)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(frames, BANDS) dB mel of a whole clip at RATE; zeros stand in beyond both ends."""
    samples = np.asarray(samples, np.float32)
    count = frame_count(len(samples))
    padded = np.concatenate([np.zeros(WINDOW // 2, np.float32), samples, np.zeros(WINDOW, np.float32)])
    return _frames_db(padded, count)


class MelStream:
    """`log_mel` in pieces: push samples, get the frames they complete; `flush` ends the clip."""

    def __init__(self) -> None:
        self._buffer = np.zeros(WINDOW // 2, np.float32)  # index 0 = window start of frame `_next`
        self._next = 0
        self._total = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer, samples])
        self._total += len(samples)
        ready = max(0, (len(self._buffer) - WINDOW) // HOP + 1)
        return self._emit(ready)

    def flush(self) -> np.ndarray:
        ready = frame_count(self._total) - self._next
        self._buffer = np.concatenate([self._buffer, np.zeros(WINDOW, np.float32)])
        return self._emit(max(ready, 0))

    def _emit(self, count: int) -> np.ndarray:
        out = _frames_db(self._buffer, count)
        self._buffer = self._buffer[count * HOP:]
        self._next += count
        return out
