"""espeak-ng through its C library: speech samples plus the time of every phoneme and word.

The command line tool prints phonemes but not when they sound; the library reports both through
its synthesis callback (phoneme events, here with IPA names so one viseme table serves every
language). The library is one global synthesiser per process, so corpus workers each load their
own (see `Synthesizer`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

import numpy as np

from avatarcam.errors import AvatarCamError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_CHARS_UTF8, _SSML = 1, 0x10
_EVENT_WORD, _EVENT_SENTENCE, _EVENT_END, _EVENT_PHONEME = 1, 2, 5, 7
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_POS_CHARACTER = 1


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Phone:
    """One sounded phoneme: IPA name (stress marks kept: they are prosody) and its span in seconds."""

    name: str
    start: float
    end: float


@dataclass(frozen=True)
class Utterance:
    samples: np.ndarray  # float32 mono, -1..1
    rate: int
    phones: list[Phone]
    words: list[float]  # start time of every word, seconds


class Synthesizer:
    """The process's espeak-ng library, ready to speak with any installed voice."""

    _lib = None

    def __init__(self) -> None:
        if Synthesizer._lib is None:
            path = ctypes.util.find_library("espeak-ng")
            if path is None:
                raise AvatarCamError("espeak-ng is not installed: the corpus needs it "
                                     "(Debian/Ubuntu: apt-get install espeak-ng)")
            lib = ctypes.CDLL(path)
            lib.espeak_Initialize.restype = ctypes.c_int
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
            lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                         ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, None,
                                         _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA)
            if rate <= 0:
                raise AvatarCamError("espeak-ng failed to start (is espeak-ng-data installed?)")
            Synthesizer._lib, Synthesizer._rate = lib, rate
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str]] = []
        self._callback = _CALLBACK(self._collect)  # kept alive: the library holds the pointer
        Synthesizer._lib.espeak_SetSynthCallback(self._callback)

    @property
    def rate(self) -> int:
        return Synthesizer._rate

    def _collect(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        i = 0
        while events[i].type != 0:
            event = events[i]
            name = event.id.string.decode("utf-8", "replace") if event.type == _EVENT_PHONEME else ""
            self._events.append((event.type, event.audio_position, name))
            i += 1
        return 0

    def speak(self, text: str, voice: str, speed: int = 175, pitch: int = 50, pitch_range: int = 50,
              ssml: bool = False) -> Utterance:
        """Synthesise `text` with `voice` (e.g. "en+m3"); speed in words per minute, pitch 0..99."""
        lib = Synthesizer._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise AvatarCamError(f"espeak-ng has no voice {voice!r} (see espeak-ng --voices)")
        for parameter, value in ((_RATE, speed), (_PITCH, pitch), (_RANGE, pitch_range), (_VOLUME, 100)):
            lib.espeak_SetParameter(parameter, int(value), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        flags = _CHARS_UTF8 | (_SSML if ssml else 0)
        if lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None) != 0:
            raise AvatarCamError(f"espeak-ng could not speak {text[:40]!r}")
        lib.espeak_Synchronize()
        samples = (np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)).astype(np.float32) / 32768
        return Utterance(samples, self.rate, *_timings(self._events, len(samples) / self.rate))


def _timings(events: list[tuple[int, int, str]], duration: float) -> tuple[list[Phone], list[float]]:
    """Phones with spans (each lasts until the next phoneme event or the end) and word starts."""
    marks = [(ms / 1000.0, name) for kind, ms, name in events if kind == _EVENT_PHONEME]
    words = [ms / 1000.0 for kind, ms, _ in events if kind == _EVENT_WORD]
    phones = []
    for i, (start, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else duration
        if name and end > start:
            phones.append(Phone(name, start, min(end, duration)))
    return phones, words
