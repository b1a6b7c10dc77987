"""Behaviour cues: when to blink and where the head is heading, per frame, for the motion model.

When a person blinks, or which way their head drifts, is hardly decided by the words: it is
chance, shaped by pauses and emphasis. A diffusion model asked for it in two sampler steps
returns the average of all the blinks it might make, which is no blink at all (the 2-step
sampler's collapse, see bench/results/motion.md). So, as VASA-1 conditions on gaze and head
controls, the model is told per frame: a blink starts here (a pulse), and the head's slow target
(yaw, pitch). It learns how a blink and a head movement look and how they sit with the speech;
the cues themselves are drawn at run time by the seeded, speech-aware behaviour process of
`avatarcam.motion.procedural` (blinks more often at pauses, livelier head while talking).

Training reads the same cues off the teacher's tracks (`track_cues` on a head low-passed over
HEAD_SMOOTH_S, so the model adds the fast part, nods, itself).

The model still draws a cued blink shallower than asked where the voice is unlike its training
speech (lids peaking at 0.3-0.6 on music and some real voices, against 0.9-1 in the teacher), and
a few frames early or late, so through each cued blink the lids are the behaviour process's own
(`blink`); elsewhere they stay the model's.
"""

from __future__ import annotations

import numpy as np

from avatarcam import latent
from avatarcam.audio.features import FrameAnalyzer
from avatarcam.motion.dsp import Mouth
from avatarcam.motion.procedural import BLINK, Behaviour

CUES = 4  # blink onset, head yaw target, head pitch target, "cues given" flag
BLINK_ONSET = 0.05  # a blink starts where the lid channel rises through this
HEAD_SCALE = 1.0 / np.radians(3.0)  # cue units: 1 = 3 degrees
HEAD_SMOOTH_S = 0.3  # the teacher's head is low-passed this much (Gaussian sigma) to make its cue
_BLINK = BLINK[0]  # the left lid stands for both in the cues
_HEAD = [latent.index("headYaw"), latent.index("headPitch")]


def track_cues(track: np.ndarray, blink_before: float = 0.0) -> np.ndarray:
    """(n, CUES) cues of a motion track: blink onsets, its head yaw and pitch, the flag.
    `blink_before`: the lid value of the frame before the first (streams come in pieces)."""
    blink = track[:, _BLINK]
    previous = np.concatenate([[blink_before], blink[:-1]])
    out = np.zeros((len(track), CUES), np.float32)
    out[:, 0] = (blink > BLINK_ONSET) & (previous <= BLINK_ONSET)
    out[:, 1:3] = track[:, _HEAD] * HEAD_SCALE
    out[:, 3] = 1.0
    return out


def teacher_cues(track: np.ndarray) -> np.ndarray:
    """Training cues of a whole teacher track: its blink onsets and its head, low-passed."""
    from scipy.ndimage import gaussian_filter1d

    smooth = track.astype(np.float32).copy()
    smooth[:, _HEAD] = gaussian_filter1d(smooth[:, _HEAD], HEAD_SMOOTH_S * latent.FPS, axis=0, mode="nearest")
    return track_cues(smooth)


class CueStream:
    """Cues drawn live from the audio: push samples as they come, read the cues of any frame
    made so far. The DSP driver's loudness feeds the seeded behaviour process; its blinks and
    head become the cues. Needs less lookahead than the model, so a frame's cue is always ready
    before the model needs it."""

    def __init__(self, seed: int = 0, fps: int = latent.FPS, rate: int = 16000) -> None:
        self._analyzer = FrameAnalyzer(rate, fps)
        self._mouth = Mouth(fps)
        self._behaviour = Behaviour(seed, fps)
        self._blink = 0.0
        self._rows = np.zeros((0, CUES), np.float32)
        self._lids = np.zeros((0, 2), np.float32)  # the behaviour's eyeBlinkLeft/Right, per frame
        self._loudness = np.zeros(0, np.float32)  # the DSP driver's speech loudness, per frame
        self._first = 0  # frame index of _rows[0]

    def push(self, samples: np.ndarray) -> None:
        self._add(self._analyzer.push(samples))

    def flush(self) -> None:
        self._add(self._analyzer.flush())

    def _add(self, features) -> None:
        if not len(features):
            return
        track = latent.zeros(len(features))
        loudness = self._mouth.animate(features, track)
        track[:] = 0.0  # only the behaviour, not the DSP mouth, makes cues
        self._behaviour.animate(loudness, track)
        cues = track_cues(track, self._blink)
        self._blink = float(track[-1, _BLINK])
        self._rows = np.concatenate([self._rows, cues])
        self._lids = np.concatenate([self._lids, track[:, BLINK]])
        self._loudness = np.concatenate([self._loudness, loudness.astype(np.float32)])

    def rows(self, frames: np.ndarray) -> np.ndarray:
        """Cues of frame indices `frames` (before the stream: no blink, head ahead; past what has
        been heard: the last cue held). Frames before `frames[0]` are then forgotten."""
        frames = np.asarray(frames)
        out = np.zeros((len(frames), CUES), np.float32)
        out[:, 3] = 1.0
        index = frames - self._first
        known = (index >= 0) & (index < len(self._rows))
        out[known] = self._rows[index[known]]
        later = index >= len(self._rows)
        if later.any() and len(self._rows):
            out[later] = self._rows[-1] * np.array([0, 1, 1, 1], np.float32)
        drop = int(np.clip(frames.min() - self._first, 0, len(self._rows)))
        self._rows, self._lids, self._loudness = self._rows[drop:], self._lids[drop:], self._loudness[drop:]
        self._first += drop
        return out

    def blink(self, motion: np.ndarray, first: int) -> np.ndarray:
        """`motion` (frames from index `first`, not yet passed by `rows`) with its lids set to the
        behaviour's, in place, wherever its cues are known. The teacher's lids move only in its
        blinks, and the cues say when those are: the model drew cued blinks shallow on music and
        some real voices, and on the held-out split blinked where no cue asked (26.6 a minute
        against the behaviour's 20.4)."""
        index, known = self._known(first, len(motion))
        motion[np.ix_(np.flatnonzero(known), BLINK)] = self._lids[index[known]]
        return motion

    def loudness(self, first: int, count: int) -> np.ndarray:
        """The speech loudness (0..1, `avatarcam.motion.dsp.Mouth`'s) of `count` frames from
        index `first` (not yet passed by `rows`); 0 where not yet heard."""
        index, known = self._known(first, count)
        out = np.zeros(count, np.float32)
        out[known] = self._loudness[index[known]]
        return out

    def _known(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        index = np.arange(first, first + count) - self._first
        return index, (index >= 0) & (index < len(self._lids))
