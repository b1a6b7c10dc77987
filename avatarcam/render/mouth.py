"""The mouth layer's geometry: where the mouth interior (cavity, teeth, tongue) goes in a frame,
in a box of the ROI, and its coverage masks. CpuRenderer._draw_mouth draws it; the GPU renderer
uploads the same masks and its kernels blend them (`MouthGeometry` is the contract).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import facemesh as fm
from .masks import SHIFT, coverage, polygon_box
from .rig import head_scale
from .scene import Scene

UPPER_TEETH = 0.1  # how far the upper incisors show below the upper lip, in mouth widths
# The teeth's light against the eyes' whites: the lower ones stand in the upper lip's shadow.
UPPER_TEETH_SHADE, LOWER_TEETH_SHADE = 0.9, 0.85
# The depth shadow (CpuRenderer._draw_mouth): toward the back of the opening the cavity darkens by
# up to CAVITY_SHADOW of its colour, the tongue's cover thins by up to TONGUE_SHADOW.
CAVITY_SHADOW, TONGUE_SHADOW = 0.4, 0.3
# A photo's own teeth: the pixels of its open mouth lit at least TEETH_FROM of the teeth's light
# show, fully from TEETH_FULL (the dark of the mouth and the tongue are drawn as for any photo);
# used when they cover PHOTO_TEETH_SHARE of the opening, else the drawn teeth stand in.
TEETH_FROM, TEETH_FULL = 0.5, 0.75
PHOTO_TEETH_SHARE = 0.1


@dataclass
class PhotoTeeth:
    """What a photo's parted lips show of its teeth (they are the person's own), in a box of the still
    frame: the rest closes the lips over it (`Rig.seal`), an opening jaw shows it again, hanging
    from the upper lip as the upper teeth do."""

    texture: np.ndarray  # (h, w, 3) uint8 the photo's mouth opening
    alpha: np.ndarray    # (h, w) float32 where it shows teeth, within the opening
    anchor: np.ndarray   # (2,) the upper lip's middle (landmark 13) at rest, box pixels


def photo_teeth(scene: Scene) -> PhotoTeeth | None:
    """The teeth a scene's photo shows between its parted lips; None where the rest keeps the
    photo's lips as they are or the opening shows no teeth (PHOTO_TEETH_SHARE)."""
    if not scene.rig.seal.any():
        return None
    rest = scene.rest_points
    polygon = np.concatenate([rest[list(fm.LIPS_UPPER_INNER)], rest[list(fm.LIPS_LOWER_INNER[::-1])]])
    box = polygon_box(polygon, scene.scene.shape, margin=2)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    inside = cv2.erode(coverage(polygon - (x0, y0), (y1 - y0, x1 - x0)), np.ones((3, 3), np.uint8))
    texture = scene.scene[y0:y1, x0:x1].copy()
    light = texture.astype(np.float32).mean(axis=2) / max(float(np.mean(scene.mouth_colours[1])), 1.0)
    teeth = np.clip((light - TEETH_FROM) / (TEETH_FULL - TEETH_FROM), 0.0, 1.0)
    alpha = (inside.astype(np.float32) / 255 * teeth * teeth * (3 - 2 * teeth)).astype(np.float32)
    if alpha.sum() < PHOTO_TEETH_SHARE * max(float(inside.sum()) / 255, 1.0):
        return None
    return PhotoTeeth(texture, alpha, (rest[fm.LIPS_UPPER_INNER[5]] - (x0, y0)).astype(np.float32))


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
    photo: np.ndarray | None = None        # (h, w, 3) uint8 the photo's own teeth placed in the box ...
    photo_alpha: np.ndarray | None = None  # (h, w) uint8 ... and where they show (PhotoTeeth)

    @property
    def shape(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return y1 - y0, x1 - x0


def mouth_geometry(scene: Scene, points: np.ndarray, frame: np.ndarray, roi_shape: tuple[int, ...],
                   teeth: PhotoTeeth | None = None) -> MouthGeometry | None:
    """The opening below what the portrait's own parted lips show (`mouth_top`, which stays with
    the upper jaw) down to the lower lip, for control points `points` in ROI pixels; None where the
    lips are together (the rig's rest: `Rig.seal` closes a photo's parted lips). `teeth`: the
    photo's own (`photo_teeth`), drawn instead of the upper row where they show."""
    top, lower = points[scene.rig.mouth_top], points[list(fm.LIPS_LOWER_INNER)]
    across = points[fm.LIPS_UPPER_INNER[-1]] - points[fm.LIPS_UPPER_INNER[0]]
    down = np.array([-across[1], across[0]]) / max(float(np.linalg.norm(across)), 1e-6)
    # signed: lips pressed a pixel over each other at rest are closed, not open by that pixel
    opening = float(((lower - top) @ down)[3:8].max())
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
    upper_teeth = photo = photo_alpha = None
    if teeth is not None:
        # hung from the upper lip's middle, at this head distance
        scale = float(head_scale(scene.rig, frame))
        shift = upper[5] - off - scale * teeth.anchor
        to_box = np.float32([[scale, 0, shift[0]], [0, scale, shift[1]]])
        photo = cv2.warpAffine(teeth.texture, to_box, shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        photo_alpha = np.round(255 * cv2.warpAffine(teeth.alpha, to_box, shape[::-1], flags=cv2.INTER_LINEAR,
                                                    borderMode=cv2.BORDER_CONSTANT)).astype(np.uint8)
    elif float(np.median(np.linalg.norm(top - upper, axis=1))) < 0.5 * tooth_h:
        # incisors longest in the middle, the row shortening toward the canines (a band of even
        # height read as a mouth guard)
        row = top[2:-2]
        across = np.linspace(-1.0, 1.0, len(row))
        length = UPPER_TEETH * width * np.sqrt(1.0 - 0.75 * across ** 2)
        upper_teeth = np.concatenate([row, (row + np.c_[np.zeros(len(row)), length])[::-1]]) - off
    lower_teeth = np.concatenate([lower[3:-3], (lower[3:-3] - (0, 0.6 * tooth_h))[::-1]]) - off
    return MouthGeometry(box, polygon - off, upper_teeth, lower_teeth, tongue, width, feather,
                         min(1.0, opening / 2.0), photo, photo_alpha)
