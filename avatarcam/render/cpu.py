"""The CPU renderer: numpy and OpenCV, one motion frame in, one RGB frame out.

Per frame: move the control points (rig), spread their motion over the moving region with
the scene's barycentric weights, invert that forward field by fixed-point iteration (so every
output pixel knows where to sample), warp the portrait and its matte over what lies behind it
(the photograph where the picture barely moves, the background plate where it moves away), then
draw the eyes (iris moved for gaze, clipped by the lids) and the mouth interior (cavity, teeth,
tongue) as their own layers.
"""

from __future__ import annotations

import cv2
import numpy as np

from .eyes import eye_geometry, lid_masks, lid_skin, skin_closeness
from .masks import coverage
from .mouth import CAVITY_SHADOW, TONGUE_SHADOW, mouth_geometry
from .scene import Scene
from .warp import (EXACT_AFTER, INVERSE_ITERATIONS, fill_from_neighbours, solve_exactly, solve_folds, still_ramp,
                   unmoved)


class CpuRenderer:
    def __init__(self, scene: Scene):
        self.scene = scene
        x0, y0, x1, y1 = scene.roi
        gh, gw, g = *scene.grid_shape, scene.grid
        gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        self._grid_xy = np.stack([gx * g + (g - 1) / 2, gy * g + (g - 1) / 2], -1)  # in ROI pixels
        py, px = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float32)
        self._pix = np.stack([px, py], -1)
        # Four channels throughout: OpenCV's 4-channel paths are several times faster than its
        # 3-channel ones. The person is premultiplied by its matte (the fourth channel), so one
        # remap moves picture and alpha together and compositing is one multiply and one add.
        matte = scene.matte[y0:y1, x0:x1, None]
        person = np.round(scene.source[y0:y1, x0:x1] * matte).astype(np.uint8)
        self._source = np.ascontiguousarray(np.dstack([person, np.round(matte * 255).astype(np.uint8)]))
        self._plate = cv2.cvtColor(np.ascontiguousarray(scene.plate[y0:y1, x0:x1]), cv2.COLOR_RGB2RGBA)
        self._photo = cv2.cvtColor(np.ascontiguousarray(scene.scene[y0:y1, x0:x1]), cv2.COLOR_RGB2RGBA)
        self._still = still_ramp(scene.size[1])

    @property
    def size(self) -> tuple[int, int]:
        return self.scene.size

    def render_stamped(self, frame: np.ndarray, stamp) -> np.ndarray:
        """`render`, marked by `stamp` (a provenance stage) in place: every frame is a new array."""
        return stamp(self.render(frame), in_place=True)

    def render(self, frame: np.ndarray) -> np.ndarray:
        """One RGB uint8 frame (H, W, 3) showing the motion latent `frame` (absolute values)."""
        s = self.scene
        x0, y0, x1, y1 = s.roi
        points = s.points(frame)
        out = s.scene.copy()
        moved = points - s.rest_points
        if unmoved(s, moved, frame):
            return out
        shift = self._inverse_shift(moved)
        fixed, frac = cv2.convertMaps(self._pix - shift, None, cv2.CV_16SC2)
        warped = cv2.remap(self._source, fixed, frac, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        behind = cv2.cvtColor(cv2.bitwise_not(cv2.extractChannel(warped, 3)), cv2.COLOR_GRAY2RGBA)
        composite = cv2.add(warped, cv2.multiply(self._background(shift), behind, scale=1 / 255))
        roi = out[y0:y1, x0:x1]
        cv2.cvtColor(composite, cv2.COLOR_RGBA2RGB, dst=roi)
        local = points - (x0, y0)
        self._draw_eyes(roi, local, frame, (x0, y0))
        self._draw_mouth(roi, local, frame, (x0, y0))
        return out

    def _background(self, shift: np.ndarray) -> np.ndarray:
        """What lies behind the person (ROI, RGBA): photograph and plate blended by how far the
        warp moves each pixel (`STILL_PX`, `still_ramp`)."""
        to, scale, offset = self._still
        moved = cv2.threshold(cv2.magnitude(shift[..., 0], shift[..., 1]), to, to, cv2.THRESH_TRUNC)[1]
        still = cv2.cvtColor(cv2.convertScaleAbs(moved, alpha=scale, beta=offset), cv2.COLOR_GRAY2RGBA)
        return cv2.add(cv2.multiply(self._photo, still, scale=1 / 255),
                       cv2.multiply(self._plate, cv2.bitwise_not(still), scale=1 / 255))

    def _inverse_shift(self, moved: np.ndarray) -> np.ndarray:
        """How far back each ROI pixel samples from (H, W, 2): it shows the source at its own
        position less this, given the control points' forward motion."""
        s = self.scene
        gh, gw, g = *s.grid_shape, s.grid
        forward = (s.weights @ moved).astype(np.float32).reshape(gh, gw, 2)
        # The source p of target q solves q = p + forward(p): iterate p <- q - forward(p).
        src = last = self._grid_xy - forward
        for _ in range(INVERSE_ITERATIONS - 1):
            uv = (src - (g - 1) / 2) / g
            last, src = src, self._grid_xy - cv2.remap(forward, uv, None, cv2.INTER_LINEAR,
                                                       borderMode=cv2.BORDER_REPLICATE)
        step = cv2.absdiff(src, last)
        cells = np.flatnonzero(step[..., 0] + step[..., 1] > EXACT_AFTER)
        if len(cells):
            affines = s.mesh.inverse_affines(moved)
            targets = self._grid_xy.reshape(-1, 2)
            unsolved = solve_exactly(src.reshape(-1, 2), targets, cells, affines, s.mesh)
            if len(unsolved):
                unsolved = solve_folds(src.reshape(-1, 2), targets, unsolved, affines, s.mesh)
            if len(unsolved):
                fill_from_neighbours(src, unsolved)
        h, w = self._pix.shape[:2]
        return cv2.resize(self._grid_xy - src, (gw * g, gh * g), interpolation=cv2.INTER_LINEAR)[:h, :w]

    def _draw_eyes(self, roi: np.ndarray, points: np.ndarray, frame: np.ndarray, origin: tuple[int, int]) -> None:
        """Per eye: the white a raised lid reveals, the iris (moved for gaze, clipped by the lids),
        and the lid skin and lash line that a closing lid brings down over the eye."""
        s = self.scene
        for eye, (layer, g) in enumerate(zip(s.eyes, eye_geometry(s, points, frame, origin, roi.shape))):
            if g is None:
                continue
            lid = g.lid
            skin, lash, white = s.eye_colours[eye]
            if lid is not None:
                x0, y0, x1, y1 = lid.box
                was_m, now_m, was_wide, cover = (m.astype(np.float32) / 255 for m in lid_masks(lid))
                sub = roi[y0:y1, x0:x1].astype(np.float32)
                revealed = now_m * (1 - was_m)
                sub += revealed[..., None] * (white - sub)
                roi[y0:y1, x0:x1] = np.clip(sub, 0, 255)
            _paste_clipped(roi, layer.texture, layer.alpha, g.iris_centre, g.outline, g.squeeze)
            if lid is not None:
                # The warp stretches the lid skin down over the eye, squeezing the white, iris and
                # lashes into streaks. Cover them with the skin around the eye, spread inward
                # (a normalised blur of what lies outside the open eye, weighted by how near it is to
                # the skin's colour), so the closed lid takes the colour and shading of the lid
                # above and the cheek below, not of lashes, brows or glasses, and the fine
                # texture of the lid's own skin (`lid_skin`): without it, a smooth patch.
                covered = cv2.GaussianBlur(cover * (1 - now_m), (0, 0), max(0.7, lid.rim / 2))  # no seam
                sub = roi[y0:y1, x0:x1].astype(np.float32)
                outside = (1 - was_wide) * np.exp(-np.sum((sub - skin) ** 2, axis=2) * skin_closeness(skin))
                spread = max(1.0, 0.2 * g.width)
                skin_around = cv2.GaussianBlur(sub * outside[..., None], (0, 0), spread)
                skin_around /= np.maximum(cv2.GaussianBlur(outside, (0, 0), spread), 1e-3)[..., None]
                skin_around += lid_skin(s, eye, lid).astype(np.float32)[..., None] - 128  # its texture
                sub += covered[..., None] * (skin_around - sub)
                a = (lid.line.astype(np.float32) / 255) * lid.lash_alpha
                sub += a[..., None] * (lash - sub)
                roi[y0:y1, x0:x1] = np.clip(sub, 0, 255)

    def _draw_mouth(self, roi: np.ndarray, points: np.ndarray, frame: np.ndarray, origin: tuple[int, int]) -> None:
        """The mouth interior where the lips part further than the portrait's own (same pose,
        `mouth_geometry`): a dark cavity, front teeth (the photo's own where it shows them), a tongue."""
        m = mouth_geometry(self.scene, points, frame, roi.shape)
        if m is None:
            return  # lips together as in the portrait: nothing to reveal
        x0, y0, x1, y1 = m.box
        shape = m.shape
        cavity, _, tongue = self.scene.mouth_colours
        alpha = _mask(m.polygon, shape)
        # Depth: the middle of the opening is the back of the mouth, darker than near the lips.
        depth = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.12 * m.width))
        layer = np.empty((*shape, 3), np.float32)
        layer[:] = cavity
        layer *= (1.0 - CAVITY_SHADOW * depth)[..., None]
        layer += (m.tongue.astype(np.float32) / 255 * (1.0 - TONGUE_SHADOW * depth))[..., None] * (tongue - layer)
        # the front teeth sit at the front, out of the depth's shadow
        layer += (m.teeth_alpha.astype(np.float32) / 255)[..., None] * (m.teeth - layer)
        # A slight blur keeps the drawn parts from looking cut out; the opening's edge is feathered
        # so the lips' inner rims fall into the mouth's shadow instead of ending on a cut line.
        layer = cv2.GaussianBlur(layer, (0, 0), max(0.5, 0.01 * m.width))
        alpha = cv2.GaussianBlur(alpha, (0, 0), m.feather) * m.strength
        sub = roi[y0:y1, x0:x1].astype(np.float32)
        roi[y0:y1, x0:x1] = np.clip(sub + alpha[..., None] * (layer - sub), 0, 255)


def _mask(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a polygon."""
    return coverage(polygon, shape).astype(np.float32) / 255


def _fill(layer: np.ndarray, polygon: np.ndarray, colour: np.ndarray) -> None:
    layer += _mask(polygon, layer.shape[:2])[..., None] * (colour - layer)


def _paste_clipped(roi: np.ndarray, texture: np.ndarray, alpha: np.ndarray, centre: np.ndarray,
                   polygon: np.ndarray, squeeze: float = 1.0) -> None:
    """Blend `texture` centred at `centre` into roi, only inside `polygon` (anti-aliased), narrowed
    across to `squeeze` of its width about its centre (an eye turned away is foreshortened)."""
    half = texture.shape[0] // 2
    ix, iy = int(np.floor(centre[0])), int(np.floor(centre[1]))
    fx, fy = float(centre[0] - ix), float(centre[1] - iy)
    # Where each pixel samples: x - fx about the centre, widened by 1 / squeeze (warpAffine works in
    # float on float images: the kernel's ac_eye_open sums the same)
    m = np.float32([[1 / squeeze, 0, half - (fx + half) / squeeze], [0, 1, -fy]])
    size = (texture.shape[1], texture.shape[0])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    tex = cv2.warpAffine(texture.astype(np.float32), m, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(alpha, m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
    x0, y0 = ix - half, iy - half
    h, w = roi.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + size[0], w), min(y0 + size[1], h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    a = a[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] * _mask(polygon - (cx0, cy0), (cy1 - cy0, cx1 - cx0))
    sub = roi[cy0:cy1, cx0:cx1].astype(np.float32)
    sub += a[..., None] * (tex[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] - sub)
    roi[cy0:cy1, cx0:cx1] = np.clip(sub, 0, 255)
