"""`avatarcam corpus`: synthesise the training corpus in resumable shards.

Each shard holds about SHARD_S seconds of utterances: log-mel of the degraded audio, the teacher
motion at 30 fps, the controls each was made with, and the phonemes (for evaluation). Shard n of
a split is drawn from seed (seed, split, n) alone, so shards can be built in any order, by any
number of workers, and a stopped build resumes where it was.

Training voices and languages are disjoint from the test split's: the test shards use voices
and one language the model never hears in training.
"""

from __future__ import annotations

import ctypes
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from avatarcam.audio import mel
from avatarcam.audio.features import frame_count, loudness_envelope
from avatarcam.corpus import augment, festival, music, teacher, text
from avatarcam.corpus.espeak import Phone, Synthesizer
from avatarcam.errors import AvatarCamError

log = logging.getLogger(__name__)

SHARD_S = 600.0
TRAIN_LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "pl", "ru")
TEST_LANGUAGE = "nl"
TRAIN_VOICES = ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f5", "klatt", "klatt3", "Andy", "Annie",
                "Denis", "Steph")
TEST_VOICES = ("m6", "f4", "Michael")
SONG_SHARE = 0.1
# The share of spoken (not sung) training utterances that Festival's voices of recorded people
# speak, in English (`avatarcam.corpus.festival`), is `festival_share`; the held-out split stays
# espeak-ng's. The shipped model's corpus has none (0, the default, draws nothing): at 0.3 real
# speech only traded places (docs/decisions.md, "Festival's recorded voices in the corpus").
# `band_share` is the share of training utterances a band plays around and under
# (`avatarcam.corpus.music`): bars of it before the voice comes in and after it ends, where the
# teacher's mouth rests. The held-out split has none, nor has the shipped model's corpus: it keeps
# the mouth still over music but costs real speech about 0.01 of r, more than a run's luck
# (docs/decisions.md, "Music under the voice in the corpus").
# how each style sounds: (speed factor, pitch shift, pitch range shift)
_STYLE_VOICE = {"neutral": (1.0, 0, 0), "happy": (1.08, 12, 15), "sad": (0.85, -10, -20), "angry": (1.1, 5, 10),
                "surprised": (1.0, 18, 25)}


def pitch_track(samples: np.ndarray, frames: int, rate: int = mel.RATE) -> np.ndarray:
    """f0 in Hz at each video frame time (0 where unvoiced), by normalised autocorrelation."""
    width, low, high = int(0.04 * rate), rate // 400, rate // 60
    centres = (np.arange(frames) * rate) // teacher.FPS
    padded = np.concatenate([np.zeros(width), samples, np.zeros(width)])
    windows = padded[centres[:, None] + np.arange(width)[None, :] + width // 2] * np.hanning(width)
    spectrum = np.fft.rfft(windows, 2 * width)
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[:, :width]
    ac /= np.maximum(ac[:, :1], 1e-12)
    lag = low + np.argmax(ac[:, low:high], axis=1)
    peak = ac[np.arange(frames), lag]
    energy = 10 * np.log10(np.mean(windows ** 2, axis=1) + 1e-12)
    voiced = (peak > 0.45) & (energy > energy.max(initial=-120) - 35)
    return np.where(voiced, rate / lag, 0.0)


def _utterance(synth: Synthesizer, rng: np.random.Generator, languages, voices, babble, natural=(),
               festival_share: float = 0.0, band_share: float = 0.0):
    language = str(rng.choice(languages))
    voice = str(rng.choice(voices))
    controls = teacher.sample_controls(rng)
    speed_gain, pitch_shift, range_shift = _STYLE_VOICE[controls.emotion]
    sung = rng.random() < SONG_SHARE
    by_festival = bool(natural) and not sung and rng.random() < festival_share
    if by_festival:
        # Festival's voices keep their own pitch: the tape speed change below varies it
        language, voice = "en", str(rng.choice(natural))
        speech = festival.speak(text.paragraph(language, rng), voice, speed=rng.uniform(130, 250) * speed_gain)
    else:
        speech = synth.speak(
            text.song(language, rng) if sung else text.paragraph(language, rng), f"{language}+{voice}",
            speed=int(rng.uniform(130, 250) * speed_gain),
            pitch=int(np.clip(rng.uniform(25, 75) + pitch_shift, 0, 99)),
            pitch_range=int(np.clip(rng.uniform(30, 80) + range_shift, 0, 99)), ssml=sung)
    clean = resample_poly(speech.samples, mel.RATE // 50, speech.rate // 50).astype(np.float32)
    stretch = 1.0
    if rng.random() < 0.3:  # tempo and pitch together, as a tape running fast or slow
        down = int(rng.integers(90, 111))
        clean = resample_poly(clean, 100, down).astype(np.float32)
        stretch = 100 / down
    lead, accompaniment = 0.0, None
    if band_share > 0 and rng.random() < band_share:
        clean, accompaniment, lead = music.accompany(clean, rng)
    phones = [Phone(p.name, lead + p.start * stretch, lead + p.end * stretch) for p in speech.phones]
    words = [lead + w * stretch for w in speech.words]
    duration = len(clean) / mel.RATE
    frames = frame_count(len(clean), mel.RATE, teacher.FPS)
    motion = teacher.track(phones, words, duration, frames, pitch_track(clean, frames),
                           loudness_envelope(clean, mel.RATE, teacher.FPS), controls, rng,
                           stops_at_release=not by_festival)
    heard = augment.degrade(clean if accompaniment is None else clean + accompaniment, rng, babble)
    return dict(mel=mel.log_mel(heard), motion=motion, controls=controls.vector(), phones=phones, sung=sung,
                language=language, voice=voice, clean=clean, heard=heard)


def build_shard(path: Path, split: str, index: int, seed: int, seconds: float = SHARD_S,
                festival_share: float = 0.0, band_share: float = 0.0) -> Path:
    """Write one shard of about `seconds` of speech (atomically: a stopped build leaves no half
    shard behind)."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, index])
    ctypes.CDLL(None).srand(index)  # espeak-ng draws noise from the C library's rand()
    languages = TRAIN_LANGUAGES if split == "train" else TRAIN_LANGUAGES + (TEST_LANGUAGE,) * 3
    voices = TRAIN_VOICES if split == "train" else TEST_VOICES
    natural = tuple(festival.VOICES) if split == "train" and festival_share > 0 else ()
    synth = Synthesizer()
    items, babble = [], None
    spoken = 0.0
    while spoken < seconds:
        item = _utterance(synth, rng, languages, voices, babble, natural, festival_share,
                          band_share if split == "train" else 0.0)
        babble = item.pop("clean")
        items.append(item)
        spoken += len(babble) / mel.RATE
    # the held-out split keeps its (degraded) audio: evaluation runs the engine on it end to end
    audio = {} if split == "train" else {
        "audio": np.concatenate([np.round(it["heard"] * 32767) for it in items]).astype(np.int16),
        "audio_offsets": np.cumsum([0] + [len(it["heard"]) for it in items])}
    np_phones = [(i, p.name, p.start, p.end) for i, item in enumerate(items) for p in item["phones"]]
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp,
             mel=np.concatenate([it["mel"] for it in items]).astype(np.float16),
             mel_offsets=np.cumsum([0] + [len(it["mel"]) for it in items]),
             motion=np.concatenate([it["motion"] for it in items]).astype(np.float16),
             frame_offsets=np.cumsum([0] + [len(it["motion"]) for it in items]),
             controls=np.stack([it["controls"] for it in items]),
             sung=np.array([it["sung"] for it in items]),
             language=np.array([it["language"] for it in items]),
             voice=np.array([it["voice"] for it in items]),
             phone_utterance=np.array([p[0] for p in np_phones], np.int32),
             phone_name=np.array([p[1] for p in np_phones]),
             phone_span=np.array([(p[2], p[3]) for p in np_phones], np.float32).reshape(-1, 2), **audio)
    os.replace(tmp, path)
    return path


def build(out: Path, hours: float = 10.0, test_hours: float = 0.5, jobs: int = 2, seed: int = 0,
          progress: bool = True, shard_seconds: float = SHARD_S, festival_share: float = 0.0,
          band_share: float = 0.0) -> list[Path]:
    """Build (or finish building) the corpus in `out`; returns every shard path.

    Each shard is made in a fresh process: espeak-ng keeps synthesis state from one utterance to
    the next, so only a shard that starts from a fresh library is the same on every build.
    """
    from tqdm import tqdm

    for name, share in (("festival", festival_share), ("band", band_share)):
        if not 0.0 <= share <= 1.0:
            raise AvatarCamError(f"{name} share {share} is not a share: give 0 to 1")
    out.mkdir(parents=True, exist_ok=True)
    plan = [(out / f"{split}-{i:05d}.npz", split, i) for split, h in (("train", hours), ("test", test_hours))
            for i in range(int(np.ceil(h * 3600 / shard_seconds)))]
    todo = [p for p in plan if not p[0].exists()]
    if any(split == "train" for _, split, _ in todo):  # before any work: what the training split needs
        if festival_share > 0:
            festival.executable()
        if band_share > 0:
            music.instruments()
    log.info("corpus: %d shards of %.0f s in %s, %d to build", len(plan), shard_seconds, out, len(todo))
    with ProcessPoolExecutor(max_workers=jobs, max_tasks_per_child=1) as pool, \
            tqdm(total=len(plan), initial=len(plan) - len(todo), unit="shard", disable=not progress) as bar:
        for future in [pool.submit(build_shard, path, split, i, seed, shard_seconds, festival_share, band_share)
                       for path, split, i in todo]:
            future.result()
            bar.update()
    return [p for p, _, _ in plan]
