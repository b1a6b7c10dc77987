"""The motion latent as ARKit face tracking: 52 blendshapes, head and eye angles, VRM presets.

The latent holds 44 of ARKit's 52 blendshapes under their ARKit names; the other eight
(eyeLook*) are the gaze, which the latent keeps as two angles. Here they are made back from it.
Everything works on one frame (DIM,) or a track (..., DIM).

Axes. The latent's head rotation is in image axes (x right, y down, z into the screen:
`latent.rotation`). A VRM avatar lives in Unity's axes (x right, y up, z forward, left-handed)
and faces +z, toward the viewer. Seen on screen, image right is the avatar's -x, image down its
-y and into the screen its -z: the map between the two is minus the identity, so a rotation
matrix is the same numbers in both, and a head turned toward the image's right turns toward the
screen's right on an avatar facing you, as in the camera picture.
"""

from __future__ import annotations

import numpy as np

from avatarcam import latent

# Apple's ARFaceAnchor order, which Live Link Face keeps for its CSV columns and packets.
NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawRight", "jawLeft", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthRight", "mouthLeft", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
assert len(NAMES) == 52 and set(latent.EXPRESSION) <= set(NAMES)


def capitalised(name: str) -> str:
    """A name as "perfect sync" VRM models and Live Link Face spell it: jawOpen -> JawOpen."""
    return name[0].upper() + name[1:]


PERFECT_SYNC = tuple(capitalised(n) for n in NAMES)
VOWELS = ("A", "I", "U", "E", "O")  # VRM 0.x presets (VRM 1.0: aa, ih, ou, ee, oh)
PRESETS = VOWELS + ("Blink",)

_FROM_LATENT = [(NAMES.index(n), latent.index(n)) for n in latent.EXPRESSION]
_YAW, _PITCH, _ROLL = (latent.index(n) for n in ("headYaw", "headPitch", "headRoll"))
_GAZE_YAW, _GAZE_PITCH = latent.index("gazeYaw"), latent.index("gazePitch")
# eyeLook* is 1 where the eye can turn no further: the latent's gaze limits are that reach.
_GAZE_FULL_YAW, _GAZE_FULL_PITCH = float(latent.HIGH[_GAZE_YAW]), float(latent.HIGH[_GAZE_PITCH])
# +gazeYaw looks toward the image's right, the subject's left: out for the left eye, in for the
# right one; +gazePitch looks down.
_LOOK = {"eyeLookOutLeft": (_GAZE_YAW, 1), "eyeLookInRight": (_GAZE_YAW, 1),
         "eyeLookInLeft": (_GAZE_YAW, -1), "eyeLookOutRight": (_GAZE_YAW, -1),
         "eyeLookDownLeft": (_GAZE_PITCH, 1), "eyeLookDownRight": (_GAZE_PITCH, 1),
         "eyeLookUpLeft": (_GAZE_PITCH, -1), "eyeLookUpRight": (_GAZE_PITCH, -1)}


def blendshapes(frames: np.ndarray) -> np.ndarray:
    """(..., 52) float32 ARKit blendshapes in NAMES order, 0..1, from (..., DIM) latent frames."""
    frames = np.asarray(frames, np.float32)
    out = np.zeros(frames.shape[:-1] + (len(NAMES),), np.float32)
    for arkit, own in _FROM_LATENT:
        out[..., arkit] = frames[..., own]
    for name, (channel, sign) in _LOOK.items():
        full = _GAZE_FULL_YAW if channel == _GAZE_YAW else _GAZE_FULL_PITCH
        out[..., NAMES.index(name)] = sign * frames[..., channel] / full
    return np.clip(out, 0.0, 1.0)


def head_angles(frames: np.ndarray) -> np.ndarray:
    """(..., 3) head yaw, pitch, roll in radians (the latent's own: +yaw toward the image's right,
    +pitch down, +roll clockwise on screen)."""
    return np.asarray(frames, np.float32)[..., [_YAW, _PITCH, _ROLL]]


def gaze_angles(frames: np.ndarray) -> np.ndarray:
    """(..., 2) eye yaw and pitch in radians relative to the head, both eyes alike (the latent has one gaze)."""
    return np.asarray(frames, np.float32)[..., [_GAZE_YAW, _GAZE_PITCH]]


def quaternion(r: np.ndarray) -> np.ndarray:
    """(x, y, z, w) of a 3x3 rotation matrix, unit length, w >= 0."""
    m = np.asarray(r, np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    # divide by the largest of 4w^2, 4x^2, 4y^2, 4z^2: the other branches lose precision near 180 degrees
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    elif m[0, 0] >= m[1, 1] and m[0, 0] >= m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] >= m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def matrix(q: np.ndarray) -> np.ndarray:
    """The 3x3 rotation matrix of a unit quaternion (x, y, z, w)."""
    x, y, z, w = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def half_turn(q: np.ndarray) -> np.ndarray:
    """The rotation about the same axis by half the angle: half_turn(q) * half_turn(q) == q.

    The square root of a unit quaternion with w >= 0 is (1 + q) normalised.
    """
    h = np.asarray(q, np.float64) + np.array([0.0, 0.0, 0.0, 1.0])
    return h / np.linalg.norm(h)


def head_quaternion(frame: np.ndarray) -> np.ndarray:
    """The head's rotation of one latent frame as a unit quaternion (x, y, z, w) in Unity's axes
    (the same matrix as in image axes: see the module docstring)."""
    yaw, pitch, roll = (float(v) for v in head_angles(frame))
    return quaternion(latent.rotation(yaw, pitch, roll))


# The lip readings the vowels are made from. JAW_WIDE is the motion's jawOpen for a loud open
# vowel (motion.lips.LOUD_JAW), SPREAD_FULL its mouthStretch for a spread /i/ (the teacher's 0.55
# spread x 0.6): each reads 1 there.
JAW_WIDE = 0.62
SPREAD_FULL = 0.33
_JAW, _CLOSE = latent.index("jawOpen"), latent.index("mouthClose")
_FUNNEL, _PUCKER = latent.index("mouthFunnel"), latent.index("mouthPucker")
_STRETCH = [latent.index("mouthStretchLeft"), latent.index("mouthStretchRight")]
_BLINK = [latent.index("eyeBlinkLeft"), latent.index("eyeBlinkRight")]


def presets(frames: np.ndarray) -> np.ndarray:
    """(..., 6) VRM presets A, I, U, E, O, Blink (0..1) for models without perfect sync.

    Three readings of the lips, each 0..1: open (lips apart, jawOpen - mouthClose, 1 at a loud
    open vowel), round (mouthFunnel + mouthPucker) and spread (mouthStretch). The vowels sit at
    the corners of that box, as the phonemes shape the lips: A open, E open and spread, I spread
    and nearly closed, O open and round, U round and nearly closed; a frame weighs each corner
    by how near it is (multilinear interpolation), so closed, unrounded, unspread lips (silence)
    show no vowel and the weights never add up to more than 1. Blink is both eyes' mean.
    """
    f = np.asarray(frames, np.float32)
    gap = np.clip((f[..., _JAW] - f[..., _CLOSE]) / JAW_WIDE, 0.0, 1.0)
    rnd = np.clip(f[..., _FUNNEL] + f[..., _PUCKER], 0.0, 1.0)
    spread = np.clip(f[..., _STRETCH].mean(axis=-1) / SPREAD_FULL, 0.0, 1.0)
    flat = 1.0 - rnd
    a = gap * flat * (1.0 - spread)
    i = (1.0 - gap) * flat * spread
    u = (1.0 - gap) * rnd
    e = gap * flat * spread
    o = gap * rnd
    blink = f[..., _BLINK].mean(axis=-1)
    return np.clip(np.stack([a, i, u, e, o, blink], axis=-1), 0.0, 1.0).astype(np.float32)
