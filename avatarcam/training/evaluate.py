"""How well motion matches what was said: the measures the motion model is held to.

All take a (frames, latent.DIM) track and the phonemes of its audio (espeak-ng's timings), so
they score the teacher and the model alike. No PyTorch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarcam import latent
from avatarcam.corpus.espeak import Phone
from avatarcam.corpus.phonemes import articulations, is_bilabial
from avatarcam.motion.lips import LIP_GAP_SHUT

JAW, CLOSE = latent.index("jawOpen"), latent.index("mouthClose")
ROUNDING = [latent.index("mouthFunnel"), latent.index("mouthPucker")]


@dataclass
class Utterance:
    audio: np.ndarray  # float32 at 16 kHz, degraded as a microphone would
    teacher: np.ndarray
    controls: np.ndarray
    phones: list[Phone]
    language: str
    voice: str
    sung: bool


def load_split(directory: Path, split: str = "test") -> list[Utterance]:
    """The utterances of a split whose shards kept their audio (the held-out split does)."""
    out = []
    for path in sorted(Path(directory).glob(f"{split}-*.npz")):
        with np.load(path) as z:
            if "audio" not in z:
                continue
            ao, fo = z["audio_offsets"], z["frame_offsets"]
            owner, names, spans = z["phone_utterance"], z["phone_name"], z["phone_span"]
            for i in range(len(z["controls"])):
                mine = np.flatnonzero(owner == i)
                out.append(Utterance(z["audio"][ao[i]:ao[i + 1]].astype(np.float32) / 32767,
                                     z["motion"][fo[i]:fo[i + 1]].astype(np.float32), z["controls"][i],
                                     [Phone(str(names[k]), float(spans[k, 0]), float(spans[k, 1])) for k in mine],
                                     str(z["language"][i]), str(z["voice"][i]), bool(z["sung"][i])))
    return out


def _centre(phone: Phone, frames: int) -> int:
    return min(int(round((phone.start + phone.end) / 2 * latent.FPS)), frames - 1)


def closures(track: np.ndarray, phones: list[Phone]) -> tuple[int, int]:
    """(closed, total) over /p b m/: lips shut on some frame within ±1 of the phoneme, from the
    frame before it starts to the frame after it ends (its middle's, for one shorter than a
    frame). Not ±1 of its middle: espeak-ng's timing of a stop is its release, and its lips shut
    in the silence before (`avatarcam.corpus.teacher.at_closures`); the teacher itself shut 95%
    of the held-out bilabials within a frame of their middle, 99.5% within a frame of them."""
    gap = track[:, JAW] - track[:, CLOSE]
    hits = total = 0
    for phone in phones:
        if is_bilabial(phone.name):
            i = _centre(phone, len(track))
            first = min(int(np.ceil(phone.start * latent.FPS)), i) - 1
            last = max(int(np.floor(phone.end * latent.FPS)), i) + 1
            total += 1
            hits += bool((gap[max(first, 0):last + 1] < LIP_GAP_SHUT).any())
    return hits, total


def rounding(track: np.ndarray, phones: list[Phone]) -> tuple[list[float], list[float]]:
    """mouthFunnel + mouthPucker at the middle of rounded phonemes (/u o w y/...) and of the
    unrounded vowels, for comparing the two."""
    lips = track[:, ROUNDING].sum(axis=1)
    rounded, spread = [], []
    for phone in phones:
        parts = articulations(phone.name)
        if len(parts) != 1:  # diphthongs change rounding midway
            continue
        kind, round_target = parts[0].kind, parts[0].targets[1]
        if round_target >= 0.7:  # u o y ø ʊ ʏ ʉ, w ɥ
            rounded.append(float(lips[_centre(phone, len(track))]))
        elif kind == "vowel" and round_target == 0.0:
            spread.append(float(lips[_centre(phone, len(track))]))
    return rounded, spread


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64) - np.mean(a), np.asarray(b, np.float64) - np.mean(b)
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den > 0 else float("nan")
