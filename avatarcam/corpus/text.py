"""What the corpus voices say: random sentences in many languages, spoken and sung.

Words are drawn from each language's frequency list (the `wordfreq` package, a training-only
dependency) with their real frequencies, so the phonemes come in natural proportions; the words
need not make sense, only sound like the language. Commas and full stops give the voices pauses
to breathe, blink and nod in.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from avatarcam.errors import AvatarCamError

VOCABULARY = 4000  # most frequent words per language


@lru_cache(maxsize=None)
def _words(language: str) -> tuple[list[str], np.ndarray]:
    try:
        import wordfreq
    except ImportError:  # pragma: no cover - depends on the install
        raise AvatarCamError("building the corpus needs the training extras: pip install 'avatarcam[train]'") from None
    words = [w for w in wordfreq.top_n_list(language, VOCABULARY) if w.isalpha()]
    if not words:
        raise AvatarCamError(f"no word list for language {language!r}")
    weights = np.array([wordfreq.word_frequency(w, language) for w in words])
    return words, weights / weights.sum()


def sentence(language: str, rng: np.random.Generator, words: tuple[int, int] = (4, 18)) -> str:
    """A sentence of random words with a comma or two: e.g. "Time the, as people would went."."""
    vocabulary, weights = _words(language)
    count = int(rng.integers(words[0], words[1] + 1))
    picked = rng.choice(len(vocabulary), size=count, p=weights)
    tokens = [vocabulary[i] for i in picked]
    for position in sorted(rng.choice(np.arange(2, count - 1), size=min(count // 7, max(count - 3, 0)), replace=False)):
        tokens[position] += ","
    text = " ".join(tokens)
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", "?", "!"])


def paragraph(language: str, rng: np.random.Generator, sentences: tuple[int, int] = (1, 3)) -> str:
    return " ".join(sentence(language, rng) for _ in range(int(rng.integers(sentences[0], sentences[1] + 1))))


def song(language: str, rng: np.random.Generator) -> str:
    """SSML for a sung phrase: slow words, each held on one note of a simple melody."""
    vocabulary, weights = _words(language)
    count = int(rng.integers(4, 10))
    picked = rng.choice(len(vocabulary), size=count, p=weights)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])  # major scale, semitones
    step = int(rng.integers(0, 4))
    notes = []
    for i in picked:
        step = int(np.clip(step + rng.integers(-2, 3), 0, len(scale) - 1))
        percent = int(round((2.0 ** (scale[step] / 12.0) - 1.0) * 100.0))
        rate = int(rng.integers(25, 60))
        notes.append(f'<prosody pitch="+{percent}%" rate="{rate}%">{vocabulary[i]}</prosody>')
    return "<speak>" + " ".join(notes) + "</speak>"
