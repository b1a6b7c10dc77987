"""The two lip shapes that speech needs sharp: shut (a bilabial, silence) and rounded (/u o w/).

A denoiser trained on squared error hedges between them: a bilabial shuts the lips for a frame
or two and comes out half-open, and a rounded vowel comes out half-pursed while the vowels around
it pick up some of its rounding. So the motion model carries a lip head beside the denoiser (a
classifier over each frame's audio, `avatarcam.motion.network`) that says how sure it is of
each shape, and the sampler sets a shape where the head is sure (`settle`), the way the teacher
forms it (`rounded`, the teacher's own rule). Elsewhere the motion stays as sampled. Lips are
shut only where the voice is low (`quiet`): closed lips stop the sound. And the jaw opens at
least as far as the teacher opens it for an open vowel at the voice's loudness (`jaw_floor`).
"""

from __future__ import annotations

import numpy as np

from avatarcam import latent
from avatarcam.audio import mel

JAW, CLOSE = latent.index("jawOpen"), latent.index("mouthClose")
FUNNEL, PUCKER = latent.index("mouthFunnel"), latent.index("mouthPucker")
SHAPES = ("shut", "rounded")  # the lip head's outputs, in order

LIP_GAP_SHUT = 0.08  # jawOpen - mouthClose below this: the renderer shows the lips together
ROUNDED_AT = 0.5  # mouthFunnel + mouthPucker from this: pursed lips
# Head probability where setting a shape begins / is complete, per shape (shut, rounded). Shut
# from 0.03 to 0.1 reaches 88.0% of the held-out /p b m/ with the denoiser's own closures kept to
# low voice (`settle`; from 0.1 to 0.2, 83.5%; the real clips' judged mouth follows their
# loudness within 0.003 either way: the teacher now shuts the lips where the voice is quiet, so
# the head is sure there, not on the loud release). Rounded only from 0.7 to 0.95: the head
# learned synthetic voices and on real ones is sure of rounding far too often (a quarter of the
# LJ Speech clip's frames over 0.56), and pursed lips read as a more open mouth: set from 0.2 to
# 0.4, the judged mouth followed the real clips' loudness at r 0.69-0.80, from 0.7 to 0.95 at
# 0.73-0.83; on the held-out split rounded / unrounded vowels are then 0.66 / 0.31 (the
# teacher's 0.80 / 0.18).
SURE_FROM, SURE_AT = np.array([0.03, 0.7]), np.array([0.1, 0.95])
ROUNDING_WHEN_SURE = 0.7  # the rounding degree (`rounded`) set where the head is sure
# Tried (2026-12-03), not kept: rounding read against the speaker's own, each frame's funnel +
# pucker lowered by the median over the last 5 s of speech. On the LJ Speech clip, which both
# the denoiser and the head hear as rounded throughout (median rounding 0.47 and head certainty
# 0.44, against 0.08-0.20 and 0.07-0.14 on the other real clips and 0.21 / 0.14 on the held-out
# split), the judged jaw then followed the loudness at r 0.753 (encoded; DSP 0.749, as is 0.715),
# but on the held-out split rounded / unrounded vowels fell to 0.40 / 0.09 (teacher 0.80 /
# 0.18), under half the teacher's contrast. Every variant that kept the contrast (only the
# denoiser's rounding, then the head's as now: 0.56 / 0.12; only the median's excess over the
# held-out split's: 0.57 / 0.21; the range stretched back to 0..1: 0.55 / 0.12) lost LJ Speech
# again (0.708 / 0.740 / 0.721 unencoded, DSP 0.755): the judge reads any pursed lips as a more
# open mouth, so there the lips follow its loudness only as far as they are not rounded.
# Also tried then (judged without the encode, codec2 / LibriSpeech / LJ Speech / Common Voice, as
# is 0.824 / 0.760 / 0.722 / 0.774): funnel and pucker smoothed over time (Gaussian, sigma 2 and
# 4 frames, centred, so beyond what the 80 ms lookahead allows live) 0.823 / 0.761 / 0.728 / 0.773
# and 0.823 / 0.762 / 0.739 / 0.779; the expressions of seeds 0 and 1 averaged 0.822 / 0.754 /
# 0.727 / 0.767. Neither reaches the DSP driver on LJ Speech (0.755). Nor does the jaw scaled by the
# clip's speech loudness (audio.features.speech_loudness L, jawOpen * (a + (1 - a) L), 2026-12-03):
# LJ Speech 0.715 / 0.719 at a 0.3 / 0.6, codec2 0.801 / 0.813. Without any rounding the same
# motion reaches 0.819 / 0.767 / 0.756 / 0.806: the rounding is what LJ Speech loses on, most of
# it in the loudest frames (none where the speech loudness is over 0.6: LJ Speech 0.737; none
# under 0.3 or from 0.3 to 0.6: 0.724 / 0.722), where pursed lips close in over the open jaw.
# Rounding less its running minimum (over the last 0.5-2 s), which keeps short rounded vowels and
# takes out a rounding that persists, cut LJ Speech's rounded frames from 71% to 38-55% but moved
# its r only to 0.721-0.727.
# Rounding from the head alone (2026-12-03, the denoiser's funnel and pucker dropped before
# `settle`; unencoded as above, as is 0.824 / 0.763 / 0.723 / 0.773, DSP 0.820 / 0.736 / 0.755 /
# 0.717): 0.823 / 0.770 / 0.734 / 0.806, rounded on 4 / 2 / 23 / 1% of the speech frames (80% on
# LJ Speech as is), held-out rounded / unrounded vowels 0.49 / 0.06 (other held-out bars pass);
# with the head retrained alone on mel windows coloured up to 8 dB/octave (training.data.colour,
# 3000 steps from the shipped head), LJ Speech rounded on 13% (the teacher's 17%) and followed at
# 0.732. With no rounding at all on that path, 0.824 / 0.774 / 0.750 / 0.807: LJ Speech stays
# under DSP even so, since the model's own jaw follows its loudness less (commanded jaw against
# the loudness r 0.855, DSP 0.879), which audio guidance does not change (1.5 / 2.5: 0.717 / 0.725).
# Shut lips stop the sound: a frame within QUIET_FROM dB of the loudest moment around it (its mel
# window, 330 ms) is voiced through open lips whatever the head says, one QUIET_AT dB below may be
# shut. The head learned synthetic voices; on real speech it also fires inside loud syllables.
QUIET_FROM, QUIET_AT = 6.0, 12.0
# The teacher's jaw (`avatarcam.corpus.teacher.track`) is LOUD_JAW * level ** LEVEL_POWER * shape:
# level the clean voice's loudness (0..1), shape the phoneme's (an open /a/ 1, a /w/ 0.75), never
# under MIN_SHAPE; only a bilabial's closure, which it places where the voice is quietest, takes
# the jaw lower. The denoiser learned that on synthetic voices, but on real ones it shuts the jaw
# now and then inside a loud syllable (on LJ Speech's "with which we", jawOpen 0.01 where the
# loudness alone opens the DSP driver's to 0.40). So the sampler holds the jaw to the teacher's
# open vowel (FLOOR_SHAPE) at the loudness the DSP driver measures (`avatarcam.motion.dsp.Mouth`,
# causal), the style's jaw gain left out (a sad voice's teacher jaw is 0.8 of this). Held to the
# teacher's least opening instead (MIN_SHAPE, 2026-12-03), the judged jaw followed the real clips'
# loudness less than the DSP driver's on codec2 (eight seeds, encoded: 0.835 against 0.840); held
# to the open vowel's (2026-12-04) 0.850 / 0.809 / 0.772 / 0.766 on codec2 / LibriSpeech / LJ
# Speech / Common Voice (DSP 0.840 / 0.750 / 0.748 / 0.697; least opening 0.835 / 0.780 / 0.753 /
# 0.754), at the cost of some vowel height: on the held-out split the jaw follows the teacher at r
# 0.872 (0.890 from the least opening; bar 0.85) and 85.2% of the bilabials are reached (85.7%; bar
# 85%: the lips a jaw held open takes apart where the voice is not low enough to keep them shut).
# 0.85 of the open vowel's reached 85.4% and r 0.886 but lost codec2 again (seed 0: 0.827, DSP
# 0.836); 1.1 and 1.2 times it, 85.0% and 84.6%, jaw r 0.857 and 0.841.
# Tried beside it (2026-12-03; judged unencoded, seed 0, codec2 / LibriSpeech / LJ Speech / Common
# Voice 0.828 / 0.777 / 0.751 / 0.776 with it, DSP 0.818 / 0.737 / 0.755 / 0.719): mouthLowerDown
# raised with the held jaw as the teacher ties them, no change; QUIET_FROM / QUIET_AT 8 / 14, which
# reaches only 81% of the held-out bilabials (bar 85%); `quiet` from each frame's loudness envelope
# (the teacher's measure) instead of the mel rows, mixed (0.823-0.832 / 0.784-0.787 / 0.755-0.760 /
# 0.750-0.768). The DSP driver's mouthClose in place of the model's gained 0.006-0.013 on every
# clip: the model seals the lips a frame early or late round a quiet closure, on its loud edges.
LOUD_JAW = 0.62  # jawOpen of a loud open vowel
LEVEL_POWER = 0.8
MIN_SHAPE = 0.7
FLOOR_SHAPE = 1.0  # the jaw floor's phoneme shape: an open vowel's


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
    each frame's own rows (`centre` +-1) are, 0 within QUIET_FROM dB, 1 from QUIET_AT dB; 1 where
    they are silence (what the speech gate passes as the floor)."""
    own = windows[:, centre - 1:centre + 2]
    level = 10.0 * np.log10(np.sum(10.0 ** (windows / 10.0), axis=-1) + 1e-12)  # per row, dB
    below = level.max(axis=-1) - level[:, centre - 1:centre + 2].max(axis=-1)
    silent = (own <= mel.FLOOR_DB + 1.0).all(axis=(1, 2))
    return np.where(silent, 1.0, np.clip((below - QUIET_FROM) / (QUIET_AT - QUIET_FROM), 0.0, 1.0))


def jaw_floor(loudness: np.ndarray) -> np.ndarray:
    """The jawOpen the teacher gives an open vowel at this loudness (0..1): the least the sampler
    lets the jaw open outside a closure."""
    return FLOOR_SHAPE * LOUD_JAW * np.asarray(loudness, np.float32) ** LEVEL_POWER


def settle(motion: np.ndarray, sure: np.ndarray, low: np.ndarray, loudness: np.ndarray | None = None) -> np.ndarray:
    """Set the shapes the head is sure of in `motion` (frames, DIM), in place; `sure` is the
    head's (frames, 2) probabilities, `low` how low the voice is (`quiet`), `loudness` the
    voice's loudness where known, which holds the jaw at `jaw_floor` first (shut lips staying
    shut). Shut: mouthClose rises to jawOpen, as through the teacher's bilabials, and the jaw
    keeps following the voice (an /m/ is loud and may keep it open). Rounded: funnel and pucker
    rise to the teacher's rounding at this jaw; lips rounded more already stay so. Lips close
    only as far as the voice is low, the denoiser's own closures too: on real voices it seals
    lips inside loud syllables as well (on LibriSpeech the judged mouth followed the loudness at
    r 0.62 with them, 0.71 without)."""
    if loudness is not None:
        # lips the denoiser shut stay shut over the jaw held open, as over an /m/ (parted, the
        # held-out split's bilabials reached fell from 86.3% to 85.0%; kept shut, 85.7%)
        opened = np.maximum(jaw_floor(loudness) - motion[:, JAW], 0.0)
        motion[:, CLOSE] += opened * (motion[:, JAW] - motion[:, CLOSE] < LIP_GAP_SHUT)
        motion[:, JAW] += opened
    amount = np.clip((sure - SURE_FROM) / (SURE_AT - SURE_FROM), 0.0, 1.0)
    amount[:, 0] *= low
    motion[:, CLOSE] *= low
    jaw = motion[:, JAW]
    motion[:, CLOSE] += amount[:, 0] * np.maximum(jaw - motion[:, CLOSE], 0.0)
    funnel, pucker = rounded(amount[:, 1] * ROUNDING_WHEN_SURE, jaw)
    motion[:, FUNNEL] = np.maximum(motion[:, FUNNEL], funnel)
    motion[:, PUCKER] = np.maximum(motion[:, PUCKER], pucker)
    return motion
