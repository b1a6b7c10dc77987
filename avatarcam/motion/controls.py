"""Live controls on a motion stream: emotion now (gaze, distance and liveliness can join it).

An emotion is a resting expression laid under the speech: the blendshapes of a face that is
happy, sad, surprised... while the engine keeps driving the mouth. `ControlledEngine` wraps any
streaming engine (push/flush, see `avatarcam.chain.MotionEngine`) and eases from one emotion to
the next over `TRANSITION_S`, frame by frame, so a switch is a change of expression, not a jump.
The learned motion model will take the same controls as conditioning; the presets here are its
stand-in for engines without one.
"""

from __future__ import annotations

import threading

import numpy as np

from avatarcam import latent
from avatarcam.errors import AvatarCamError

TRANSITION_S = 0.4  # time constant of the ease from one emotion to the next

EMOTIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouthSmileLeft": 0.55, "mouthSmileRight": 0.55, "cheekSquintLeft": 0.3, "cheekSquintRight": 0.3,
              "eyeSquintLeft": 0.15, "eyeSquintRight": 0.15},
    "sad": {"mouthFrownLeft": 0.45, "mouthFrownRight": 0.45, "browInnerUp": 0.5, "mouthShrugLower": 0.2,
            "eyeSquintLeft": 0.1, "eyeSquintRight": 0.1},
    "surprised": {"browInnerUp": 0.6, "browOuterUpLeft": 0.6, "browOuterUpRight": 0.6, "eyeWideLeft": 0.45,
                  "eyeWideRight": 0.45},
    "angry": {"browDownLeft": 0.6, "browDownRight": 0.6, "noseSneerLeft": 0.25, "noseSneerRight": 0.25,
              "mouthPressLeft": 0.25, "mouthPressRight": 0.25, "eyeSquintLeft": 0.25, "eyeSquintRight": 0.25},
    "thinking": {"browDownLeft": 0.3, "browInnerUp": 0.25, "mouthPressLeft": 0.2, "mouthPressRight": 0.2,
                 "mouthLeft": 0.15},
}


# What the motion model is conditioned on: one of these styles, a gaze target (yaw, pitch in
# radians), a head distance (headLogScale) and a liveliness gain; CONTROL_DIM numbers in all.
STYLES = ("neutral", "happy", "sad", "angry", "surprised")
CONTROL_DIM = len(STYLES) + 4


def control_vector(emotion: str, gaze: tuple[float, float] = (0.0, 0.0), distance: float = 0.0,
                   liveliness: float = 1.0) -> np.ndarray:
    """The motion model's conditioning: emotion one-hot, gaze target, distance, liveliness."""
    out = np.zeros(CONTROL_DIM, np.float32)
    out[STYLES.index(emotion)] = 1.0
    out[len(STYLES):] = (*gaze, distance, liveliness)
    return out


def emotion_vector(name: str) -> np.ndarray:
    """The expression offsets of an emotion as a full latent vector (zeros elsewhere)."""
    if name not in EMOTIONS:
        raise AvatarCamError(f"unknown emotion {name!r}: choose one of {', '.join(EMOTIONS)}")
    vector = latent.zeros(1)[0]
    for channel, value in EMOTIONS[name].items():
        vector[latent.index(channel)] = value
    return vector


class ControlledEngine:
    """A motion engine with an emotion laid under it; `emotion` may be changed from any thread."""

    def __init__(self, engine, emotion: str = "neutral", fps: int = latent.FPS) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._rate = 1.0 - float(np.exp(-1.0 / (TRANSITION_S * fps)))
        self._target = self._state = latent.zeros(1)[0]
        self.emotion = emotion
        self._state = self._target.copy()

    @property
    def emotion(self) -> str:
        return self._emotion

    @emotion.setter
    def emotion(self, name: str) -> None:
        target = emotion_vector(name)
        with self._lock:
            # an engine conditioned on emotion (the motion model) plays it itself, voice and all;
            # the preset is laid under engines without, and under emotions the model does not know
            if name in getattr(self.engine, "styles", ()):
                self.engine.emotion = name
                target = latent.zeros(1)[0]
            elif hasattr(self.engine, "styles"):
                self.engine.emotion = "neutral"
            self._target, self._emotion = target, name

    @property
    def latency_s(self) -> float:
        """The wrapped engine's: the emotion adds none."""
        return self.engine.latency_s

    def push(self, samples: np.ndarray) -> np.ndarray:
        return self._apply(self.engine.push(samples))

    def flush(self) -> np.ndarray:
        return self._apply(self.engine.flush())

    def _apply(self, track: np.ndarray) -> np.ndarray:
        if len(track) == 0:
            return track
        with self._lock:
            target = self._target
        out = np.array(track, np.float32, copy=True)
        for row in out:
            self._state += (target - self._state) * self._rate
            # the stronger of speech and emotion, channel by channel: a smile does not stop the
            # jaw, and a wide-open vowel is not damped by a frown
            expression = row[latent.EXPRESSION_SLICE]
            np.maximum(expression, self._state[latent.EXPRESSION_SLICE], out=expression)
        return out
