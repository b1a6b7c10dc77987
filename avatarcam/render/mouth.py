"""The mouth layer's geometry: where the mouth interior (cavity, teeth, tongue) goes in a frame,
in a box of the ROI, and its coverage masks. CpuRenderer._draw_mouth draws it; the GPU renderer
uploads the same masks and its kernels blend them (`MouthGeometry` is the contract).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import facemesh as fm
from .masks import SHIFT, polygon_box
from .scene import Scene

UPPER_TEETH = 0.1  # how far the upper incisors show below the upper lip, in mouth widths
# The teeth's light against the eyes' whites: the lower ones stand in the upper lip's shadow.
UPPER_TEETH_SHADE, LOWER_TEETH_SHADE = 0.9, 0.85
# The depth shadow (CpuRenderer._draw_mouth): toward the back of the opening the cavity darkens by
# up to CAVITY_SHADOW of its colour, the tongue's cover thins by up to TONGUE_SHADOW.
CAVITY_SHADOW, TONGUE_SHADOW = 0.4, 0.3


@dataclass
class MouthGeometry:
    """Where the mouth interior goes in a frame, in a box of the ROI (both renderers draw from it)."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in ROI pixels
    polygon: np.ndarray             # the opening, box pixels
    upper_teeth: np.ndarray | None  # box pixels; None where the portrait shows its own teeth
    lower_teeth: np.ndarray
    tongue: np.ndarray              # uint8 coverage of the tongue, the box's shape
    width: float                    # mouth width, pixels
    feather: float                  # blur of the opening's edge, pixels
    strength: float                 # opacity of the interior: a barely parted mouth shows little

    @property
    def shape(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return y1 - y0, x1 - x0


def mouth_geometry(scene: Scene, points: np.ndarray, frame: np.ndarray,
                   roi_shape: tuple[int, ...]) -> MouthGeometry | None:
    """The opening below what the portrait's own parted lips show (`mouth_top`, which stays with
    the upper jaw) down to the lower lip, for control points `points` in ROI pixels; None where the
    lips are together (the rig's rest: `Rig.seal` closes a photo's parted lips)."""
    top, lower = points[scene.rig.mouth_top], points[list(fm.LIPS_LOWER_INNER)]
    opening = float(np.linalg.norm(lower - top, axis=1)[3:8].max())
    if opening < 0.6:
        return None
    upper = points[list(fm.LIPS_UPPER_INNER)]
    width = float(np.linalg.norm(upper[-1] - upper[0]))
    feather = max(0.6, 0.015 * width)
    polygon = np.concatenate([top, lower[::-1]])
    box = polygon_box(polygon, roi_shape, margin=2 + int(np.ceil(3 * feather)))
    if box is None:
        return None
    off = np.array(box[:2], np.float32)
    shape = (box[3] - box[1], box[2] - box[0])
    # the tongue: a dome on a body as wide that reaches down behind the lower teeth, the mouth's
    # outline cutting it off (the dome alone left a dark band with a flat edge above the teeth)
    centre = lower[5] - off - (0, 0.1 * width)
    tongue = np.zeros(shape, np.uint8)
    half = (0.28 * width, max(1.0, 0.18 * width))
    cv2.ellipse(tongue, (int(centre[0] * 16), int(centre[1] * 16)), (int(half[0] * 16), int(half[1] * 16)),
                0, 180, 360, 255, -1, cv2.LINE_AA, SHIFT)
    body = np.array([[-half[0], 0.0], [half[0], 0.0], [half[0], 0.2 * width], [-half[0], 0.2 * width]]) + centre
    cv2.fillConvexPoly(tongue, np.round(body * 16).astype(np.int32), 255, cv2.LINE_AA, SHIFT)
    # Front teeth only (the side teeth are in the cheeks' shadow; a full row reads as a smile):
    # upper ones hang from the upper lip unless the portrait already shows its own, lower ones
    # rise from the lower lip.
    tooth_h = 0.06 * width
    upper_teeth = None
    if float(np.median(np.linalg.norm(top - upper, axis=1))) < 0.5 * tooth_h:
        # incisors longest in the middle, the row shortening toward the canines (a band of even
        # height read as a mouth guard)
        row = top[2:-2]
        across = np.linspace(-1.0, 1.0, len(row))
        length = UPPER_TEETH * width * np.sqrt(1.0 - 0.75 * across ** 2)
        upper_teeth = np.concatenate([row, (row + np.c_[np.zeros(len(row)), length])[::-1]]) - off
    lower_teeth = np.concatenate([lower[3:-3], (lower[3:-3] - (0, 0.6 * tooth_h))[::-1]]) - off
    return MouthGeometry(box, polygon - off, upper_teeth, lower_teeth, tongue, width, feather,
                         min(1.0, opening / 2.0))
