"""Make clean synthetic speech sound like a real microphone: noise, rooms, cheap bands, codecs,
level. Every function takes its randomness from the `rng` given."""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

RATE = 16000


def _coloured_noise(rng: np.random.Generator, n: int, slope: float) -> np.ndarray:
    """Noise whose power falls as f**-slope (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    noise = np.fft.irfft(spectrum * f ** (-slope / 2), n)
    return noise / (np.std(noise) + 1e-9)


def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / RATE
    base = rng.choice([50.0, 60.0])
    return sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float, babble: np.ndarray | None = None) -> np.ndarray:
    kind = rng.integers(0, 4 if babble is not None else 3)
    if kind == 3:  # other voices in the room, reversed so no words leak through
        noise = np.resize(babble[::-1], len(x))
    elif kind == 2:
        noise = _hum(rng, len(x)) + 0.3 * _coloured_noise(rng, len(x), 0.0)
    else:
        noise = _coloured_noise(rng, len(x), float(rng.choice([0.0, 1.0, 2.0])))
    speech = np.sqrt(np.mean(x ** 2) + 1e-12)
    return x + noise / (np.std(noise) + 1e-9) * speech * 10 ** (-snr_db / 20)


def reverberate(x: np.ndarray, rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A room: exponentially decaying noise tail after the direct sound."""
    length = int(rt60 * RATE)
    t = np.arange(length) / RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
    tail[: int(0.003 * RATE)] = 0.0
    response = tail * rng.uniform(0.1, 0.4) / np.sqrt(np.sum(tail ** 2) + 1e-9)
    response[0] = 1.0
    wet = fftconvolve(x, response)[: len(x)]
    return wet * np.sqrt(np.mean(x ** 2) / (np.mean(wet ** 2) + 1e-12))


def band_limit(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap microphone or a phone line: high-pass 80-300 Hz and low-pass 3.4-7 kHz."""
    high = butter(2, rng.uniform(80, 300), "highpass", fs=RATE, output="sos")
    low = butter(4, rng.uniform(3400, 7000), "lowpass", fs=RATE, output="sos")
    return sosfilt(low, sosfilt(high, x))


def codec(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Narrow-band telephony: 8 kHz, 8-bit mu-law, back to 16 kHz."""
    narrow = resample_poly(x, 1, 2)
    peak = np.max(np.abs(narrow)) + 1e-9
    mu = 255.0
    y = np.sign(narrow) * np.log1p(mu * np.abs(narrow / peak)) / np.log1p(mu)
    y = np.round(y * 127) / 127
    narrow = np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu * peak
    return resample_poly(narrow, 2, 1)[: len(x)]


def degrade(x: np.ndarray, rng: np.random.Generator, babble: np.ndarray | None = None) -> np.ndarray:
    """A random chain of the above, then a random level; about one clip in six stays clean."""
    x = np.asarray(x, np.float64)
    if rng.random() < 0.4:
        x = reverberate(x, rng, rng.uniform(0.15, 0.8))
    if rng.random() < 0.35:
        x = band_limit(x, rng)
    if rng.random() < 0.15:
        x = codec(x, rng)
    if rng.random() < 0.6:
        x = add_noise(x, rng, rng.uniform(5, 40), babble)
    peak = np.max(np.abs(x)) + 1e-9
    level = 10 ** (rng.uniform(-35, -3) / 20) / peak  # the peak lands between -35 and -3 dBFS
    return np.clip(x * level, -1.0, 1.0).astype(np.float32)
