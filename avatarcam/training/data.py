"""Training windows cut from the corpus shards, normalised as the network expects."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatarcam import latent
from avatarcam.audio import mel
from avatarcam.errors import AvatarCamError
from avatarcam.motion.cues import CUES, teacher_cues
from avatarcam.motion.network import Config

STD_FLOOR = 0.02  # channels that barely move are not blown up into noise by normalisation
CHUNKS = (1, 2, 4, 8, 16, 32)
# A microphone, a room and a voice each colour the spectrum, and the corpus's espeak-ng voices share
# one colour, which a model may learn as if it meant something. `colour` gives each training window
# its own colour: a tilt about 1 kHz and broad bumps, added to its dB mel rows (within 0.5 dB of
# filtering the audio, above 250 Hz: tests/test_motion_model.py). `avatarcam train --colour DB`
# turns it on; the shipped model is trained without (DB 0): coloured, it kept fewer bilabial
# closures and its stream agreed less with its offline render (docs/decisions.md, "Colouring the
# training spectrum").
BUMPS = 2
BUMP_PER_TILT = 0.75  # a bump's height range (dB) per dB/octave of tilt range
# A voice's formants sit higher the shorter its vocal tract (people's differ by about 15% each way),
# and the corpus's synthetic voices span less of that than people do. `warp` moves each training
# window's formants by its own factor, as a vocal tract length perturbation does: frequencies up to
# WARP_UP_TO scale by the factor, those above move linearly so the top band stays put.
# `avatarcam train --warp F` turns it on (factors e^-F .. e^F).
WARP_UP_TO = 4800.0


def colour_gain(hz: np.ndarray, tilt: np.ndarray, centre: np.ndarray, width: np.ndarray,
                height: np.ndarray) -> np.ndarray:
    """(size, len(hz)) dB gains of `size` colours at frequencies `hz`: `tilt` (size,) dB per
    octave about 1 kHz, plus bumps (size, BUMPS) of `height` dB at `centre` octaves from 1 kHz,
    `width` octaves wide."""
    octaves = np.log2(np.maximum(np.asarray(hz, np.float64), 1.0) / 1000.0)
    bumps = height[..., None] * np.exp(-0.5 * ((octaves - centre[..., None]) / width[..., None]) ** 2)
    return tilt[:, None] * octaves + bumps.sum(axis=1)


def colour(windows: np.ndarray, rng: np.random.Generator, tilt: float) -> np.ndarray:
    """`windows` (size, ..., BANDS) of dB mel, each coloured by its own random tilt (up to +-`tilt`
    dB/octave) and bumps; digital silence (the floor) stays silence."""
    size = len(windows)
    bump = BUMP_PER_TILT * tilt
    gain = colour_gain(mel.CENTRES_HZ, rng.uniform(-tilt, tilt, size),
                       rng.uniform(np.log2(0.15), np.log2(6.0), (size, BUMPS)),  # 150 Hz to 6 kHz
                       rng.uniform(0.3, 1.0, (size, BUMPS)), rng.uniform(-bump, bump, (size, BUMPS)))
    gain = gain.reshape((size,) + (1,) * (windows.ndim - 2) + (mel.BANDS,)).astype(np.float32)
    return np.where(windows > mel.FLOOR_DB, np.maximum(windows + gain, mel.FLOOR_DB), windows)


def warped_hz(hz: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """(size, len(hz)): where each of `size` voices of formant `factor` (size,) takes the sound it
    shows at `hz`, the frequencies of a voice of factor 1 that land there."""
    hz = np.asarray(hz, np.float64)[None]
    factor = np.asarray(factor, np.float64)[:, None]
    knee = np.minimum(WARP_UP_TO, mel.FMAX * factor / 2)  # keeps the warp increasing
    low = hz / factor
    high = knee / factor + (hz - knee) * (mel.FMAX - knee / factor) / (mel.FMAX - knee)
    return np.where(hz <= knee, low, high)


def warp(windows: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """`windows` (size, ..., BANDS) of dB mel, each as a voice whose formants sit `factor` (size,)
    times as high would show it; digital silence stays silence."""
    size = len(windows)
    source = warped_hz(mel.CENTRES_HZ, factor)
    band = np.interp(source, mel.CENTRES_HZ, np.arange(mel.BANDS))  # (size, BANDS) fractional bands
    low = np.floor(band).astype(np.int64)
    weight = band - low
    # each window's linear interpolation between bands as a (BANDS, BANDS) matrix
    pick = np.zeros((size, mel.BANDS, mel.BANDS), np.float32)
    at = np.arange(size)[:, None], np.arange(mel.BANDS)[None]
    pick[(*at, low)] = 1 - weight
    pick[(*at, np.minimum(low + 1, mel.BANDS - 1))] += weight  # weight 0 where low is the top band
    flat = windows.reshape(size, -1, mel.BANDS)
    moved = np.matmul(flat, pick.transpose(0, 2, 1)).reshape(windows.shape)
    return np.where(windows > mel.FLOOR_DB, np.maximum(moved, mel.FLOOR_DB), windows).astype(windows.dtype)


class Corpus:
    """Every shard of a split in memory (float16: ten hours are about 0.5 GB)."""

    def __init__(self, directory: Path, split: str = "train") -> None:
        paths = sorted(Path(directory).glob(f"{split}-*.npz"))
        if not paths:
            raise AvatarCamError(f"no {split} shards in {directory}: build them with `avatarcam corpus`")
        mels, motions, controls, mel_lengths, frame_lengths = [], [], [], [], []
        for path in paths:
            with np.load(path) as shard:
                mels.append(shard["mel"])
                motions.append(shard["motion"])
                controls.append(shard["controls"])
                mel_lengths.append(np.diff(shard["mel_offsets"]))
                frame_lengths.append(np.diff(shard["frame_offsets"]))
        self.mel = np.concatenate(mels)
        self.motion = np.concatenate(motions)
        self.controls = np.concatenate(controls).astype(np.float32)
        self.mel_length = np.concatenate(mel_lengths)
        self.frames = np.concatenate(frame_lengths)
        self.mel_start = np.concatenate([[0], np.cumsum(self.mel_length)[:-1]])
        self.frame_start = np.concatenate([[0], np.cumsum(self.frames)[:-1]])
        self.cues = np.concatenate([teacher_cues(self.motion[a:a + n].astype(np.float32))
                                    for a, n in zip(self.frame_start, self.frames)])
        self.paths = paths

    @property
    def hours(self) -> float:
        return float(self.frames.sum()) / latent.FPS / 3600

    def stats(self) -> dict[str, np.ndarray]:
        sample = self.mel[:: max(1, len(self.mel) // 200000)].astype(np.float32)
        motion = self.motion.astype(np.float32)
        return {"mel_mean": sample.mean(0), "mel_std": sample.std(0) + 1e-3,
                "motion_mean": motion.mean(0), "motion_std": np.maximum(motion.std(0), STD_FLOOR)}

    def batch(self, rng: np.random.Generator, size: int, chunk: int, config: Config, stats: dict[str, np.ndarray],
              lookahead: np.ndarray | None = None, colour_db: float = 0.0,
              warp_by: float = 0.0) -> dict[str, np.ndarray]:
        """`size` windows of `config.past` context frames and `chunk` frames to generate, their mel
        coloured (`colour`) up to +-`colour_db` dB/octave and their formants moved (`warp`) by up
        to e^+-`warp_by` where those are not 0."""
        p = config.past
        eligible = np.flatnonzero(self.frames >= chunk)
        weights = self.frames[eligible].astype(np.float64)
        utterance = eligible[rng.choice(len(eligible), size=size, p=weights / weights.sum())]
        start = (rng.random(size) * (self.frames[utterance] - chunk + 1)).astype(np.int64)
        frames = start[:, None] + np.arange(-p, chunk)[None, :]  # (B, P + C)
        rows = np.clip(frames, 0, None) + self.frame_start[utterance][:, None]
        motion = self.motion[rows].astype(np.float32)
        motion[frames < 0] = 0.0  # before the utterance: the portrait at rest
        fresh = rng.random(size) < 0.1  # a stream that just started: nothing shown yet
        motion[fresh, :p] = 0.0
        motion = (motion - stats["motion_mean"]) / stats["motion_std"]
        cues = self.cues[rows]
        cues[frames < 0] = np.eye(CUES, dtype=np.float32)[-1]  # before the utterance: at rest, cues given

        mel_index = config.window_rows(frames)  # (B, P + C, W)
        if lookahead is None:
            lookahead = np.full(size, config.mel_future)
        last = mel.nearest_rows(frames[:, -1], latent.FPS) + lookahead
        valid = (mel_index >= 0) & (mel_index < self.mel_length[utterance][:, None, None]) & \
            (mel_index <= last[:, None, None])
        inside = np.clip(mel_index, 0, self.mel_length[utterance][:, None, None] - 1)
        gathered = self.mel[inside + self.mel_start[utterance][:, None, None]]
        gathered = np.where(valid[..., None], gathered.astype(np.float32), mel.FLOOR_DB)
        if colour_db:
            gathered = colour(gathered, rng, colour_db)
        if warp_by:
            gathered = warp(gathered, np.exp(rng.uniform(-warp_by, warp_by, size)))
        windows = ((gathered - stats["mel_mean"]) / stats["mel_std"]).reshape(size, p + chunk, -1)
        return {"past": motion[:, :p], "target": motion[:, p:], "mel": windows.astype(np.float32),
                "controls": self.controls[utterance], "cues": cues}
