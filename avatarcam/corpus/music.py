"""A band to play under and around the corpus's voices: strummed chords, a bass line and drums.

A motion model that never heard an instrument takes one for a voice: over the shared song's
guitar intro the shipped model held the mouth open as if it sang, and webrtcvad (the engine's
speech gate) passes music as speech. So some training utterances get a band that plays before the
voice comes in, under it and after it ends, while the teacher's mouth moves only with the voice.

The instruments are additive synthesis, cheap and varied: plucked strings (harmonics that die
away the faster the higher they are, slightly sharp as real strings are), a sine-like bass, a
kick, a snare and a hi-hat. Every choice comes from the `rng` given.
"""

from __future__ import annotations

import numpy as np

RATE = 16000
_MAJOR = (0, 4, 7)
_MINOR = (0, 3, 7)
# a key's chords: (semitones above the key's root, quality), I IV V vi ii
_DEGREES = ((0, _MAJOR), (5, _MAJOR), (7, _MAJOR), (9, _MINOR), (2, _MINOR))


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def pluck(rng: np.random.Generator, midi: float, seconds: float, brightness: float) -> np.ndarray:
    """One plucked string: harmonics 1/k loud, each dying away faster the higher it is."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = _hz(midi)
    out = np.zeros_like(t)
    for k in range(1, 13):
        f = f0 * k * np.sqrt(1.0 + 1e-4 * k * k)  # a stiff string's partials run sharp
        if f >= RATE / 2 - 500:
            break
        decay = 1.5 + brightness * 0.8 * k * k
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * np.exp(-decay * t) / k
    attack = np.minimum(t / 0.002, 1.0)
    return out * attack


def _drum(rng: np.random.Generator, kind: str) -> np.ndarray:
    if kind == "kick":
        t = np.arange(int(0.3 * RATE)) / RATE
        sweep = 2 * np.pi * np.cumsum(50.0 + 90.0 * np.exp(-t / 0.03)) / RATE
        return np.sin(sweep) * np.exp(-t / 0.12)
    length = int((0.18 if kind == "snare" else 0.05) * RATE)
    t = np.arange(length) / RATE
    noise = rng.standard_normal(length)
    if kind == "hat":  # the noise's high part: a first difference, twice
        noise = np.diff(noise, 2, prepend=[0.0, 0.0])
        return 0.15 * noise * np.exp(-t / 0.015)
    body = np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.04)
    return 0.5 * noise * np.exp(-t / 0.06) + body


def _add(out: np.ndarray, sound: np.ndarray, at: float, gain: float) -> None:
    start = int(round(at * RATE))
    piece = sound[max(-start, 0):][: max(len(out) - max(start, 0), 0)]  # what falls inside `out`
    out[max(start, 0):max(start, 0) + len(piece)] += gain * piece


def band(rng: np.random.Generator, samples: int) -> np.ndarray:
    """`samples` of a band at RATE, normalised to unit RMS: a key, a tempo, a chord progression,
    a strumming pattern; a bass and drums each play in some songs and not in others."""
    out = np.zeros(samples)
    seconds = samples / RATE
    beat = 60.0 / rng.uniform(70, 150)
    root = int(rng.integers(40, 52))  # E2 to D#3
    progression = [_DEGREES[i] for i in rng.choice(len(_DEGREES), 4)]
    strums_per_beat = int(rng.choice([1, 2]))
    brightness = rng.uniform(0.3, 2.0)
    strings = int(rng.integers(3, 7))
    with_bass, with_drums = rng.random() < 0.6, rng.random() < 0.5
    start = -rng.uniform(0, 4 * beat)  # the band is already playing when the clip starts
    n_beats = int(np.ceil((seconds - start) / beat))
    for b in range(n_beats):
        at = start + b * beat
        offset, quality = progression[(b // 4) % len(progression)]
        chord = [root + offset + 12 * (i // 3) + quality[i % 3] for i in range(strings)]
        for s in range(strums_per_beat):
            when = at + s * beat / strums_per_beat
            if when + 2.0 < 0 or (s and rng.random() < 0.3):
                continue
            accent = 1.0 if s == 0 else rng.uniform(0.4, 0.8)
            down = s % 2 == 0
            for i, note in enumerate(chord if down else chord[::-1]):
                _add(out, pluck(rng, note + 12, 2.0, brightness), when + i * rng.uniform(0.004, 0.015), 0.3 * accent)
        if with_bass and b % 2 == 0 and at > -2.0:
            _add(out, pluck(rng, root + offset - 12, 1.5, 0.2), at, 0.8)
        if with_drums and at > -0.5:
            _add(out, _drum(rng, "kick" if b % 2 == 0 else "snare"), at, 0.7)
            _add(out, _drum(rng, "hat"), at + beat / 2, 0.5)
    return out / (np.sqrt(np.mean(out ** 2)) + 1e-12)


def accompany(voice: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """The band around a clean `voice` (RATE): (voice padded with the band's own bars before and
    after, the band over the whole, seconds of padding before the voice). The band sits 0-15 dB
    under the voice's level while it speaks, as a singer or a radio in the room."""
    before, after = (int(rng.uniform(1.0, 4.0) * RATE) for _ in range(2))
    padded = np.concatenate([np.zeros(before), voice, np.zeros(after)]).astype(np.float32)
    music = band(rng, len(padded))
    loud = np.abs(voice) > 0.1 * np.max(np.abs(voice)) if len(voice) else np.zeros(0, bool)
    level = np.sqrt(np.mean(voice[loud] ** 2)) if loud.any() else 0.1
    music *= level * 10 ** (-rng.uniform(0.0, 15.0) / 20)
    return padded, music.astype(np.float32), before / RATE
