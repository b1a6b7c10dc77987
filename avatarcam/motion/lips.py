"""The two lip shapes that speech needs sharp: shut (a bilabial, silence) and rounded (/u o w/).

A denoiser trained on squared error hedges between them: a bilabial shuts the lips for a frame
or two and comes out half-open, and a rounded vowel comes out half-pursed while the vowels around
it pick up some of its rounding. So the motion model carries a lip head beside the denoiser (a
classifier over each frame's audio, `avatarcam.motion.network`) that says how sure it is of
each shape, and the sampler sets a shape where the head is sure (`settle`), the way the teacher
forms it (`rounded`, the teacher's own rule). Elsewhere the motion stays as sampled.
"""

from __future__ import annotations

import numpy as np

from avatarcam import latent

JAW, CLOSE = latent.index("jawOpen"), latent.index("mouthClose")
FUNNEL, PUCKER = latent.index("mouthFunnel"), latent.index("mouthPucker")
SHAPES = ("shut", "rounded")  # the lip head's outputs, in order

LIP_GAP_SHUT = 0.08  # jawOpen - mouthClose below this: the renderer shows the lips together
ROUNDED_AT = 0.5  # mouthFunnel + mouthPucker from this: pursed lips
SURE_FROM, SURE_AT = 0.2, 0.4  # head probability where setting a shape begins / is complete
ROUNDING_WHEN_SURE = 0.7  # the rounding degree (`rounded`) set where the head is sure


def rounded(degree: np.ndarray, jaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mouthFunnel, mouthPucker) of lips rounded by `degree` (0..1) over an opening `jaw`: a
    closer jaw purses them (pucker), an open one makes a funnel."""
    return degree * np.clip(0.3 + 1.2 * jaw, 0.0, 1.0), degree * 0.8 * (1.0 - jaw)


def shapes(track: np.ndarray) -> np.ndarray:
    """(..., 2) booleans: which of SHAPES the lips of each frame show."""
    shut = track[..., JAW] - track[..., CLOSE] < LIP_GAP_SHUT
    pursed = track[..., FUNNEL] + track[..., PUCKER] >= ROUNDED_AT
    return np.stack([shut, pursed], axis=-1)


def settle(motion: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """Set the shapes the head is sure of in `motion` (frames, DIM), in place; `sure` is the
    head's (frames, 2) probabilities. Shut: mouthClose rises to jawOpen, as through the teacher's
    bilabials, and the jaw keeps following the voice (an /m/ is loud and may keep it open).
    Rounded: funnel and pucker rise to the teacher's rounding at this jaw; lips rounded more
    already stay so."""
    amount = np.clip((sure - SURE_FROM) / (SURE_AT - SURE_FROM), 0.0, 1.0)
    jaw = motion[:, JAW]
    motion[:, CLOSE] += amount[:, 0] * np.maximum(jaw - motion[:, CLOSE], 0.0)
    funnel, pucker = rounded(amount[:, 1] * ROUNDING_WHEN_SURE, jaw)
    motion[:, FUNNEL] = np.maximum(motion[:, FUNNEL], funnel)
    motion[:, PUCKER] = np.maximum(motion[:, PUCKER], pucker)
    return motion
