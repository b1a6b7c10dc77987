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
from .rig import head_scale
from .scene import Scene

UPPER_TEETH = 0.1  # how far the upper incisors show below the upper lip, in mouth widths
LOWER_TEETH = 0.045  # ... and the lower ones above the lower lip, once the mouth is open wide
LOWER_TEETH_FROM = (0.1, 0.3)  # the opening, in mouth widths, over which the lower row rises into view
# The teeth's light against the eyes' whites: the lower ones stand in the upper lip's shadow.
UPPER_TEETH_SHADE, LOWER_TEETH_SHADE = 0.9, 0.85
# Drawn teeth, front to canine (a row's widths, relative): each darker toward the lip it grows from
# (TOOTH_ROOT_SHADE at the lip), the row darker toward the cheeks (TOOTH_SIDE_SHADE at the canines),
# a dark gap between neighbours (TOOTH_GAP of a mouth width, TOOTH_GAP_SHADE at its middle) and
# their biting edges rounded at the gaps (TOOTH_ROUNDING of a tooth's length). A row of one colour
# read as a white slab.
TOOTH_WIDTHS = (0.75, 0.85, 1.0, 1.0, 0.85, 0.75)
TOOTH_ROOT_SHADE, TOOTH_SIDE_SHADE = 0.72, 0.7
TOOTH_GAP, TOOTH_GAP_SHADE = 0.012, 0.5
TOOTH_ROUNDING = 0.25
# The depth shadow (CpuRenderer._draw_mouth): toward the back of the opening the cavity darkens by
# up to CAVITY_SHADOW of its colour, the tongue's cover thins by up to TONGUE_SHADOW.
CAVITY_SHADOW, TONGUE_SHADOW = 0.4, 0.3


@dataclass
class MouthGeometry:
    """Where the mouth interior goes in a frame, in a box of the ROI (both renderers draw from it)."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in ROI pixels
    polygon: np.ndarray             # the opening, box pixels
    teeth: np.ndarray               # (h, w, 3) uint8 the teeth (the photo's own upper row where it has one) ...
    teeth_alpha: np.ndarray         # (h, w) uint8 ... and where they cover the mouth behind them
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
    """The opening between the upper jaw (`mouth_top`, on the lower lip's edge at rest) and the lower
    lip, for control points `points` in ROI pixels; None where the lips are together, as at the
    rig's rest (which closes a photo's parted lips: `Rig.photo_points`). The photo's
    own upper teeth (`Scene.teeth`) are drawn instead of the upper row where it shows them."""
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
    # Front teeth only (the side teeth are in the cheeks' shadow; a full row reads as a smile): the
    # upper ones hang from the upper lip (the photo's own where it shows them), the lower ones rise
    # from the lower lip as the mouth opens wide.
    colour = scene.mouth_colours[1]
    picture = np.zeros((*shape, 3), np.float32)
    cover = np.zeros(shape, np.float32)
    rise = float(np.clip((opening / width - LOWER_TEETH_FROM[0]) / (LOWER_TEETH_FROM[1] - LOWER_TEETH_FROM[0]), 0, 1))
    if rise > 0:
        _tooth_row(picture, cover, lower[3:-3] - off, -LOWER_TEETH * width * rise, colour * LOWER_TEETH_SHADE, width)
    teeth = scene.teeth
    if teeth is not None:
        # hung from the upper lip's middle, at this head distance
        scale = float(head_scale(scene.rig, frame))
        shift = upper[5] - off - scale * teeth.anchor
        to_box = np.float32([[scale, 0, shift[0]], [0, scale, shift[1]]])
        photo = cv2.warpAffine(teeth.texture, to_box, shape[::-1], flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        a = cv2.warpAffine(teeth.alpha, to_box, shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        picture += a[..., None] * (photo - picture)
        cover += a * (1 - cover)
    else:
        _tooth_row(picture, cover, top[2:-2] - off, UPPER_TEETH * width, colour * UPPER_TEETH_SHADE, width)
    return MouthGeometry(box, polygon - off, np.clip(np.round(picture), 0, 255).astype(np.uint8),
                         np.round(255 * cover).astype(np.uint8), tongue, width, feather, min(1.0, opening / 2.0))


def _tooth_row(picture: np.ndarray, cover: np.ndarray, row: np.ndarray, length: float, colour: np.ndarray,
               width: float) -> None:
    """Draw a row of front teeth over `picture` and `cover` (box pixels): from the lip edge `row`
    (its points, corner to corner) `length` pixels down (up where negative), longest in the middle
    and shortening toward the canines, each tooth shaded (TOOTH_WIDTHS and the shades above)."""
    row = row[np.argsort(row[:, 0])]
    h, w = cover.shape
    # only the columns under the row and the rows it reaches
    x0, x1 = max(int(np.floor(row[0, 0])), 0), min(int(np.ceil(row[-1, 0])) + 1, w)
    reach = np.r_[row[:, 1], row[:, 1] + length]
    y0, y1 = max(int(np.floor(reach.min())) - 1, 0), min(int(np.ceil(reach.max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    across = (xs - row[0, 0]) / max(float(row[-1, 0] - row[0, 0]), 1e-6) * 2 - 1  # -1 .. 1 over the row
    inside_x = np.clip(np.minimum(xs - row[0, 0], row[-1, 0] - xs) + 0.5, 0, 1)  # anti-aliased row ends
    edges = np.cumsum((0.0,) + TOOTH_WIDTHS) / sum(TOOTH_WIDTHS) * 2 - 1
    half_span = 0.5 * float(row[-1, 0] - row[0, 0])
    to_gap = np.abs(across[:, None] - edges[None, 1:-1]).min(axis=1) * half_span  # px to the nearest gap
    tooth = half_span * np.diff(edges).min() / 2
    rounded = 1 - TOOTH_ROUNDING * np.clip(1 - to_gap / max(tooth, 1e-6), 0, 1) ** 2
    size = abs(length) * np.sqrt(np.clip(1 - 0.75 * across ** 2, 0, 1)) * rounded
    lip = np.interp(xs, row[:, 0], row[:, 1])
    depth = (np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - lip) * np.sign(length)  # px from the lip in
    alpha = np.clip(np.minimum(depth + 0.5, size - depth + 0.5), 0, 1) * inside_x
    along = np.clip(depth / np.maximum(size, 1e-6), 0, 1)
    across_shade = (1 - (1 - TOOTH_SIDE_SHADE) * across ** 2) * \
        (1 - (1 - TOOTH_GAP_SHADE) * np.exp(-(to_gap / max(0.5, TOOTH_GAP * width)) ** 2))
    shade = (TOOTH_ROOT_SHADE + (1 - TOOTH_ROOT_SHADE) * along * along * (3 - 2 * along)) * across_shade
    box = picture[y0:y1, x0:x1]
    box += alpha[..., None] * (shade[..., None] * colour - box)
    cover[y0:y1, x0:x1] += alpha * (1 - cover[y0:y1, x0:x1])
