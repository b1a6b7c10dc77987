"""Teacher motion tracks: what a face does while these phonemes are spoken, at 30 fps.

The lips come from a coarticulation model (Cohen and Massaro's dominance blending): every
phoneme pulls each articulatory parameter toward its target with a strength that rises before
it (anticipation) and fades after it (carry-over), so a rounded vowel rounds the lips during the
consonants before it and a bilabial, the strongest pull, really shuts them (and the frame
nearest the middle of its closure is closed outright: a stop's silence comes before the phoneme
event, which marks its release). The rest of the face follows the prosody: nods and brow
raises on pitch accents, blinks (more at phrase ends), gaze saccades and fixations, a slowly
wandering head that calms in silence, where the mouth rests closed and the face keeps listening.
Emotion styles change both the resting expression and how the face moves.

Everything is drawn from the `rng` given, so a seed reproduces a track exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from avatarcam import latent
from avatarcam.corpus.espeak import Phone
from avatarcam.corpus.phonemes import PARAMETERS, REST, articulations, is_bilabial
from avatarcam.motion import lips
from avatarcam.motion.controls import EMOTIONS, STYLES, control_vector

FPS = latent.FPS
PAUSE_S = 0.12  # a gap between phonemes this long is silence: the lips rest
LEVEL_RANGE_DB = 30.0  # from the loudest syllables down to a shut mouth
# an open /a/'s jaw target in the articulation table: the opening the teacher scales the others by
OPEN_VOWEL = articulations("a")[0].targets[PARAMETERS.index("jaw")]
# espeak-ng's event for a stop marks its release: the silence of the closure lies before it. In
# the held-out split the clean voice is quietest 27 ms (/p/) and 18 ms (/b/) before the middle of
# the event's span (medians; /p/'s span is 29 ms long). So a bilabial's lips are shut where its
# voice is quiet (`at_closures`). Shut through the event's span, the lips closed a frame late, on
# the loud release, and the model learned them so.
CLOSURE_LEAD_S = 0.04
CLOSED_WITHIN_DB = 3.0

# how each style moves: (head motion gain, jaw gain, nod gain, brow raise chance, head pitch offset rad)
_STYLE_MOTION = {
    "neutral": (1.0, 1.0, 1.0, 0.35, 0.0),
    "happy": (1.2, 1.05, 1.1, 0.55, -0.02),
    "sad": (0.6, 0.8, 0.6, 0.15, 0.07),
    "angry": (1.1, 1.1, 1.5, 0.1, 0.02),
    "surprised": (1.1, 1.15, 0.9, 0.7, -0.03),
}
_P = {name: i for i, name in enumerate(PARAMETERS)}


@dataclass(frozen=True)
class Controls:
    """What the user steers: conditioning of the motion model, varied across the corpus."""

    emotion: str = "neutral"
    gaze: tuple[float, float] = (0.0, 0.0)  # where the eyes rest, radians (yaw, pitch)
    distance: float = 0.0  # headLogScale: > 0 nearer the camera
    liveliness: float = 1.0  # head, gaze and brow motion gain

    def vector(self) -> np.ndarray:
        return control_vector(self.emotion, self.gaze, self.distance, self.liveliness)


def sample_controls(rng: np.random.Generator) -> Controls:
    emotion = STYLES[int(rng.choice(len(STYLES), p=[0.4, 0.15, 0.15, 0.15, 0.15]))]
    gaze = (0.0, 0.0) if rng.random() < 0.5 else (float(rng.uniform(-0.25, 0.25)), float(rng.uniform(-0.15, 0.15)))
    distance = 0.0 if rng.random() < 0.5 else float(rng.uniform(-0.3, 0.3))
    return Controls(emotion, gaze, distance, float(rng.uniform(0.3, 1.7)))


def _segments(phones: list[Phone], duration: float):
    """(start, end, Articulation) spans, diphthongs split, with rest spans in the silences."""
    spans = []
    cursor = 0.0
    for phone in phones:
        if phone.start - cursor >= PAUSE_S or not spans and phone.start > 0.0:
            spans.append((cursor, phone.start, REST))
        parts = articulations(phone.name)
        step = (phone.end - phone.start) / len(parts)
        spans += [(phone.start + k * step, phone.start + (k + 1) * step, a) for k, a in enumerate(parts)]
        cursor = phone.end
    spans.append((cursor, max(duration, cursor) + 1.0, REST))
    return spans


def at_closures(phones: list[Phone], loudness_db: np.ndarray, lead_s: float) -> list[Phone]:
    """The phones with each bilabial's span moved onto its closure: the quietest frame from
    `lead_s` before its span to its end, with the frames next to it within CLOSED_WITHIN_DB of it
    (a stop's silence, a nasal's murmur); as it was where no frame lies in that time."""
    out = []
    for phone in phones:
        first = max(int(np.ceil((phone.start - lead_s) * FPS)), 0)
        last = min(int(np.floor(phone.end * FPS)), len(loudness_db) - 1)
        if not is_bilabial(phone.name) or last < first:
            out.append(phone)
            continue
        i = first + int(np.argmin(loudness_db[first:last + 1]))
        quiet = loudness_db <= loudness_db[i] + CLOSED_WITHIN_DB
        a, b = i, i
        while a > first and quiet[a - 1]:
            a -= 1
        while b < last and quiet[b + 1]:
            b += 1
        out.append(Phone(phone.name, (a - 0.5) / FPS, (b + 0.5) / FPS))
    return out


def articulation_track(phones: list[Phone], duration: float, frames: int) -> np.ndarray:
    """(frames, len(PARAMETERS)) blended articulation at each frame time i / FPS."""
    spans = _segments(phones, duration)
    t = np.arange(frames) / FPS
    starts = np.array([s for s, _, _ in spans])[:, None]
    ends = np.array([e for _, e, _ in spans])[:, None]
    before = np.array([a.anticipation for _, _, a in spans])[:, None]
    after = np.array([a.carryover for _, _, a in spans])[:, None]
    distance = np.maximum(starts - t, 0.0) / before + np.maximum(t - ends, 0.0) / after
    weight = np.array([a.dominance for _, _, a in spans])[:, None] * np.exp(-distance)  # (spans, frames)
    targets = np.array([a.targets for _, _, a in spans])  # (spans, params)
    out = (weight.T @ targets) / np.maximum(weight.sum(axis=0), 1e-9)[:, None]
    # lip rounding reaches further ahead: a rounded vowel rounds the consonants before it
    rounding = np.array([a.targets[_P["round"]] >= 0.5 for _, _, a in spans])[:, None]
    reach = np.exp(-np.maximum(starts - t, 0.0) / 0.15 - np.maximum(t - ends, 0.0) / 0.08) * rounding * 1.5
    out[:, _P["round"]] = (weight.T @ targets[:, _P["round"]] + reach.T @ targets[:, _P["round"]]) / \
        np.maximum(weight.sum(axis=0) + reach.sum(axis=0), 1e-9)
    # bilabials close the lips: the frame nearest each one's middle is shut outright
    for phone in phones:
        if is_bilabial(phone.name):
            i = int(round((phone.start + phone.end) / 2 * FPS))
            if 0 <= i < frames:
                out[i, _P["close"]] = 1.0
                out[i, _P["jaw"]] = min(out[i, _P["jaw"]], 0.03)
    return out


def _smooth_noise(rng: np.random.Generator, frames: int, tau_s: float, dims: int = 1) -> np.ndarray:
    """Unit-std noise with a time constant: two cascaded leaky integrators of white noise."""
    d = np.exp(-1.0 / (tau_s * FPS))
    warm = int(5 * tau_s * FPS)
    x = rng.standard_normal((frames + warm, dims))
    y = lfilter([1 - d], [1, -d], lfilter([1 - d], [1, -d], x, axis=0), axis=0)[warm:]
    return y / max(float(np.std(y)), 1e-6) if frames > 1 else y


def _bump(frames: int, rise: float) -> np.ndarray:
    """A smooth 0 -> 1 -> 0 pulse; `rise` is the fraction of it spent going up."""
    x = np.linspace(0.0, 1.0, max(frames, 2))
    up = np.clip(x / rise, 0, 1)
    down = np.clip((1 - x) / (1 - rise), 0, 1)
    return np.sin(np.pi / 2 * np.minimum(up, down)) ** 2


def _add(track: np.ndarray, channel: int, start: int, shape: np.ndarray, gain: float) -> None:
    end = min(start + len(shape), len(track))
    if end > max(start, 0):
        track[max(start, 0):end, channel] += gain * shape[max(-start, 0):end - start]


def pitch_accents(f0: np.ndarray, words: list[float], speaking: np.ndarray) -> list[int]:
    """Frames of pitch accents: words whose pitch peak stands out from the speaker's median."""
    voiced = f0 > 0
    if voiced.sum() < 5:
        return []
    semitones = np.where(voiced, 12 * np.log2(np.maximum(f0, 1.0) / np.median(f0[voiced])), -99.0)
    out = []
    bounds = [int(w * FPS) for w in words] + [len(f0)]
    for start, end in zip(bounds[:-1], bounds[1:]):
        if end > start and speaking[start:end].any():
            peak = int(np.argmax(semitones[start:end]))
            if semitones[start + peak] > 1.0:
                out.append(start + peak)
    return out


def speech_level(loudness_db: np.ndarray) -> np.ndarray:
    """0..1 per frame: the clean voice's loudness over the 30 dB below its loud syllables."""
    voiced = loudness_db[loudness_db > -60]
    if len(voiced) == 0:
        return np.zeros(len(loudness_db))
    top = np.percentile(voiced, 95)
    return np.clip((loudness_db - (top - LEVEL_RANGE_DB)) / LEVEL_RANGE_DB, 0.0, 1.0)


def jaw_opening(level: np.ndarray, articulated: np.ndarray, min_shape: float | None = None) -> np.ndarray:
    """The teacher's jawOpen: LOUD_JAW at full loudness (`level` 1, `speech_level`) for an open
    vowel, the phoneme's articulated opening (its blended jaw target, an /a/ OPEN_VOWEL) setting the
    share of it, never under `min_shape` (default `lips.MIN_SHAPE`) of an open vowel's."""
    min_shape = lips.MIN_SHAPE if min_shape is None else min_shape
    shape = min_shape + (1 - min_shape) * np.clip(articulated / OPEN_VOWEL, 0, 1)
    return lips.LOUD_JAW * level ** lips.LEVEL_POWER * shape


def track(phones: list[Phone], words: list[float], duration: float, frames: int, f0: np.ndarray,
          loudness_db: np.ndarray, controls: Controls, rng: np.random.Generator,
          stops_at_release: bool = True) -> np.ndarray:
    """The (frames, latent.DIM) teacher motion of one utterance; `loudness_db` is the clean
    voice's loudness envelope (`avatarcam.audio.features.loudness_envelope`); `stops_at_release`
    says the phone timings mark a stop's release, as espeak-ng's do (Festival's span its
    closure too)."""
    out = latent.zeros(frames)
    head_gain, jaw_gain, nod_gain, brow_chance, pitch_offset = _STYLE_MOTION[controls.emotion]
    life = controls.liveliness
    loudness_db = np.resize(loudness_db, frames)
    lips_phones = at_closures(phones, loudness_db, CLOSURE_LEAD_S if stops_at_release else 0.0)
    art = articulation_track(lips_phones, duration, frames)
    speaking = art[:, _P["jaw"]] > 0.02
    speaking_smooth = lfilter([0.1], [1, -0.9], speaking.astype(float))

    # the jaw opens as far as the phoneme is open, scaled by the voice's loudness: a loud /i/ less
    # than half as far as a loud /a/, a bilabial shut whatever its loudness (set in
    # articulation_track) (stress needs no rule of its own: a stressed syllable is louder)
    jaw = np.clip(jaw_opening(speech_level(loudness_db), art[:, _P["jaw"]]) * jaw_gain * rng.uniform(0.9, 1.1), 0, 1)
    shut = art[:, _P["close"]] >= 0.999  # the frames articulation_track closed outright
    jaw[shut] = np.minimum(jaw[shut], art[shut, _P["jaw"]])
    rnd, spread = art[:, _P["round"]], art[:, _P["spread"]]

    def put(name, values):
        out[:, latent.index(name)] = values

    # lips sealed through every bilabial's closure (an /m/ is long and loud: the jaw may stay open)
    close = art[:, _P["close"]].copy()
    for phone in lips_phones:
        if is_bilabial(phone.name):
            close[int(np.ceil(phone.start * FPS)):int(np.floor(phone.end * FPS)) + 1] = 1.0
    put("jawOpen", jaw)
    put("mouthClose", close * jaw)
    funnel, pucker = lips.rounded(rnd, jaw)
    put("mouthPucker", pucker)
    put("mouthFunnel", funnel)
    for side in ("Left", "Right"):
        put(f"mouthStretch{side}", spread * 0.6)
        put(f"mouthSmile{side}", spread * 0.15)
        put(f"mouthPress{side}", art[:, _P["press"]] * 0.5)
        put(f"mouthLowerDown{side}", np.clip(jaw - 0.25, 0, None) * 0.6)
        put(f"mouthUpperUp{side}", art[:, _P["labiodental"]] * 0.25)
    put("mouthRollLower", art[:, _P["labiodental"]] * 0.7)
    put("tongueOut", art[:, _P["tongue"]] * 0.35)

    # head: slow wandering, livelier while speaking, nods on accents
    accents = pitch_accents(f0, words, speaking)
    motion = (0.45 + 0.55 * speaking_smooth)[:, None] * head_gain * life
    head = _smooth_noise(rng, frames, 0.5, 3) * np.array([0.07, 0.035, 0.025]) * motion
    head[:, 1] += pitch_offset
    nod = _bump(int(0.45 * FPS), 0.4)
    brow = _bump(int(0.6 * FPS), 0.3)
    for accent in accents:
        if rng.random() < 0.6:
            _add(head, 1, accent - 4, nod, rng.uniform(0.025, 0.05) * nod_gain * life)
        if rng.random() < brow_chance * min(life, 1.3):
            lift = rng.uniform(0.2, 0.45)
            for name in ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"):
                _add(out, latent.index(name), accent - 5, brow, lift)
    out[:, 0:3] = head
    out[:, latent.index("headX")] = 0.12 * head[:, 0] + 0.01 * _smooth_noise(rng, frames, 1.0)[:, 0]
    out[:, latent.index("headY")] = 0.1 * head[:, 1]
    out[:, latent.index("headLogScale")] = controls.distance + 0.01 * _smooth_noise(rng, frames, 1.5)[:, 0]

    # gaze: fixations around the target with quick saccades between them
    gaze = np.zeros((frames, 2))
    position = np.array(controls.gaze, float)
    i = 0
    while i < frames:
        hold = int(FPS * rng.exponential(1.2 if speaking[i] else 2.0)) + 6
        offset = rng.normal(0.0, 0.045 * life, 2) * [1.0, 0.6]
        if rng.random() < 0.15:  # a glance away, as people do while thinking what to say
            offset += rng.choice([-1, 1]) * np.array([0.15, 0.0]) + [0.0, -0.06]
        target = np.asarray(controls.gaze) + offset
        ramp = np.minimum(np.arange(1, hold + 1) / 2.0, 1.0)[:, None]  # a saccade takes ~2 frames
        gaze[i:i + hold] = (position + (target - position) * ramp)[:frames - i]
        position, i = target, i + hold
    out[:, 6:8] = gaze

    # blinks: a random rhythm, plus at the start of pauses
    blink = np.concatenate([np.linspace(0, 1, 4)[1:], np.linspace(1, 0, 6)[1:]])  # shut in 3 frames, open in 5
    rate = 17.0 / 60.0 * (0.7 + 0.3 * life) * (0.7 if controls.emotion == "sad" else 1.0)
    times = []
    t = rng.exponential(1.0 / rate)
    while t * FPS < frames:
        times.append(int(t * FPS))
        t += max(rng.exponential(1.0 / rate), 1.2)
    pause_starts = np.flatnonzero(speaking[:-1] & ~speaking[1:]) + 1
    times += [int(p) + 2 for p in pause_starts if rng.random() < 0.5]
    times.sort()
    last = -100
    for start in times:
        if start - last >= 15:
            for name in ("eyeBlinkLeft", "eyeBlinkRight"):
                _add(out, latent.index(name), start, blink, 1.0)
            last = start

    # emotion: the resting expression under the speech; rounded lips cannot smile as wide
    intensity = rng.uniform(0.75, 1.15)
    for name, value in EMOTIONS[controls.emotion].items():
        channel = latent.index(name)
        level = value * intensity * (1 - 0.6 * rnd if "Smile" in name else 1.0)
        out[:, channel] = np.maximum(out[:, channel], level)
    if controls.emotion == "surprised":
        out[:, latent.index("jawOpen")] = np.maximum(out[:, latent.index("jawOpen")], 0.06 * speaking_smooth)
    return latent.clip(out).astype(np.float32) if frames else out
