"""Lip sync judged phoneme by phoneme, on renders and on real people filmed speaking.

Every clip, rendered or real, is measured the same way from its video file alone (`measure_file`):
- the audio track is decoded with its start time and force-aligned to the clip's transcript by
  pocketsphinx (`align`: its en-us model, dictionary and language model ship in the wheel; with no
  transcript, the clip is recognised first and its own words aligned);
- every video frame is judged by the Face Landmarker (video mode) and its presentation time taken
  from the file, so the phones land on the frames by the container's own clock (audio and video
  start offsets, AAC priming, whatever the muxer did), not by counting;
- from the landmarks: the inner-lip gap (13-14) and the mouth width at the outer lip corners
  (61-291), both over the inter-ocular distance (outer eye corners 33-263), in the image plane.

Per clip (`phone_measures`):
- phone_r: r between the lip gap and each phone's openness (`OPENNESS`) over speech frames, at the
  best lag within ±MAX_LAG frames (positive: the mouth moves after the sound);
- closure: for each /m b p/, the smallest lip gap over the phone's frames ±1 over the median gap
  in speech; the clip's median of those, beside its chance level (the same windows at random speech
  frames, fixed seed);
- open/bilabial: median gap on open vowels over median gap on /m b p/;
- rounding: median mouth width on UW UH OW OY W over that on the spread vowels IY IH EY EH AE;
- env_r (diagnostic only): r between the lip gap and the loudness envelope, best lag within ±5.

Renders: a portrait speaks each English clip in ../shared/assets/speech (and the LibriVox clips of
pocketsphinx's own test data, taken from its source distribution on PyPI) through each engine:
motion composed on the portrait's rest, rendered at 512x512, written by the product's VideoSink
with the voice muxed in (H.264 + AAC), then measured from that file like a person's. Engines: the
diffusion model at its offline setting (chunk OFFLINE_CHUNK, the chain's default lookahead, as
`avatarcam render`) and at a live setting (--chunk, --lookahead-ms, --steps; default: the live
settings of avatarcam.config), and the DSP driver. Honesty checks on every clip: the still
portrait (the rest frame, the voice muxed in) and each render's lips against its audio shifted
by SHIFT_S. People: every clip in ../shared/assets/talking (transcript from its .txt, else
recognised). `timing_checks` follows time through the chain (see its docstring).

    python -m bench.phonemes [--quick] [--seeds N] [--chunk N] [--lookahead-ms MS] [--steps N]
                             [--portrait grace_hopper] [--no-people] [--name phonemes]
    python -m bench.phonemes --measure VIDEO [--text TRANSCRIPT]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from avatarcam import latent
from bench import judge, lipsync

RATE = 16000
SIZE = lipsync.SIZE
MAX_LAG = 3  # phone_r's lag search, frames
ENVELOPE_LAG = 5  # the envelope r's, as bench.lipsync
SHIFT_S = 0.5  # the shifted-audio honesty check
CHANCE_DRAWS = 200  # random windows per /m b p/ for the closure's chance level
QUICK_CLIPS = ("en_ljspeech_LJ001-0001", "pocketsphinx_0870")
TALKING = judge.SHARED / "assets" / "talking"
CACHE = judge.ENROLL_CACHE.parent / "pocketsphinx-test-data"

# Landmarks (MediaPipe face mesh): inner lips, outer lip corners, outer eye corners.
UPPER_LIP, LOWER_LIP = 13, 14
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
EYE_LEFT, EYE_RIGHT = 33, 263

# How open each ARPAbet phone (pocketsphinx's en-us set, stress dropped) holds the lips. Bilabials
# shut them; labiodentals nearly (lower lip on the teeth); open vowels open them most. Mid: the
# vowels between close and open (EH EY ER OW OY). Other consonants (stops, fricatives, nasals,
# liquids, glides, HH) 0.3. SIL and the fillers (+NSN+, +SPN+, ...) are not speech: NaN.
BILABIAL = ("M", "B", "P")
LABIODENTAL = ("F", "V")
CLOSE = ("IY", "IH", "UW", "UH")
MID = ("EH", "EY", "ER", "OW", "OY")
OPEN = ("AA", "AE", "AH", "AO", "AW", "AY")
CONSONANT = ("CH", "D", "DH", "G", "HH", "JH", "K", "L", "N", "NG", "R", "S", "SH", "T", "TH", "W", "Y", "Z", "ZH")
OPENNESS = {**{p: 0.0 for p in BILABIAL}, **{p: 0.1 for p in LABIODENTAL}, **{p: 0.3 for p in CONSONANT},
            **{p: 0.4 for p in CLOSE}, **{p: 0.6 for p in MID}, **{p: 1.0 for p in OPEN}}
ROUNDED = ("UW", "UH", "OW", "OY", "W")
SPREAD = ("IY", "IH", "EY", "EH", "AE")

# Texts of the shared clips. LJ Speech's is the corpus's own. The codec2 clip reads Harvard sentences
# (IEEE 1969, list 1: nos. 1, 2, 3 and 9), as recognising it shows. LibriSpeech's (Mrs. Charles Bryce,
# "The Ashiel Mystery", read by Garth Comira) as a large recogniser reads it: pocketsphinx's own
# recognition garbles a third of its words ("scarlet smokestack" as "skirt one smokes the"), which
# put its rounded and spread vowels in the wrong places (docs/decisions.md, "Lip shapes").
TRANSCRIPTS = {"en_ljspeech_LJ001-0001": "Printing, in the only sense with which we are at present concerned, "
               "differs from most if not from all the arts and crafts represented in the Exhibition",
               "en_codec2_speech_orig_16k": "The birch canoe slid on the smooth planks. Glue the sheet to the dark "
               "blue background. It's easy to tell the depth of a well. Four hours of steady work faced us.",
               "en_librispeech_5703-47212-0000": "With her white paint and her scarlet smokestack the Inverashiel, one "
               "of the two small steamers that during the summer months plied up and down the loch and incidentally "
               "carried on communication between Inverashiel and Crianan"}
# Names in those texts that pocketsphinx's dictionary lacks, in its phones.
PRONUNCIATIONS = {"inverashiel": "IH N V ER AE SH IY L", "crianan": "K R IY AH N AH N"}


# ---------------------------------------------------------------------------------------------
# Alignment

@dataclass
class Segment:
    name: str
    start: float  # seconds from the first audio sample
    end: float


@dataclass
class Alignment:
    text: str
    recognised: bool  # no transcript: the words are pocketsphinx's own
    words: list[Segment]
    phones: list[Segment]
    offset: float = 0.0  # seconds from a pocketsphinx frame's start to where its boundary is placed


def words_of(text: str, decoder) -> list[str]:
    """The transcript as dictionary words: lower case, punctuation dropped (apostrophes kept); the
    names in PRONUNCIATIONS added to the decoder's dictionary."""
    words = re.findall(r"[a-z']+", text.lower())
    for word in set(words) & PRONUNCIATIONS.keys():
        if decoder.lookup_word(word) is None:
            decoder.add_word(word, PRONUNCIATIONS[word], True)
    missing = [w for w in words if decoder.lookup_word(w) is None]
    if missing:
        raise ValueError(f"words not in pocketsphinx's dictionary: {missing}")
    return words


def align(samples: np.ndarray, text: str | None = None, rate: int = RATE) -> Alignment:
    """Force-align `text` to the 16 kHz mono samples (or recognise them first when `text` is None).

    pocketsphinx's frames are 10 ms hops of a 25.6 ms window: a boundary between frames i-1 and i
    lies between their windows' centres, at i * 10 ms + (25.6 - 10) / 2 ms of the samples.
    """
    from pocketsphinx import Decoder

    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    decoder = Decoder(samprate=rate, bestpath=False)  # bestpath re-scores words, not phones: off, as for alignment
    hop = 1.0 / decoder.config["frate"]
    offset = (decoder.config["wlen"] - hop) / 2
    recognised = text is None
    if recognised:
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        text = decoder.hyp().hypstr if decoder.hyp() is not None else ""
        if not text:
            return Alignment("", True, [], [], offset)
    words = words_of(text, decoder)
    decoder.set_align_text(" ".join(words))
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    decoder.set_alignment()  # second pass: phone and state segments within the words found
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    seconds = lambda frame: frame * hop + offset  # noqa: E731
    out_words, out_phones = [], []
    for word in decoder.get_alignment():
        name = re.sub(r"\(\d+\)$", "", word.name)  # "was(2)": the dictionary's second pronunciation
        out_words.append(Segment(name, seconds(word.start), seconds(word.start + word.duration)))
        out_phones += [Segment(p.name, seconds(p.start), seconds(p.start + p.duration)) for p in word]
    return Alignment(" ".join(words), recognised, out_words, out_phones, offset)


def spoken(alignment: Alignment) -> list[Segment]:
    """The words, without silences and fillers."""
    return [w for w in alignment.words if not w.name.startswith(("<", "[", "+"))]


def silence_agreement(alignment: Alignment, samples: np.ndarray, rate: int = RATE) -> dict:
    """Is the alignment where the sound is? The share of phone time the audio calls speech, and of
    aligned silence it calls silent (audio.features.silent_frames at 100 frames a second)."""
    from avatarcam.audio.features import silent_frames

    silent = silent_frames(samples, rate, 100)
    t = np.arange(len(silent)) / 100
    labels = phone_labels(alignment, t)
    speech = np.array([l in OPENNESS for l in labels])
    pause = np.array([l == "SIL" for l in labels])
    return {"phones_in_sound": float(np.mean(~silent[speech])) if speech.any() else float("nan"),
            "silences_quiet": float(np.mean(silent[pause])) if pause.any() else float("nan")}


def phone_labels(alignment: Alignment, times: np.ndarray) -> list[str]:
    """The phone at each instant (seconds of the audio); '' outside the alignment."""
    if not alignment.phones:
        return [""] * len(times)
    starts = np.array([p.start for p in alignment.phones])
    ends = np.array([p.end for p in alignment.phones])
    k = np.searchsorted(starts, times, side="right") - 1
    inside = (k >= 0) & (times < ends[np.maximum(k, 0)])
    return [alignment.phones[i].name if ok else "" for i, ok in zip(k, inside)]


def openness_at(alignment: Alignment, times: np.ndarray) -> np.ndarray:
    return np.array([OPENNESS.get(l, np.nan) for l in phone_labels(alignment, times)])


def fine_lag(gap: np.ndarray, alignment: Alignment, times: np.ndarray, fps: float, step: float = 0.1) -> float:
    """The lag in frames, to `step`, at which the lip gap best follows the phones' openness: the
    phones moved by d / fps seconds, d in [-MAX_LAG, MAX_LAG] (positive: the mouth after the sound)."""
    lags = np.arange(-MAX_LAG, MAX_LAG + step / 2, step)
    rs = [judge.pearson(gap, openness_at(alignment, times - d / fps)) for d in lags]
    return round(float(lags[int(np.nanargmax(rs))]), 2) if np.isfinite(rs).any() else float("nan")


# ---------------------------------------------------------------------------------------------
# Reading a clip: frames and audio on the file's own clock

@dataclass
class Clip:
    """What a video file shows and says, measured."""

    times: np.ndarray   # (T,) each frame's presentation time, seconds of the audio track
    gap: np.ndarray     # (T,) inner-lip gap / inter-ocular distance, NaN without a face
    width: np.ndarray   # (T,) mouth width (outer corners) / inter-ocular distance
    audio: np.ndarray   # 16 kHz mono float32
    fps: float
    video_start: float  # the streams' start times in the file, seconds
    audio_start: float


def lip_tracks(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lip gap and mouth width over the inter-ocular distance, from (T, 478, 2+) landmarks."""
    p = np.asarray(points, np.float64)[..., :2]
    dist = lambda a, b: np.linalg.norm(p[:, a] - p[:, b], axis=-1)  # noqa: E731
    eyes = dist(EYE_LEFT, EYE_RIGHT)
    return dist(UPPER_LIP, LOWER_LIP) / eyes, dist(MOUTH_LEFT, MOUTH_RIGHT) / eyes


def read_audio(path: Path) -> tuple[np.ndarray, float]:
    """The first audio track as 16 kHz mono, and the time of its first decoded sample. The decoder
    drops what the container marks to skip (AAC priming), so that time is the first heard sample's."""
    import av
    from av.audio.resampler import AudioResampler

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = AudioResampler(format="flt", layout="mono", rate=RATE)
        chunks, start = [], None
        for frame in container.decode(stream):
            if start is None:
                start = float(frame.time)
            chunks += [f.to_ndarray()[0] for f in resampler.resample(frame)]
        chunks += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32), start or 0.0


def read_clip(path: Path, seconds: float | None = None) -> Clip:
    """Judge every frame of a video file (up to `seconds`) and read its audio, both on its clock."""
    import av

    audio, audio_start = read_audio(path)
    times: list[float] = []

    def frames():
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if seconds is not None and times and frame.time - times[0] >= seconds:
                    return
                times.append(float(frame.time))
                yield frame.to_ndarray(format="rgb24")

    with av.open(str(path)) as container:
        fps = float(container.streams.video[0].average_rate)
    with judge.Judge(video=True, fps=fps) as j:
        seen = j.measure(frames())
    gap, width = lip_tracks(seen.points)
    t = np.array(times)
    return Clip(t - audio_start, gap, width, audio, fps, float(t[0]) if len(t) else 0.0, audio_start)


# ---------------------------------------------------------------------------------------------
# The measures

def closure_depths(gap: np.ndarray, labels: list[str], speech: np.ndarray, seed: int = 0) -> tuple[list[float], float]:
    """Each /m b p/ run of frames: its smallest gap over the run ±1 frame, over the median gap in
    speech; and the chance level: the median of the same over windows of the same lengths placed
    at random speech frames (seed fixed)."""
    median = float(np.nanmedian(gap[speech]))
    runs, k = [], 0
    while k < len(labels):
        if labels[k] in BILABIAL:
            j = k
            while j + 1 < len(labels) and labels[j + 1] in BILABIAL:
                j += 1
            runs.append((max(k - 1, 0), min(j + 2, len(labels))))
            k = j + 1
        else:
            k += 1
    depth = lambda a, b: float(np.nanmin(gap[a:b])) / median if np.isfinite(gap[a:b]).any() else np.nan  # noqa: E731
    depths = [depth(a, b) for a, b in runs]
    rng = np.random.default_rng(seed)
    where = np.flatnonzero(speech)
    chance = [depth(c, c + (b - a)) for a, b in runs
              for c in rng.choice(where, CHANCE_DRAWS) - (b - a) // 2 if 0 <= c and c + (b - a) <= len(gap)]
    return depths, float(np.nanmedian(chance)) if chance else float("nan")


def ratio(a: np.float64, b: np.float64) -> float:
    """a / b; inf where a mouth shut on every /m b p/ makes b 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(a / b)


def phone_measures(gap: np.ndarray, width: np.ndarray, labels: list[str], envelope: np.ndarray | None = None) -> dict:
    """The per-clip figures (module docstring) from lip tracks and the phone on each frame."""
    labels = list(labels)
    openness = np.array([OPENNESS.get(l, np.nan) for l in labels])
    speech = np.isfinite(openness) & np.isfinite(gap)
    is_ = lambda names: np.array([l in names for l in labels]) & np.isfinite(gap)  # noqa: E731
    lag, r, by_lag = judge.best_lag(gap, openness, MAX_LAG)
    depths, chance = closure_depths(gap, labels, speech) if speech.any() else ([], float("nan"))
    median = lambda x, m: np.float64(np.median(x[m])) if m.any() else np.float64("nan")  # noqa: E731
    out = {"speech_frames": int(speech.sum()), "phone_r": r, "phone_lag": lag, "phone_r_lag0": by_lag[0],
           "phone_r_by_lag": by_lag, "bilabials": len(depths),
           "closure": float(np.nanmedian(depths)) if depths else float("nan"), "closure_chance": chance,
           "open_over_bilabial": ratio(median(gap, is_(OPEN)), median(gap, is_(BILABIAL))),
           "rounding": ratio(median(width, is_(ROUNDED)), median(width, is_(SPREAD))),
           "rounded_frames": int(is_(ROUNDED).sum()), "spread_frames": int(is_(SPREAD).sum())}
    if envelope is not None:
        env_lag, env_r, _ = judge.best_lag(gap, envelope, ENVELOPE_LAG)
        out.update(env_r=env_r, env_lag=env_lag)
    return out


def envelope_at(audio: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The loudness envelope (dB) at each frame time (audio.features.loudness_envelope at 100 Hz)."""
    from avatarcam.audio.features import loudness_envelope

    envelope = loudness_envelope(audio, RATE, 100)
    k = np.clip(np.round(times * 100).astype(int), 0, len(envelope) - 1)
    return np.where((times >= 0) & (times * 100 < len(envelope)), envelope[k], np.nan)


def measure(clip: Clip, alignment: Alignment) -> dict:
    """The clip's figures; and its lag to a tenth of a frame, and the lag had each frame stood for
    the middle of its display interval and each pocketsphinx frame's boundary for its start (both
    move the phones earlier against the frames: 0.5 frame and `alignment.offset`), a diagnostic of
    how a measure's own clock moves the lag."""
    out = phone_measures(clip.gap, clip.width, phone_labels(alignment, clip.times), envelope_at(clip.audio, clip.times))
    late = clip.times + 0.5 / clip.fps + alignment.offset
    naive, _, _ = judge.best_lag(clip.gap, openness_at(alignment, late), MAX_LAG)
    return {**out, "fine_lag": fine_lag(clip.gap, alignment, clip.times, clip.fps), "naive_lag": naive}


def measure_file(path: Path, text: str | None, seconds: float | None = None) -> tuple[dict, Clip, Alignment]:
    """A video file's figures: its audio aligned to `text` (None: recognised), its lips judged."""
    clip = read_clip(path, seconds)
    audio = clip.audio if seconds is None else clip.audio[: int((seconds + 0.5) * RATE)]
    alignment = align(audio, text)
    out = measure(clip, alignment)
    out.update(seconds=len(clip.times) / clip.fps, video_start=clip.video_start, audio_start=clip.audio_start,
               text=alignment.text, recognised=alignment.recognised, **silence_agreement(alignment, audio))
    return out, clip, alignment


def shifted(clip: Clip, alignment_text: str, shift_s: float = SHIFT_S) -> dict:
    """The same lips against the audio delayed by `shift_s` (re-aligned): should score near 0."""
    audio = np.concatenate([np.zeros(int(shift_s * RATE), np.float32), clip.audio])
    return measure(Clip(clip.times, clip.gap, clip.width, audio, clip.fps, 0.0, 0.0), align(audio, alignment_text))


# ---------------------------------------------------------------------------------------------
# Material

@dataclass
class Speech:
    name: str
    samples: np.ndarray
    text: str | None  # None: recognise
    note: str = ""


def transcript_file(path: Path) -> str | None:
    """A talking clip's transcript from its .txt: the quoted sentence, or the text before a '('."""
    txt = path.with_suffix(".txt")
    if not txt.is_file():
        return None
    line = txt.read_text().strip()
    quoted = re.search(r"'([^']+)'", line)
    return quoted.group(1) if quoted else line.split("(")[0].strip()


def pocketsphinx_clips() -> list[Path]:
    """pocketsphinx's own test recordings (LibriVox, with transcripts): not in its wheel, so taken
    from its source distribution on PyPI (pip download), once, into CACHE. [] when that fails."""
    import importlib.metadata

    version = importlib.metadata.version("pocketsphinx")
    folder = CACHE / version
    if not folder.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                                   ":all:", f"pocketsphinx=={version}", "-d", tmp], capture_output=True, text=True)
            archives = list(Path(tmp).glob("pocketsphinx-*.tar.gz"))
            if done.returncode or not archives:
                print(f"pocketsphinx's test recordings are unavailable (pip download failed): {done.stderr[-300:]}")
                return []
            with tarfile.open(archives[0]) as tar:
                wanted = [m for m in tar.getmembers() if "/test/data/librivox/" in m.name
                          and m.name.endswith((".wav", ".txt"))]
                folder.mkdir(parents=True, exist_ok=True)
                for member in wanted:
                    (folder / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    return sorted(folder.glob("*.wav"))


def speech_material(quick: bool) -> list[Speech]:
    """Every English speech clip in ../shared/assets/speech and pocketsphinx's own (quick: two). Not
    the song: over its band pocketsphinx finds 4 words in 10 s, and 37% of its phones fall where
    the audio has no voice (a first run): there are no phones there to judge lips by."""
    from avatarcam.audio.io import load_audio

    out = []
    for path in lipsync.clip_paths(None):
        if not path.stem.startswith("en_"):
            continue  # another language (pocketsphinx's model is en-us), or the song
        out.append(Speech(path.stem, load_audio(path, rate=RATE), TRANSCRIPTS.get(path.stem)))
    for path in pocketsphinx_clips():
        text = path.with_suffix(".txt")
        out.append(Speech("pocketsphinx_" + path.stem.rsplit("-", 1)[-1], load_audio(path, rate=RATE),
                          text.read_text().strip() if text.is_file() else None, "LibriVox, pocketsphinx test data"))
    if quick:  # the two with a transcript, whole (a cut clip's transcript would not match)
        out = [s for s in out if s.name in QUICK_CLIPS] or out[:2]
    return out


def talking_clips(quick: bool) -> list[Path]:
    if not TALKING.is_dir():
        return []
    paths = sorted(p for p in TALKING.iterdir() if p.suffix in (".mpg", ".mp4"))
    return paths[:4] if quick else paths


# ---------------------------------------------------------------------------------------------
# Rendering through the product's file sink

@dataclass
class Setting:
    name: str
    engine: str
    options: dict


def settings(chunk: int, lookahead_ms: float, steps: int) -> list[Setting]:
    from avatarcam.motion.diffusion import OFFLINE_CHUNK

    return [Setting("diffusion offline", "diffusion", {"chunk": OFFLINE_CHUNK, "steps": steps}),
            Setting("diffusion live", "diffusion", {"chunk": chunk, "lookahead_s": lookahead_ms / 1000, "steps": steps}),
            Setting("dsp", "dsp", {})]


def write_video(path: Path, frames, samples: np.ndarray) -> None:
    """Frames and the voice into an mp4 by the product's VideoSink (H.264 + AAC), as `avatarcam render`."""
    from avatarcam.camera.file import VideoSink

    with VideoSink(path, size=SIZE, fps=latent.FPS, audio=samples, audio_rate=RATE) as sink:
        for frame in frames:
            sink.write(frame)


def render_file(path: Path, renderer, motion: np.ndarray, rest: np.ndarray, samples: np.ndarray) -> None:
    write_video(path, (renderer.render(f) for f in judge.compose(motion, rest)), samples)


def commanded(motion: np.ndarray, alignment: Alignment) -> dict:
    """The driver's own track, no renderer, no file: its commanded opening (jawOpen - mouthClose,
    the lips' gap in ARKit's terms) against the phones at frame k's instant k / FPS."""
    opening = motion[:, latent.index("jawOpen")] - motion[:, latent.index("mouthClose")]
    times = np.arange(len(motion)) / latent.FPS
    lag, r, _ = judge.best_lag(opening, openness_at(alignment, times), MAX_LAG)
    return {"cmd_phone_r": r, "cmd_phone_lag": lag, "cmd_fine_lag": fine_lag(opening, alignment, times, latent.FPS)}


# ---------------------------------------------------------------------------------------------
# Where time goes: renderer, muxer and decoder with known inputs

def timing_checks(renderer, rest: np.ndarray) -> dict:
    """A known step through the renderer and the file: the mouth opens at frame STEP and a click
    sounds at that frame's instant (STEP / FPS) in the muxed audio. Read back as `read_clip` reads
    every clip: the frame where the lip gap rises and the click's time, on the file's clock. Both
    at STEP (0 frames apart) means the renderer, the muxer and the reader add no lag."""
    step, n = 15, 30
    opened = rest.copy()
    opened[latent.index("jawOpen")] = 0.7
    frames = [renderer.render(rest if k < step else opened) for k in range(n)]
    samples = np.zeros(int(n / latent.FPS * RATE), np.float32)
    at = int(step / latent.FPS * RATE)
    samples[at: at + 80] = 0.8  # a 5 ms click
    with tempfile.TemporaryDirectory(prefix="avatarcam-phonemes-") as tmp:
        path = Path(tmp) / "step.mp4"
        write_video(path, frames, samples)
        clip = read_clip(path)
    half = (np.nanmin(clip.gap) + np.nanmax(clip.gap)) / 2
    first_open = int(np.argmax(clip.gap > half))
    click = float(np.argmax(np.abs(clip.audio) > 0.4)) / RATE
    return {"step_frame": step, "opened_at_frame": first_open, "opened_at_s": float(clip.times[first_open]),
            "click_at_s": click, "video_start": clip.video_start, "audio_start": clip.audio_start,
            "frames_read": len(clip.times),
            "lag_frames": (float(clip.times[first_open]) - click) * latent.FPS}


# ---------------------------------------------------------------------------------------------
# The run

def run_speech(speech: Speech, portrait, renderer, modes: list[Setting], seeds: list[int]) -> dict:
    """One clip: aligned once from its samples; then the still portrait and each engine and seed,
    each written to a file and measured from it."""
    reference = align(speech.samples, speech.text)
    text = reference.text
    out = {"text": text, "recognised": reference.recognised, "note": speech.note,
           "seconds": len(speech.samples) / RATE, "words": len(spoken(reference)),
           **silence_agreement(reference, speech.samples), "runs": {}}
    rest = portrait.rig.rest
    n = int(np.ceil(len(speech.samples) / RATE * latent.FPS))
    with tempfile.TemporaryDirectory(prefix="avatarcam-phonemes-") as tmp:
        path = Path(tmp) / "clip.mp4"
        still = renderer.render(judge.compose(np.zeros(latent.DIM, np.float32), rest))
        write_video(path, (still for _ in range(n)), speech.samples)
        figures, _, _ = measure_file(path, text)
        out["still"] = figures
        print(f"  still portrait: phone_r {figures['phone_r']:.2f} at lag {figures['phone_lag']}", flush=True)
        for mode in modes:
            runs = out["runs"][mode.name] = []
            for seed in seeds:
                start = time.perf_counter()
                motion = lipsync.generate(mode.engine, speech.samples, seed, **mode.options)
                render_file(path, renderer, motion, rest, speech.samples)
                figures, clip, _ = measure_file(path, text)
                figures.update(commanded(motion, reference), seed=seed,
                               shifted=shifted(clip, text), seconds_spent=time.perf_counter() - start)
                runs.append(figures)
                print(f"  {mode.name} seed {seed}: phone_r {figures['phone_r']:.2f} at lag {figures['phone_lag']} "
                      f"(commanded lag {figures['cmd_phone_lag']}), closure {figures['closure']:.2f} "
                      f"(chance {figures['closure_chance']:.2f}), rounding {figures['rounding']:.2f}, "
                      f"shifted r {figures['shifted']['phone_r']:.2f} ({figures['seconds_spent']:.0f} s)", flush=True)
    return out


def mean_of(runs: list[dict], key: str) -> float:
    values = [r[key] for r in runs if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(values)) if values else float("nan")


def spread(values: list[float]) -> str:
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return "n/a"
    return f"{np.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"


def report(data: dict) -> str:
    speech, people, t = data["speech"], data["people"], data["timing"]
    lines = ["# Lip sync phoneme by phoneme", "",
             f"Portrait {data['portrait']} at {SIZE[0]}x{SIZE[1]}, written with the voice by the product's VideoSink "
             "(H.264 + AAC) and measured from the file exactly as the people's videos are: audio decoded and "
             "force-aligned by pocketsphinx, each frame's landmarks by the Face Landmarker placed on the audio's clock "
             "by the file's timestamps. Lip gap: landmarks 13-14; mouth width: outer corners 61-291; both over the "
             "inter-ocular distance 33-263. Seeds: " + ", ".join(map(str, data["seeds"])) + " (figures: their mean)."
             + (" Quick run: two clips, one seed, four people." if data["quick"] else ""), "",
             "phone_r: r of the lip gap with each phone's openness over speech frames at the best lag in "
             f"±{MAX_LAG} (lag: + means the mouth after the sound). closure: median over /m b p/ of the smallest gap over "
             "the phone ±1 frame / median gap in speech; chance: the same windows at random speech frames. open/bil: "
             "median gap on open vowels / on /m b p/. rounding: median width on UW UH OW OY W / on IY IH EY EH AE. "
             "env_r: r with the loudness envelope (diagnostic only). cmd: the driver's own jawOpen - mouthClose "
             "against the phones (no renderer, no file). fine lag: the lag to 0.1 frame. naive lag: the best lag had "
             "each frame stood for the middle of its display interval and each pocketsphinx frame for its start "
             "(the phones then fall 0.5 frame + 7.8 ms earlier against the frames). shifted: phone_r with the audio delayed "
             f"{SHIFT_S} s (re-aligned). Settings: " + "; ".join(f"{m['name']}: {m['engine']} {m['options'] or ''}"
                                                                  for m in data["settings"]), ""]
    headers = ["clip", "setting", "phone_r", "lag", "fine lag", "naive lag", "closure", "chance", "open/bil",
               "rounding", "env_r", "cmd r", "cmd lag", "cmd fine", "shifted r"]
    rows = []
    for name, clip in speech.items():
        s = clip["still"]
        rows.append([name, "still portrait", s["phone_r"], s["phone_lag"], "", "", s["closure"], s["closure_chance"],
                     s["open_over_bilabial"], s["rounding"], s.get("env_r"), "", "", "", ""])
        for mode, runs in clip["runs"].items():
            lags = "/".join(str(r["phone_lag"]) for r in runs)
            cmd_lags = "/".join(str(r["cmd_phone_lag"]) for r in runs)
            naive = "/".join(str(r["naive_lag"]) for r in runs)
            rows.append([name, mode, mean_of(runs, "phone_r"), lags, mean_of(runs, "fine_lag"), naive,
                         mean_of(runs, "closure"), mean_of(runs, "closure_chance"), mean_of(runs, "open_over_bilabial"),
                         mean_of(runs, "rounding"), mean_of(runs, "env_r"), mean_of(runs, "cmd_phone_r"), cmd_lags,
                         mean_of(runs, "cmd_fine_lag"), float(np.mean([r["shifted"]["phone_r"] for r in runs]))])
    lines += ["## Renders, clip by clip", "", judge.table(headers, rows), ""]
    modes = [m["name"] for m in data["settings"]]
    summary = []
    for mode in modes:
        per_clip = [c["runs"][mode] for c in speech.values() if mode in c["runs"]]
        summary.append([mode, spread([mean_of(r, "phone_r") for r in per_clip]),
                        spread([mean_of(r, "closure") for r in per_clip]),
                        spread([mean_of(r, "closure_chance") for r in per_clip]),
                        spread([mean_of(r, "rounding") for r in per_clip]),
                        spread([mean_of(r, "env_r") for r in per_clip]),
                        " ".join(f"{lag:+d}" for lag in sorted({x["phone_lag"] for r in per_clip for x in r})),
                        spread([mean_of(r, "fine_lag") for r in per_clip]),
                        " ".join(f"{lag:+d}" for lag in sorted({x["naive_lag"] for r in per_clip for x in r})),
                        spread([float(np.mean([x["shifted"]["phone_r"] for x in r])) for r in per_clip])])
    stills = list(speech.values())
    summary.append(["still portrait", spread([c["still"]["phone_r"] for c in stills]), "", "", "", "", "", "", "", ""])
    groups = {"people (talking/)": list(people.values()),  # recognised clips' phones may be wrong: apart too
              "people, transcribed": [p for p in people.values() if not p["recognised"]]}
    for who, figures in groups.items():
        if not figures:
            continue
        summary.append([who, spread([p["phone_r"] for p in figures]),
                        spread([p["closure"] for p in figures]), spread([p["closure_chance"] for p in figures]),
                        spread([p["rounding"] for p in figures]), spread([p["env_r"] for p in figures]),
                        " ".join(f"{lag:+d}" for lag in sorted({p["phone_lag"] for p in figures})),
                        spread([p["fine_lag"] for p in figures]),
                        " ".join(f"{lag:+d}" for lag in sorted({p["naive_lag"] for p in figures})),
                        spread([p["shifted"]["phone_r"] for p in figures])])
    lines += ["## Summary: median (range) over clips", "",
              judge.table(["who", "phone_r", "closure", "chance", "rounding", "env_r", "lags", "fine lag",
                                       "naive lags", "shifted r"], summary), ""]
    if people:
        rows = [[name, p["text"] + (" (recognised)" if p["recognised"] else ""), p["phone_r"], p["phone_lag"],
                 p["fine_lag"], p["closure"], p["closure_chance"], p["open_over_bilabial"], p["rounding"], p["env_r"],
                 p["shifted"]["phone_r"], f"{p['audio_start'] - p['video_start']:+.3f}"] for name, p in people.items()]
        lines += ["## People (../shared/assets/talking)", "",
                  judge.table(["clip", "text", "phone_r", "lag", "fine lag", "closure", "chance", "open/bil", "rounding", "env_r",
                               "shifted r", "audio - video start s"], rows), ""]
    lines += ["## Alignment", "",
              judge.table(["clip", "words", "recognised", "phones in sound", "silences quiet", "text"],
                          [[n, c["words"], "yes" if c["recognised"] else "no", c["phones_in_sound"], c["silences_quiet"],
                            c["text"][:70]] for n, c in speech.items()]), "",
              "## Timing through the renderer, the muxer and the reader", "",
              f"A step: the mouth opens at frame {t['step_frame']} and a click sounds at that frame's instant. Read back "
              f"from the file: the lip gap rises at frame {t['opened_at_frame']} ({t['opened_at_s']:.3f} s), the click "
              f"at {t['click_at_s']:.3f} s; video - audio = {t['lag_frames']:+.2f} frames. Stream starts: video "
              f"{t['video_start']:.3f} s, audio {t['audio_start']:.3f} s.", ""]
    return "\n".join(lines)


def plot(data: dict, path: Path) -> Path:
    """phone_r against the lag, the mean over clips (and seeds) per setting, beside the people's
    (at their own 25 or 30 fps): where each curve peaks is the bench's lag."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lags = list(range(-MAX_LAG, MAX_LAG + 1))
    def curve(runs: list[dict]) -> list[float]:  # by_lag's keys are ints, or strings when read back from the JSON
        at = lambda r, lag: r["phone_r_by_lag"].get(lag, r["phone_r_by_lag"].get(str(lag)))  # noqa: E731
        return [float(np.nanmean([np.nan if at(r, lag) is None else at(r, lag) for r in runs])) for lag in lags]

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode in [m["name"] for m in data["settings"]]:
        runs = [r for c in data["speech"].values() for r in c["runs"].get(mode, [])]
        ax.plot(lags, curve(runs), marker="o", label=mode)
    ax.plot(lags, curve([c["still"] for c in data["speech"].values()]), marker="o", color="grey", label="still portrait")
    if data["people"]:
        ax.plot(lags, curve(list(data["people"].values())), marker="s", color="black", label="people (talking/)")
    ax.axvline(0, color="grey", lw=0.5)
    ax.set(xlabel="lag, frames (+: mouth after the sound)", ylabel="phone_r (mean over clips)",
           title="Lip gap against phone openness")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = judge.figure_png(fig, path)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    from avatarcam.config import Settings

    live = Settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two clips, four people, one seed")
    parser.add_argument("--seeds", type=int, default=2, help="motion seeds per engine and clip (default 2)")
    parser.add_argument("--chunk", type=int, default=live.chunk_frames, help="live setting: frames per chunk")
    parser.add_argument("--lookahead-ms", type=float, default=live.lookahead_ms, help="live setting: lookahead")
    parser.add_argument("--steps", type=int, default=live.diffusion_steps, help="sampler steps (both settings)")
    parser.add_argument("--portrait", default=judge.DEFAULT_PORTRAIT)
    parser.add_argument("--no-people", action="store_true", help="skip the real speakers")
    parser.add_argument("--name", default="phonemes", help="results file stem")
    parser.add_argument("--measure", type=Path, metavar="VIDEO", help="only measure this video file (a recording of "
                        "`avatarcam render` or `live --sink file:`, a person) and print its figures")
    parser.add_argument("--text", help="with --measure: its transcript (default: recognised)")
    args = parser.parse_args(argv)
    if args.measure is not None:
        figures, _, _ = measure_file(args.measure, args.text)
        for key, value in figures.items():
            print(f"{key}: {value if isinstance(value, (bool, dict)) else judge.fmt(value, 3)}")
        return 0
    seeds = list(range(1 if args.quick else args.seeds))
    modes = settings(args.chunk, args.lookahead_ms, args.steps)
    portrait = judge.load_portrait(args.portrait, cache=True)
    renderer = judge.make_renderer(portrait, SIZE)
    start = time.perf_counter()
    timing = timing_checks(renderer, portrait.rig.rest)
    print(f"timing: video - audio {timing['lag_frames']:+.2f} frames", flush=True)
    people = {}
    for path in [] if args.no_people else talking_clips(args.quick):
        figures, clip, alignment = measure_file(path, transcript_file(path))
        figures["shifted"] = shifted(clip, alignment.text)
        people[path.stem] = figures
        print(f"{path.stem}: phone_r {figures['phone_r']:.2f} at lag {figures['phone_lag']}, closure "
              f"{figures['closure']:.2f} (chance {figures['closure_chance']:.2f}), rounding {figures['rounding']:.2f}",
              flush=True)
    speech = {}
    for item in speech_material(args.quick):
        print(f"{item.name} ({len(item.samples) / RATE:.1f} s)", flush=True)
        speech[item.name] = run_speech(item, portrait, renderer, modes, seeds)
    data = {"portrait": portrait.name, "seeds": seeds, "quick": args.quick, "size": SIZE,
            "settings": [{"name": m.name, "engine": m.engine, "options": m.options} for m in modes],
            "landmarks": {"gap": [UPPER_LIP, LOWER_LIP], "width": [MOUTH_LEFT, MOUTH_RIGHT], "eyes": [EYE_LEFT, EYE_RIGHT]},
            "openness": OPENNESS, "timing": timing, "people": people, "speech": speech,
            "seconds": time.perf_counter() - start}
    markdown = report(data)
    judge.write_results(args.name, data, markdown)
    plot(data, judge.RESULTS / f"{args.name}_lags.png")
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
