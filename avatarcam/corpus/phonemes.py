"""From IPA phoneme to what the mouth does: articulation targets and how strongly each phoneme
holds them (its dominance), for every language espeak-ng speaks.

Targets are seven articulatory parameters, all 0..1:
jaw (opening), round (lip rounding/protrusion), spread (lip corners back), close (lips shut,
bilabials), labiodental (lower lip to upper teeth), tongue (tip between the teeth), press (lips
pressed, plosive build-up). `avatarcam.corpus.teacher` blends them over time and maps them to
ARKit channels.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

PARAMETERS = ("jaw", "round", "spread", "close", "labiodental", "tongue", "press")


@dataclass(frozen=True)
class Articulation:
    targets: tuple[float, ...]  # one per PARAMETERS
    dominance: float  # how strongly it pulls the blend toward its targets
    anticipation: float  # seconds over which its influence rises before it (e-folding)
    carryover: float  # seconds over which it fades after it
    kind: str  # "vowel", "bilabial", "consonant", "rest"


def _a(jaw=0.0, round=0.0, spread=0.0, close=0.0, labiodental=0.0, tongue=0.0, press=0.0):
    return (jaw, round, spread, close, labiodental, tongue, press)


# Vowels by their IPA letter: openness sets the jaw, rounding the lips.
_VOWELS = {
    "a": _a(0.62), "ä": _a(0.6), "ɑ": _a(0.62), "æ": _a(0.55, spread=0.3), "ɐ": _a(0.45), "ɒ": _a(0.55, round=0.35),
    "ɛ": _a(0.42, spread=0.3), "œ": _a(0.4, round=0.55), "ɔ": _a(0.42, round=0.6), "ʌ": _a(0.42), "ɜ": _a(0.38),
    "ə": _a(0.3), "ɘ": _a(0.28), "ɵ": _a(0.28, round=0.5), "e": _a(0.3, spread=0.4), "ø": _a(0.26, round=0.75),
    "o": _a(0.3, round=0.8), "ɤ": _a(0.28), "ɞ": _a(0.38, round=0.5),
    "i": _a(0.12, spread=0.55), "y": _a(0.12, round=0.9), "ɪ": _a(0.18, spread=0.4), "ʏ": _a(0.16, round=0.7),
    "ɨ": _a(0.15, spread=0.2), "ʉ": _a(0.14, round=0.8), "ɯ": _a(0.14, spread=0.3), "u": _a(0.14, round=0.95),
    "ʊ": _a(0.18, round=0.7), "ɚ": _a(0.28, round=0.2), "ɝ": _a(0.3, round=0.25),
}
_CONSONANTS = {
    **dict.fromkeys("pb", (_a(0.03, close=1.0, press=0.5), 8.0, 0.03, 0.012, "bilabial")),
    **dict.fromkeys("mɓʙ", (_a(0.04, close=1.0), 8.0, 0.03, 0.012, "bilabial")),
    **dict.fromkeys("fvɱ", (_a(0.1, labiodental=1.0), 4.0, 0.035, 0.03, "consonant")),
    "ʋ": (_a(0.1, labiodental=0.6), 2.0, 0.035, 0.03, "consonant"),
    **dict.fromkeys("θð", (_a(0.16, tongue=1.0), 2.5, 0.03, 0.03, "consonant")),
    **dict.fromkeys("szʦʣ", (_a(0.07, spread=0.35), 1.5, 0.03, 0.03, "consonant")),
    **dict.fromkeys("tdnlɾrɹɬɮɫ", (_a(0.16), 0.5, 0.03, 0.03, "consonant")),
    **dict.fromkeys("ʃʒɕʑʂʐ", (_a(0.1, round=0.55), 2.0, 0.06, 0.04, "consonant")),
    **dict.fromkeys("jɲçʎʝ", (_a(0.12, spread=0.35), 1.0, 0.03, 0.03, "consonant")),
    **dict.fromkeys("kgɡŋxɣɰ", (_a(0.22), 0.35, 0.03, 0.03, "consonant")),
    **dict.fromkeys("qɢχʁʀħʕhɦʔ", (_a(0.3), 0.1, 0.03, 0.03, "consonant")),
    "w": (_a(0.1, round=0.95), 2.5, 0.08, 0.04, "consonant"),
    "ɥ": (_a(0.1, round=0.85, spread=0.1), 2.5, 0.08, 0.04, "consonant"),
}
REST = Articulation(_a(), 1.5, 0.08, 0.06, "rest")
_UNKNOWN = Articulation(_a(0.25), 0.2, 0.03, 0.03, "consonant")


def _letters(name: str) -> str:
    """IPA letters of an espeak phoneme name without stress, length and diacritic marks."""
    decomposed = unicodedata.normalize("NFD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c) and c not in "ˈˌːˑ-_'\"ʰʲʷˠˤ̃.,!?0123456789")


def articulations(name: str) -> list[Articulation]:
    """What a phoneme does, in order: one entry for most, two for diphthongs (start and glide)
    and affricates ("tʃ" is a stop into a fricative)."""
    letters = _letters(name)
    vowels = [c for c in letters if c in _VOWELS]
    if vowels:
        return [Articulation(_VOWELS[v], 1.0, 0.05, 0.06, "vowel") for v in vowels[:2]]
    out = []
    for c in letters[:2]:
        if c in _CONSONANTS:
            targets, dominance, before, after, kind = _CONSONANTS[c]
            out.append(Articulation(targets, dominance, before, after, kind))
    return out or [_UNKNOWN]


def is_bilabial(name: str) -> bool:
    return any(a.kind == "bilabial" for a in articulations(name))


def is_rounded(name: str) -> bool:
    """Rounded vowels and /w/: the phonemes whose lips the model must round."""
    return any(a.targets[1] >= 0.5 and a.kind != "rest" and "ʃ" not in name and "ʒ" not in name
               for a in articulations(name))
