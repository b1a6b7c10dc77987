"""The motion latent: the contract between motion generators and renderers.

One float32 vector per video frame with named channels in a fixed order:
head pose (6), gaze (2) and 44 ARKit expression blendshapes (the 52 ARKit
names without the eight eyeLook* channels that gaze replaces). Expression
values are 0..1, angles are radians, translations are in face widths and
scale is a natural log (0 = the portrait's own distance).

Everything here is plain data; this module imports nothing of ours.
"""

from __future__ import annotations

import numpy as np

FPS = 30  # video frames per second of every motion track

POSE = ("headYaw", "headPitch", "headRoll", "headX", "headY", "headLogScale")
GAZE = ("gazeYaw", "gazePitch")
EXPRESSION = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
CHANNELS = POSE + GAZE + EXPRESSION
DIM = len(CHANNELS)
assert DIM == 52 and len(EXPRESSION) == 44 and len(set(CHANNELS)) == DIM

_INDEX = {name: i for i, name in enumerate(CHANNELS)}
EXPRESSION_SLICE = slice(len(POSE) + len(GAZE), DIM)

# Limits a renderer can show faithfully; generators clip to them.
_LOW = np.zeros(DIM, np.float32)
_HIGH = np.ones(DIM, np.float32)
for _name, (_lo, _hi) in {
    "headYaw": (-0.6, 0.6), "headPitch": (-0.4, 0.4), "headRoll": (-0.4, 0.4),
    "headX": (-0.5, 0.5), "headY": (-0.5, 0.5), "headLogScale": (-0.4, 0.4),
    "gazeYaw": (-0.5, 0.5), "gazePitch": (-0.4, 0.4),
}.items():
    _LOW[_INDEX[_name]], _HIGH[_INDEX[_name]] = _lo, _hi
LOW, HIGH = _LOW, _HIGH
LOW.flags.writeable = HIGH.flags.writeable = False


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation matrix in image axes (x right, y down, z into the screen).

    The convention every generator, renderer and judge shares: positive yaw turns the nose
    toward +x (image right), positive pitch toward +y (looking down), positive roll turns
    the face clockwise on screen. R = Rz(roll) @ Rx(pitch) @ Ry(yaw).
    """
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def angles(r: np.ndarray) -> tuple[float, float, float]:
    """Inverse of `rotation`: (yaw, pitch, roll) of a rotation matrix in image axes."""
    pitch = float(np.arcsin(np.clip(r[2, 1], -1.0, 1.0)))
    yaw = float(np.arctan2(r[2, 0], r[2, 2]))
    roll = float(np.arctan2(-r[0, 1], r[1, 1]))
    return yaw, pitch, roll


def index(name: str) -> int:
    """Position of a channel in the latent vector."""
    try:
        return _INDEX[name]
    except KeyError:
        raise KeyError(f"unknown motion channel {name!r}; see avatarcam.latent.CHANNELS") from None


def zeros(frames: int = 1) -> np.ndarray:
    """A neutral track: the portrait as photographed, `frames` x DIM float32."""
    return np.zeros((frames, DIM), np.float32)


def clip(track: np.ndarray) -> np.ndarray:
    """Clip a track (or one frame) to the channel ranges, as float32."""
    return np.clip(track, LOW, HIGH).astype(np.float32, copy=False)


def from_dict(values: dict[str, float], frames: int = 1) -> np.ndarray:
    """Build a track holding the given named channel values, others neutral."""
    track = zeros(frames)
    for name, value in values.items():
        track[:, index(name)] = value
    return track


def to_dict(frame: np.ndarray) -> dict[str, float]:
    """Name the channels of one frame."""
    return {name: float(v) for name, v in zip(CHANNELS, frame)}
