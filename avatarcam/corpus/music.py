"""A band to play under and around the corpus's voices: strummed chords, a bass line and drums.

A motion model that never heard an instrument takes one for a voice: over the shared song's
guitar intro the shipped model held the mouth open as if it sang, and webrtcvad (the engine's
speech gate) passes music as speech. So some training utterances get a band that plays before the
voice comes in, under it and after it ends, while the teacher's mouth moves only with the voice.

The instruments are recorded ones: the notes of MuseScore's General MIDI soundfont (MIT; parts
public domain and CC0; Debian main: musescore-general-soundfont-small), played by FluidSynth
(libfluidsynth3) through ctypes. Guitars, pianos and a harp strum the chords, a bass plays the
root, a drum kit keeps time. (The first band was additive synthesis: brighter and more percussive
than the shared song's guitar, and the model trained with it learned that less.) Every note a
band can play is rendered once per process (about 5 s), dry (no reverb or chorus: the corpus's
augmentation adds the room), and every choice of key, tempo, instruments and timing comes from
the `rng` given.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

import numpy as np

from avatarcam.errors import AvatarCamError

RATE = 16000
SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
PACKAGES = "libfluidsynth3 musescore-general-soundfont-small"
# General MIDI programs: what strums the chords, and the basses
CHORD_PROGRAMS = {0: "grand piano", 4: "electric piano", 24: "nylon guitar", 25: "steel guitar",
                  26: "jazz guitar", 27: "clean electric guitar", 46: "harp"}
BASS_PROGRAMS = (32, 33, 34)  # acoustic, fingered, picked
DRUMS = {"kick": 36, "snare": 38, "hat": 42}  # General MIDI percussion keys
NOTE_S, RING_S = 1.5, 0.5  # a note is held this long, then rings out after its release
_VELOCITIES = (64, 96, 120)  # how hard the notes are played
ROOTS = (40, 52)  # a song's key: E2 up to (not including) E3
STRINGS = (3, 6)  # notes in a strummed chord: fewest, most
_MAJOR = (0, 4, 7)
_MINOR = (0, 3, 7)
# a key's chords: (semitones above the key's root, quality), I IV V vi ii
_DEGREES = ((0, _MAJOR), (5, _MAJOR), (7, _MAJOR), (9, _MINOR), (2, _MINOR))


def _chord(root: int, offset: int, quality: tuple[int, ...], strings: int) -> list[int]:
    """The keys of a chord strummed an octave above the key's root, low string first."""
    return [root + 12 + offset + 12 * (i // 3) + quality[i % 3] for i in range(strings)]


def _bass(root: int, offset: int) -> int:
    return root + offset - 12


# lowest and highest key a band plays, chords and bass (what Instruments renders)
CHORD_KEYS = (min(_chord(ROOTS[0], o, q, 1)[0] for o, q in _DEGREES),
              max(max(_chord(ROOTS[1] - 1, o, q, STRINGS[1])) for o, q in _DEGREES))
BASS_KEYS = (min(_bass(ROOTS[0], o) for o, _ in _DEGREES), max(_bass(ROOTS[1] - 1, o) for o, _ in _DEGREES))


class Instruments:
    """The soundfont's notes, each rendered once (mono float32 at RATE, NOTE_S + RING_S long)."""

    def __init__(self, soundfont: Path = SOUNDFONT):
        name = ctypes.util.find_library("fluidsynth")
        if name is None or not soundfont.exists():
            raise AvatarCamError(f"the corpus's band needs FluidSynth and a General MIDI soundfont "
                                 f"({soundfont}): apt install {PACKAGES}")
        lib = self._lib = ctypes.CDLL(name)
        lib.new_fluid_settings.restype = lib.new_fluid_synth.restype = ctypes.c_void_p  # pointers, not ints
        self._settings = ctypes.c_void_p(lib.new_fluid_settings())
        lib.fluid_settings_setnum(self._settings, b"synth.sample-rate", ctypes.c_double(RATE))
        lib.fluid_settings_setnum(self._settings, b"synth.gain", ctypes.c_double(0.5))
        lib.fluid_settings_setint(self._settings, b"synth.reverb.active", 0)
        lib.fluid_settings_setint(self._settings, b"synth.chorus.active", 0)
        self._synth = ctypes.c_void_p(lib.new_fluid_synth(self._settings))
        self._font = lib.fluid_synth_sfload(self._synth, str(soundfont).encode(), 1)
        if self._font < 0:
            raise AvatarCamError(f"FluidSynth could not load the soundfont {soundfont}: reinstall {PACKAGES}")
        # Every note a band can play, rendered here in one fixed order: FluidSynth's voices carry a
        # little state from note to note (up to 1e-4 of a note's peak at its onset), so notes
        # rendered as a band first needs them would differ between processes.
        self._notes = {}
        for program in sorted(CHORD_PROGRAMS):
            for key in range(CHORD_KEYS[0], CHORD_KEYS[1] + 1):
                for velocity in _VELOCITIES:
                    self._render(0, program, key, velocity)
        for program in BASS_PROGRAMS:
            for key in range(BASS_KEYS[0], BASS_KEYS[1] + 1):
                self._render(0, program, key, _VELOCITIES[1])
        for drum in DRUMS.values():
            for velocity in _VELOCITIES[1:]:
                self._render(128, 0, drum, velocity)

    def note(self, bank: int, program: int, key: int, velocity: int) -> np.ndarray:
        """One note of `program` (bank 128: the drum kit, `key` a drum) at a velocity of _VELOCITIES."""
        return self._notes[bank, program, key, velocity]

    def _render(self, bank: int, program: int, key: int, velocity: int) -> None:
        lib, channel = self._lib, 9 if bank == 128 else 0
        lib.fluid_synth_program_select(self._synth, channel, self._font, bank, program)
        lib.fluid_synth_noteon(self._synth, channel, key, velocity)
        held = self._write(int(NOTE_S * RATE))
        lib.fluid_synth_noteoff(self._synth, channel, key)
        self._notes[bank, program, key, velocity] = np.concatenate([held, self._write(int(RING_S * RATE))])
        lib.fluid_synth_all_sounds_off(self._synth, channel)
        self._write(RATE // 10)  # let the cut voices go before the next note

    def _write(self, samples: int) -> np.ndarray:
        left, right = np.zeros(samples, np.float32), np.zeros(samples, np.float32)
        self._lib.fluid_synth_write_float(self._synth, samples, left.ctypes.data_as(ctypes.c_void_p), 0, 1,
                                          right.ctypes.data_as(ctypes.c_void_p), 0, 1)
        return 0.5 * (left + right)


@functools.cache
def instruments() -> Instruments:
    return Instruments()


def _add(out: np.ndarray, sound: np.ndarray, at: float, gain: float) -> None:
    start = int(round(at * RATE))
    piece = sound[max(-start, 0):][: max(len(out) - max(start, 0), 0)]  # what falls inside `out`
    out[max(start, 0):max(start, 0) + len(piece)] += gain * piece


def band(rng: np.random.Generator, samples: int) -> np.ndarray:
    """`samples` of a band at RATE, normalised to unit RMS: a key, a tempo, a chord progression,
    an instrument strumming it; a bass and drums each play in some songs and not in others."""
    kit = instruments()
    out = np.zeros(samples)
    seconds = samples / RATE
    beat = 60.0 / rng.uniform(70, 150)
    root = int(rng.integers(*ROOTS))
    progression = [_DEGREES[i] for i in rng.choice(len(_DEGREES), 4)]
    strums_per_beat = int(rng.choice([1, 2]))
    chords, bass = int(rng.choice(list(CHORD_PROGRAMS))), int(rng.choice(BASS_PROGRAMS))
    strings = int(rng.integers(STRINGS[0], STRINGS[1] + 1))
    with_bass, with_drums = rng.random() < 0.6, rng.random() < 0.5
    start = -rng.uniform(0, 4 * beat)  # the band is already playing when the clip starts
    n_beats = int(np.ceil((seconds - start) / beat))
    for b in range(n_beats):
        at = start + b * beat
        offset, quality = progression[(b // 4) % len(progression)]
        chord = _chord(root, offset, quality, strings)
        for s in range(strums_per_beat):
            when = at + s * beat / strums_per_beat
            if when + NOTE_S + RING_S < 0 or (s and rng.random() < 0.3):
                continue
            velocity = _VELOCITIES[2] if s == 0 else int(rng.choice(_VELOCITIES[:2]))  # the beat accented
            down = s % 2 == 0
            for i, key in enumerate(chord if down else chord[::-1]):
                _add(out, kit.note(0, chords, key, velocity), when + i * rng.uniform(0.004, 0.015), 0.3)
        if with_bass and b % 2 == 0 and at > -NOTE_S:
            _add(out, kit.note(0, bass, _bass(root, offset), _VELOCITIES[1]), at, 0.8)
        if with_drums and at > -0.5:
            _add(out, kit.note(128, 0, DRUMS["kick" if b % 2 == 0 else "snare"], _VELOCITIES[2]), at, 0.7)
            _add(out, kit.note(128, 0, DRUMS["hat"], _VELOCITIES[1]), at + beat / 2, 0.5)
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
