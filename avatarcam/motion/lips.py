"""The two lip shapes that speech needs sharp: shut (a bilabial, silence) and rounded (/u o w/).

A denoiser trained on squared error hedges between them: a bilabial shuts the lips for a frame
or two and comes out half-open, and a rounded vowel comes out half-pursed while the vowels around
it pick up some of its rounding. So the motion model carries a lip head beside the denoiser (a
classifier over each frame's audio, `avatarcam.motion.network`) that says how sure it is of
each shape, and the sampler sets a shape where the head is sure (`settle`), the way the teacher
forms it (`rounded`, the teacher's own rule); rounded also where the head's belief stands out
from what it usually hears in this voice (`VoiceRounding`). Elsewhere the motion stays as sampled. Lips are
shut only where the voice is low (`quiet`): closed lips stop the sound. And the jaw opens at
least as far as the teacher opens its closest vowel at the voice's loudness (`jaw_floor`).
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import numpy as np

from avatarcam import latent
from avatarcam.audio import mel

JAW, CLOSE = latent.index("jawOpen"), latent.index("mouthClose")
FUNNEL, PUCKER = latent.index("mouthFunnel"), latent.index("mouthPucker")
SHAPES = ("shut", "rounded")  # the lip head's outputs, in order

LIP_GAP_SHUT = 0.08  # jawOpen - mouthClose below this: the renderer shows the lips together
ROUNDED_AT = 0.5  # mouthFunnel + mouthPucker from this: pursed lips
# Head probability where setting a shape begins / is complete, per shape (shut, rounded). Rounding
# only where the head is very sure: it learned synthetic voices and on real ones is sure of rounding
# far too often, and pursed lips read as a more open mouth (docs/decisions.md, "Lip shapes").
SURE_FROM, SURE_AT = np.array([0.03, 0.7]), np.array([0.1, 0.95])
ROUNDING_WHEN_SURE = 0.7  # the rounding degree (`rounded`) set where the head is sure
# On some real voices the head ranks rounded vowels above spread ones but is never sure of them
# (its probability well under SURE_FROM on /u o w/), so rounding is also set where the head's
# belief stands out from what it usually hears in this voice: from RELATIVE_FROM logits over its
# median on the voice's last VOICE_MEMORY voiced frames, complete at RELATIVE_AT (docs/decisions.md,
# "Lip shapes").
RELATIVE_FROM, RELATIVE_AT = 1.5, 3.0
VOICE_MEMORY = 300  # voiced frames (10 s)
VOICE_KNOWN = 10  # voiced frames before the voice's median means anything
# Shut lips stop the sound: a frame within QUIET_FROM dB of the loudest moment around it (its mel
# window, 330 ms) is voiced through open lips whatever the head says, one QUIET_AT dB below may be
# shut. The head learned synthetic voices; on real speech it also fires inside loud syllables.
# Measured from SHUT_FROM_HZ up: an /m/ hums on through the nose, nearly as loud as a vowel below
# 1 kHz, but shut lips take away the sound above it (docs/decisions.md, "The teacher's jaw").
QUIET_FROM, QUIET_AT = 6.0, 12.0
SHUT_FROM_HZ = 1000.0
_ABOVE = mel.CENTRES_HZ >= SHUT_FROM_HZ
# The teacher's jaw (`avatarcam.corpus.teacher.track`) is LOUD_JAW * level ** LEVEL_POWER * shape:
# level the clean voice's loudness (0..1), shape the phoneme's (an open /a/ 1, an /i/ 0.44),
# never under MIN_SHAPE: a jaw that followed the loudness more than the vowel followed the phones
# of real speech less than people's do (docs/decisions.md, "The teacher's jaw"). On real voices
# the denoiser now and then shuts the jaw inside a loud syllable, so the sampler holds the jaw to
# the least the teacher opens it (MIN_SHAPE) at the loudness the DSP driver measures (causal), the
# style's jaw gain left out.
LOUD_JAW = 0.62  # jawOpen of a loud open vowel
LEVEL_POWER = 0.8
MIN_SHAPE = 0.3


def rounded(degree: np.ndarray, jaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mouthFunnel, mouthPucker) of lips rounded by `degree` (0..1) over an opening `jaw`: a
    closer jaw purses them (pucker), an open one makes a funnel."""
    return degree * np.clip(0.3 + 1.2 * jaw, 0.0, 1.0), degree * 0.8 * (1.0 - jaw)


def shapes(track: np.ndarray) -> np.ndarray:
    """(..., 2) booleans: which of SHAPES the lips of each frame show."""
    shut = track[..., JAW] - track[..., CLOSE] < LIP_GAP_SHUT
    pursed = track[..., FUNNEL] + track[..., PUCKER] >= ROUNDED_AT
    return np.stack([shut, pursed], axis=-1)


def quiet(windows: np.ndarray, centre: int) -> np.ndarray:
    """(frames,) 0..1: how far below the loudest row of its window (frames, rows, bands of dB mel)
    each frame's own rows (`centre` +-1) are from SHUT_FROM_HZ up, 0 within QUIET_FROM dB, 1 from
    QUIET_AT dB; 1 where they are silence (what the speech gate passes as the floor)."""
    own = windows[:, centre - 1:centre + 2]
    level = 10.0 * np.log10(np.sum(10.0 ** (windows[..., _ABOVE] / 10.0), axis=-1) + 1e-12)  # per row, dB
    below = level.max(axis=-1) - level[:, centre - 1:centre + 2].max(axis=-1)
    silent = (own <= mel.FLOOR_DB + 1.0).all(axis=(1, 2))
    return np.where(silent, 1.0, np.clip((below - QUIET_FROM) / (QUIET_AT - QUIET_FROM), 0.0, 1.0))


def jaw_floor(loudness: np.ndarray) -> np.ndarray:
    """The least jawOpen the teacher gives any phoneme but a closure at this loudness (0..1): the
    least the sampler lets the jaw open outside a closure."""
    return MIN_SHAPE * LOUD_JAW * np.asarray(loudness, np.float32) ** LEVEL_POWER


class VoiceRounding:
    """How far the head's belief in rounded lips stands out from what it usually hears in this
    voice, frame by frame as a stream goes (causal: each frame against the frames up to it)."""

    def __init__(self) -> None:
        self._heard: deque[float] = deque()  # the head's logits on the latest voiced frames, in order
        self._sorted: list[float] = []  # the same, sorted: the median in a few microseconds a frame

    def __call__(self, belief: np.ndarray, low: np.ndarray) -> np.ndarray:
        """(frames,) 0..1 rounding from the head's (frames,) probabilities of rounded lips; `low`
        (`quiet`) says which frames are voiced (under 0.5: near the loudness around them), the
        only ones heard and rounded."""
        out = np.zeros(len(belief))
        for i in np.flatnonzero(np.asarray(low) < 0.5):  # a rounded vowel is voiced
            p = min(max(float(belief[i]), 1e-4), 1 - 1e-4)
            logit = math.log(p / (1 - p))
            self._heard.append(logit)
            bisect.insort(self._sorted, logit)
            if len(self._heard) > VOICE_MEMORY:
                self._sorted.pop(bisect.bisect_left(self._sorted, self._heard.popleft()))
            n = len(self._sorted)
            if n >= VOICE_KNOWN:
                median = (self._sorted[n // 2] + self._sorted[(n - 1) // 2]) / 2
                out[i] = (logit - median - RELATIVE_FROM) / (RELATIVE_AT - RELATIVE_FROM)
        return np.clip(out, 0.0, 1.0)


def settle(motion: np.ndarray, sure: np.ndarray, low: np.ndarray, loudness: np.ndarray | None = None,
           voice_rounding: np.ndarray | None = None) -> np.ndarray:
    """Set the shapes the head is sure of in `motion` (frames, DIM), in place; `sure` is the
    head's (frames, 2) probabilities, `low` how low the voice is (`quiet`), `loudness` the
    voice's loudness where known, which holds the jaw at `jaw_floor` first (shut lips staying
    shut). Shut: mouthClose rises to jawOpen, as through the teacher's bilabials, and the jaw
    keeps following the voice (an /m/ is loud and may keep it open). Rounded: funnel and pucker
    rise to the teacher's rounding at this jaw, as far as the head is sure or `voice_rounding`
    (`VoiceRounding`) says, whichever is more; lips rounded more already stay so. Lips close
    only as far as the voice is low, the denoiser's own closures too: on real voices it seals
    lips inside loud syllables as well."""
    if loudness is not None:
        # lips the denoiser shut stay shut over the jaw held open, as over an /m/
        opened = np.maximum(jaw_floor(loudness) - motion[:, JAW], 0.0)
        motion[:, CLOSE] += opened * (motion[:, JAW] - motion[:, CLOSE] < LIP_GAP_SHUT)
        motion[:, JAW] += opened
    amount = np.clip((sure - SURE_FROM) / (SURE_AT - SURE_FROM), 0.0, 1.0)
    if voice_rounding is not None:
        amount[:, 1] = np.maximum(amount[:, 1], voice_rounding)
    amount[:, 0] *= low
    motion[:, CLOSE] *= low
    jaw = motion[:, JAW]
    motion[:, CLOSE] += amount[:, 0] * np.maximum(jaw - motion[:, CLOSE], 0.0)
    funnel, pucker = rounded(amount[:, 1] * ROUNDING_WHEN_SURE, jaw)
    motion[:, FUNNEL] = np.maximum(motion[:, FUNNEL], funnel)
    motion[:, PUCKER] = np.maximum(motion[:, PUCKER], pucker)
    return motion
