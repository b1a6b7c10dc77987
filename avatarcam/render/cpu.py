"""The CPU renderer: numpy and OpenCV, one motion frame in, one RGB frame out.

Per frame: move the control points (rig), spread their motion over the moving region with
the scene's barycentric weights, invert that forward field by fixed-point iteration (so every
output pixel knows where to sample), warp the portrait and its matte over what lies behind it
(the photograph where the picture barely moves, the background plate where it moves away), then
draw the eyes (iris moved for gaze, clipped by the lids) and the mouth interior (cavity, teeth,
tongue) as their own layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .. import latent
from . import facemesh as fm
from .rig import EYEBALL_RADIUS, head_scale
from .scene import IRIS_MARGIN, Scene, WarpMesh

GAZE = [latent.index("gazeYaw"), latent.index("gazePitch")]
LID_CHANNELS = np.array([[latent.index(f"{c}{side}") for c in ("eyeBlink", "eyeWide", "eyeSquint")]
                         for side in ("Right", "Left")])  # (eye, channel), eyes as in Scene.eyes
# Steps of the inverse warp's fixed-point iteration (CpuRenderer._inverse_shift). Where a turn
# stretches the picture the iteration converges slowly or oscillates (its error shrinks by the
# forward motion's slope per step): tried 2026-12-03, at +8 degrees of yaw the painting's far
# cheek comes out scalloped after three steps and smooth after four or six, but at +-20 degrees,
# where the stretch passes twice, an even count tears holes in the face that three do not (the
# cartoon, Grace Hopper); solving on a 4x coarser grid first (16 steps, then 2) came 5-10x closer
# to the converged inverse but folded the astronaut's hair into a flap at +-20; Newton's steps
# with the Jacobian at the target cell diverged (at the source, they need a second remap per step).
INVERSE_ITERATIONS = 3
# ... and where the last of those steps still moved a grid cell more than EXACT_AFTER pixels (the
# warp stretches the picture there: a jaw dropped under sealed lips, a raised brow, the near side
# of a turn) the cell is solved exactly, triangle by triangle (`solve_exactly`): from the iteration's
# estimate, JUMPS times, look up the rest triangle under it and map the cell back through that
# triangle's inverse affine; the answer counts when it no longer moves (by SETTLED pixels) and its
# triangle is not beside a fold (`WarpMesh.inverse_affines`). Where the mesh folds (a dropped chin
# over the neck, a turned face's far cheek over its hair), the layer nearest the viewer shows
# (`solve_folds`); the few cells left take their solved neighbours' values, FILL_PASSES rings deep
# (`fill_from_neighbours`). Where the iteration oscillated, it smeared the stretched skin into
# streaks (the lower lip pulled into a band over the chin) and dragged hair and background at a
# turn. All this costs about 1 ms a frame at 512x512. Tried, 2026-12-04: EXACT_AFTER 0.5 (0.15 ms
# more, no visible change); 4 jumps (a band of open cells at the near side of a 20 degree turn);
# for the open cells, the iteration's own estimate blended in (the streaks came back) or a smoothing
# pass (a stripe of whatever lay between a fold's two sides), before the front layer was sought.
EXACT_AFTER = 1.0
JUMPS = 6
SETTLED = 0.1
FILL_PASSES = 4
FOLD_CHUNK = 1024
COVER_SLACK = 1e-4  # barycentric weight a point on a triangle's edge may fall short by
# Behind the warped person lies the photograph where the warp moves the picture less than
# STILL_PX[0] (per 512 output rows), the background plate from STILL_PX[1] on, a blend between:
# the plate's fill reaches past the matte's rim, so at rest it would replace whatever the matte
# missed (a collar, a shoulder) with a smear, while a rim moved a pixel or two leaves no ghost.
STILL_PX = (1.0, 4.0)
UPPER_TEETH = 0.1  # how far the upper incisors show below the upper lip, in mouth widths
# The teeth's light against the eyes' whites: the lower ones stand in the upper lip's shadow.
UPPER_TEETH_SHADE, LOWER_TEETH_SHADE = 0.9, 0.85
_SHIFT = 4  # sub-pixel bits for anti-aliased polygon drawing
# A closed eye's lash line: its depth in the middle, in eye widths, and how fast it thins toward
# the corners (the power of sin along the lid: under 1, it keeps its depth over most of the lid).
LASH_DEPTH, LASH_TAPER = 0.035, 0.6
LID_SKIN_FROM = 0.06  # a shut lid's texture comes from this far above the lashes, in eye widths
# A closing lid also covers the open eye's lashes and the shadow under its lid, which lie above
# the landmarks' lid line and stayed behind as a dark ghost of the open eye: a crescent over the
# still upper lid this deep in eye widths at its middle, less the band its lashes take above the
# lid as it comes down (as deep, thinning to none as it shuts).
LASH_BAND = 0.15
# ... and below the still lower lid, whose lashes and edge, and a drawn eye's white beyond its
# landmarks, the shut lid covers: this deep in eye widths when shut, as closure ** 6 on the way
# (a lid half down leaves the lower lid as it is).
LOWER_BAND = 0.06
# The skin spread over a closing lid is a blur of the picture around the eye, weighted by how
# near each pixel is to the lid's skin colour (a Gaussian, this wide in shares of the colour's
# length), so lashes, brows, a glasses frame or an iris left outside the eye do not darken it.
SKIN_SIGMA = 0.15


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
        `mouth_geometry`): a dark cavity, front teeth, a tongue."""
        m = mouth_geometry(self.scene, points, frame, roi.shape)
        if m is None:
            return  # lips together as in the portrait: nothing to reveal
        x0, y0, x1, y1 = m.box
        shape = m.shape
        cavity, teeth, tongue = self.scene.mouth_colours
        alpha = _mask(m.polygon, shape)
        # Depth: the middle of the opening is the back of the mouth, darker than near the lips.
        depth = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.12 * m.width))
        layer = np.empty((*shape, 3), np.float32)
        layer[:] = cavity
        layer *= (1.0 - 0.4 * depth)[..., None]
        layer += (m.tongue.astype(np.float32) / 255 * (1.0 - 0.3 * depth))[..., None] * (tongue - layer)
        # the front teeth sit at the front, out of the depth's shadow
        if m.upper_teeth is not None:
            _fill(layer, m.upper_teeth, teeth * UPPER_TEETH_SHADE)
        _fill(layer, m.lower_teeth, teeth * LOWER_TEETH_SHADE)
        # A slight blur keeps the drawn parts from looking cut out; the opening's edge is feathered
        # so the lips' inner rims fall into the mouth's shadow instead of ending on a cut line.
        layer = cv2.GaussianBlur(layer, (0, 0), max(0.5, 0.01 * m.width))
        alpha = cv2.GaussianBlur(alpha, (0, 0), m.feather) * m.strength
        sub = roi[y0:y1, x0:x1].astype(np.float32)
        roi[y0:y1, x0:x1] = np.clip(sub + alpha[..., None] * (layer - sub), 0, 255)

@dataclass
class LidGeometry:
    """Where an eye's lids moved from the portrait's: their box (ROI pixels) and, in the box's
    coordinates, the open eye's outline, the outline now and the lash line along the upper lid."""

    box: tuple[int, int, int, int]
    was: np.ndarray
    now: np.ndarray
    rim: int            # odd; the open eye's outline dilated by it: its lashes and lid edge, squeezed too
    line: np.ndarray    # uint8 coverage of the lash line
    lash_alpha: float   # how dark the lash line is drawn: more as the lid travels further
    iris_top: np.ndarray | None = None  # a closing lid's: the open eye's iris x, y, radius (see lid_masks)
    bands: tuple[np.ndarray, ...] = ()  # a closing lid's: about the open eye, what it covers too (see lid_masks)
    kept: np.ndarray | None = None  # ... and the band above the lid now, where its lashes are left

    @property
    def shape(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return y1 - y0, x1 - x0


@dataclass
class EyeGeometry:
    width: float
    outline: np.ndarray      # the lids' outline now (ROI pixels): it clips the iris
    iris_centre: np.ndarray  # ROI pixels, moved over the eyeball for gaze
    lid: LidGeometry | None  # None where the lids are where the portrait has them
    squeeze: float           # the iris's width as a share of its width in the portrait: a turned eye narrows


def solve_exactly(src: np.ndarray, targets: np.ndarray, cells: np.ndarray, affines: np.ndarray,
                  mesh: WarpMesh) -> np.ndarray:
    """Replace `src[cells]` (ROI pixels, an estimate of where each target samples from) by the exact
    inverse of the piecewise-affine warp where it is found (see EXACT_AFTER); returns the cells where
    it is not. `affines` is `mesh.inverse_affines`."""
    h, w = mesh.at.shape
    at, maps = mesh.at.ravel(), affines.T.copy()
    qx, qy = targets[cells, 0], targets[cells, 1]
    px, py = src[cells, 0], src[cells, 1]
    for _ in range(JUMPS):
        t = np.take(at, np.clip(py, 0, h - 1).astype(np.int32) * w + np.clip(px, 0, w - 1).astype(np.int32))
        was_x, was_y = px, py
        px = np.take(maps[0], t) * qx + np.take(maps[1], t) * qy + np.take(maps[2], t)
        py = np.take(maps[3], t) * qx + np.take(maps[4], t) * qy + np.take(maps[5], t)
    found = (np.abs(px - was_x) + np.abs(py - was_y) <= SETTLED) & (np.take(maps[6], t) == 0)
    src[cells[found], 0] = px[found]
    src[cells[found], 1] = py[found]
    return cells[~found]


def fold_layers(affines: np.ndarray) -> np.ndarray:
    """The triangles that may show where the mesh folds: beside a fold, not turned over themselves
    (`WarpMesh.inverse_affines`'s flags), in index order."""
    return np.flatnonzero((affines[:, 6] > 0) & (affines[:, 7] == 0)).astype(np.int32)


def solve_folds(src: np.ndarray, targets: np.ndarray, cells: np.ndarray, affines: np.ndarray,
                mesh: WarpMesh) -> np.ndarray:
    """Where the mesh folds over itself, the layer nearest the viewer shows: each of `cells` takes the
    triangle beside a fold (and not itself turned over) that covers it with the greatest
    `WarpMesh.depth` (the face before the rings behind it), if any, and samples through its inverse
    map. Returns the cells none covers. FOLD_CHUNK cells at a time bound the memory."""
    candidates = fold_layers(affines)
    if not len(candidates):
        return cells
    a, m, depth = affines[candidates].T, mesh.to_corners[candidates].T, mesh.depth[candidates]
    open_cells = []
    for chunk in np.array_split(cells, -(-len(cells) // FOLD_CHUNK)):
        qx, qy = targets[chunk, 0][:, None], targets[chunk, 1][:, None]
        px = a[0] * qx + a[1] * qy + a[2]
        py = a[3] * qx + a[4] * qy + a[5]
        dx, dy = px - m[4], py - m[5]
        b0, b1 = m[0] * dx + m[1] * dy, m[2] * dx + m[3] * dy
        inside = (b0 >= -COVER_SLACK) & (b1 >= -COVER_SLACK) & (1 - b0 - b1 >= -COVER_SLACK)
        best = np.argmax(np.where(inside, depth, -1.0), axis=1)
        row = np.arange(len(chunk))
        found = inside[row, best]
        src[chunk[found], 0] = px[row, best][found]
        src[chunk[found], 1] = py[row, best][found]
        open_cells.append(chunk[~found])
    return np.concatenate(open_cells)


def fill_from_neighbours(src: np.ndarray, cells: np.ndarray) -> None:
    """Give the grid cells `cells` of `src` (gh, gw, 2) values from their solved neighbours, nearest
    first: FILL_PASSES times, each cell still open takes the mean of the solved ones among its 8
    neighbours (coordinates clamped to the grid), and counts as solved from the next pass on. A cell
    still open after that keeps its own. (One wider mean instead averaged both sides of a fold,
    a stripe of whatever lies between them.)"""
    gh, gw = src.shape[:2]
    flat = src.reshape(-1, 2)
    solved = np.ones(gh * gw, bool)
    solved[cells] = False
    reach = np.arange(-1, 2)
    for _ in range(FILL_PASSES):
        ys, xs = np.divmod(cells, gw)
        index = (np.clip(ys[:, None, None] + reach[:, None], 0, gh - 1) * gw
                 + np.clip(xs[:, None, None] + reach, 0, gw - 1)).reshape(len(cells), 9)
        use = solved[index]
        count = use.sum(axis=1)
        some = count > 0
        weight = use[some].astype(np.float32)
        near = index[some]
        filled = np.stack([(flat[:, axis][near] * weight).sum(axis=1) for axis in range(2)], 1) / count[some, None]
        flat[cells[some]] = filled
        solved[cells[some]] = True
        cells = cells[~some]
        if not len(cells):
            break


def still_ramp(height: int) -> tuple[float, float, float]:
    """The photograph's share behind the person, 0..255, as round(|min(d, to) * scale + offset|)
    of a pixel's displacement d (OpenCV's convertScaleAbs): (to, scale, offset) for frames
    `height` rows high."""
    start, to = (px * height / 512 for px in STILL_PX)
    scale = -255.0 / (to - start)
    return to, scale, -scale * to


def unmoved(scene: Scene, moved: np.ndarray, frame: np.ndarray) -> bool:
    """True when a frame shows the portrait as it is: no control point moved by `moved` (pixels)
    noticeably and the gaze is the portrait's."""
    return not np.any(np.abs(moved) > 0.05) and not np.any(frame[GAZE] != scene.rig.rest[GAZE])


def eye_geometry(scene: Scene, points: np.ndarray, frame: np.ndarray, origin: tuple[int, int],
                 roi_shape: tuple[int, ...]) -> list[EyeGeometry | None]:
    """Per eye (as in `scene.eyes`), for control points `points` in ROI pixels (`origin` the ROI's
    corner): the lids' outline, the iris's place and what the lids' own motion uncovers; None for
    an eye too small to draw."""
    rig = scene.rig
    # Gaze moves the iris over the eyeball: radius in pixels from the eye width.
    d_yaw = np.sin(frame[GAZE[0]]) - np.sin(rig.rest[GAZE[0]])
    d_pitch = np.sin(frame[GAZE[1]]) - np.sin(rig.rest[GAZE[1]])
    across = points[fm.LEFT_EYE_OUTER] - points[fm.RIGHT_EYE_OUTER]  # toward image right, as gazeYaw
    ex = across / max(float(np.linalg.norm(across)), 1e-6)
    ey = np.array([-ex[1], ex[0]])  # down the face, as gazePitch
    lids = frame[LID_CHANNELS] - rig.rest[LID_CHANNELS]  # (eye, channel)
    scale = float(head_scale(rig, frame))
    if np.abs(lids).max() > 0.02:
        still = frame.copy()
        still[LID_CHANNELS] = rig.rest[LID_CHANNELS]
        still_points = scene.points(still) - origin
    out: list[EyeGeometry | None] = []
    for eye, (iris, (upper, lower)) in enumerate(zip(
            (fm.RIGHT_IRIS, fm.LEFT_IRIS),
            ((fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER), (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER)))):
        width = float(np.linalg.norm(points[upper[-1]] - points[upper[0]]))
        if width < 1:
            out.append(None)
            continue
        now = np.concatenate([points[list(upper)], points[list(lower[::-1])]])
        lid = None
        if np.abs(lids[eye]).max() > 0.02:
            was = np.concatenate([still_points[list(upper)], still_points[list(lower[::-1])]])
            # only a lid coming down needs a drawn lash line (a raised one carries its own up) and
            # sweeps over the iris's top (see lid_masks)
            lid_shift = float(max(((points[list(upper)] - still_points[list(upper)]) @ ey).max(), 0.0))
            iris_top = None
            if lid_shift:
                ring = still_points[list(iris)]
                iris_top = np.append(ring[0], IRIS_MARGIN * np.linalg.norm(ring[1:] - ring[0], axis=1).mean())
            reach = [was, now] + ([iris_top[None, :2] - (0.0, iris_top[2])] if iris_top is not None else [])
            bands, kept = (), None
            if lid_shift:
                still_upper = still_points[list(upper)]
                closure = min(1.0, lid_shift / max(float(((still_points[list(lower)] - still_upper) @ ey).max()), 1e-6))
                bands = (crescent(still_upper, -ey, LASH_BAND * width),
                         crescent(still_points[list(lower)], ey, LOWER_BAND * width * closure ** 6))
                kept = crescent(points[list(upper)], -ey, LASH_BAND * width * (1.0 - closure))
                reach += list(bands)
            box = polygon_box(np.concatenate(reach), roi_shape, margin=3)
            if box is not None:
                off = np.array(box[:2], np.float32)
                line = lash_line(points[list(upper)] - off, ey, width, (box[3] - box[1], box[2] - box[0]))
                if iris_top is not None:
                    iris_top[:2] -= off
                lid = LidGeometry(box, was - off, now - off, 2 * round(0.03 * width) + 1, line,
                                  0.75 * min(1.0, lid_shift / 3.0), iris_top, tuple(b - off for b in bands),
                                  None if kept is None else kept - off)
        centre = points[iris[0]] + EYEBALL_RADIUS * width * (d_yaw * ex + d_pitch * ey)
        # foreshortened as its eye: the corners' distance against the portrait's at this head size
        rest_width = float(np.linalg.norm(scene.rest_points[upper[-1]] - scene.rest_points[upper[0]])) * scale
        squeeze = float(np.clip(width / max(rest_width, 1e-6), 0.2, 1.0))
        out.append(EyeGeometry(width, now, centre, lid, squeeze))
    return out


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
    lips part no further than in the portrait."""
    top, lower = points[scene.rig.mouth_top], points[list(fm.LIPS_LOWER_INNER)]
    gap = np.linalg.norm(lower - top, axis=1)
    # the portrait's own parting at this head distance (the pose's foreshortening of a gap of a
    # few pixels is far below the threshold: not worth a second deformation of the rig)
    rest = scene.rest_points
    still_gap = np.linalg.norm(rest[list(fm.LIPS_LOWER_INNER)] - rest[scene.rig.mouth_top], axis=1) * \
        float(head_scale(scene.rig, frame))
    opening = float((gap - still_gap)[3:8].max())
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
                0, 180, 360, 255, -1, cv2.LINE_AA, _SHIFT)
    body = np.array([[-half[0], 0.0], [half[0], 0.0], [half[0], 0.2 * width], [-half[0], 0.2 * width]]) + centre
    cv2.fillConvexPoly(tongue, np.round(body * 16).astype(np.int32), 255, cv2.LINE_AA, _SHIFT)
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


def polygon_box(polygon: np.ndarray, shape: tuple[int, ...], margin: int) -> tuple[int, int, int, int] | None:
    """Integer bounding box of a polygon plus a margin, clipped to an image; None if empty."""
    x0, y0 = np.floor(polygon.min(0)).astype(int) - margin
    x1, y1 = np.ceil(polygon.max(0)).astype(int) + margin + 1
    x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), shape[1]), min(int(y1), shape[0])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def coverage(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage (uint8 0..255) of a polygon."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(polygon * 16).astype(np.int32)], 255, cv2.LINE_AA, _SHIFT)
    return m


def lid_masks(lid: LidGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """uint8 masks in the lid's box: the open eye's outline, the outline now, the open one widened
    by the rim (its lashes and lid edge), and the part of that a closing lid covers with skin,
    near where it closed over the open eye. A lid that only rises (eyeWide) covers nothing: covering
    the whole rim smeared the lower lid's edge, which had not moved."""
    was, now = coverage(lid.was, lid.shape), coverage(lid.now, lid.shape)
    swept = was
    if lid.iris_top is not None:
        # Where the landmarks put the upper lid below the one in the photo (behind glasses, under
        # heavy lids), the iris's top shows above it, in what the warp takes for lid skin, and a
        # closing lid drags it down as a dark smudge: the closing lid covers the iris's upper half too.
        disc = np.zeros_like(was)
        (cx, cy), r = lid.iris_top[:2], lid.iris_top[2]
        cv2.circle(disc, (int(round(cx * 16)), int(round(cy * 16))), int(round(r * 16)), 255, -1, cv2.LINE_AA, _SHIFT)
        disc[int(np.ceil(cy)):] = 0
        swept = np.maximum(was, disc)
    # The lashes and the shadow under the upper lid lie above its landmarks, and a drawn eye's
    # white may show below the lower lid's: the bands about the open eye are covered too, less
    # the band the lashes still take above the lid as it comes down.
    for band in lid.bands:
        swept = np.maximum(swept, coverage(band, lid.shape))
    kept = now if lid.kept is None else np.maximum(now, coverage(lid.kept, lid.shape))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (lid.rim, lid.rim))
    wide = cv2.dilate(swept, kernel)
    closed = ((swept.astype(np.int32) * (255 - kept.astype(np.int32))) > 128 * 255).astype(np.uint8) * 255
    return was, now, wide, np.minimum(wide, cv2.dilate(closed, kernel))


def lid_skin(scene: Scene, eye: int, lid: LidGeometry) -> np.ndarray:
    """uint8 in the lid's box: the fine texture a shut lid carries (`scene.skin_detail`, 128 for
    none). Each pixel takes the texture of the lid skin above the open eye (from LID_SKIN_FROM of
    its width above the lashes) as far above it as the pixel lies from the lash line, folded back
    and forth within the lower half of the skin below the brow, whose hairs would come down too;
    the eye's still outline says where it is, so the texture moves with the head."""
    upper, brow = ((fm.RIGHT_EYE_UPPER, fm.RIGHT_BROW), (fm.LEFT_EYE_UPPER, fm.LEFT_BROW))[eye]
    rest = scene.rest_points[list(upper)]
    rest = rest[np.argsort(rest[:, 0])]
    skin = max(2.0, 0.5 * float(rest[:, 1].mean() - scene.rest_points[list(brow), 1].mean()) - lid.rim)
    # where each pixel of the box lies on the face at rest: the still upper lid onto the rest one
    to_rest = rest.mean(axis=0) - lid.was[:len(upper)].mean(axis=0)
    ys, xs = np.mgrid[0:lid.shape[0], 0:lid.shape[1]].astype(np.float32)
    xs += np.float32(to_rest[0])
    ys += np.float32(to_rest[1])
    # a smooth curve through the lid (its points joined straight made the folded rows polygons)
    lash_y = np.polyval(np.polyfit(rest[:, 0], rest[:, 1], 3), np.clip(xs, rest[0, 0], rest[-1, 0])).astype(np.float32)
    fold = skin - np.abs(np.abs(ys - lash_y) % (2 * skin) - skin)
    above = lid.rim + LID_SKIN_FROM * float(np.ptp(rest[:, 0]))
    return cv2.remap(scene.skin_detail, xs, lash_y - above - fold, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=128)


def lash_line(lid: np.ndarray, down: np.ndarray, width: float, shape: tuple[int, int]) -> np.ndarray:
    """uint8 coverage (in a box of `shape`) of a closing lid's lash line: a crescent hanging from
    the upper lid's points `lid` (corner to corner, box pixels) toward `down`, LASH_DEPTH of the
    eye's `width` deep in the middle and tapering to nothing at the corners, as lashes seen from
    the front. (A line of even width, 5% of the eye, read as drawn on with a marker.)"""
    return coverage(crescent(lid, down, LASH_DEPTH * width), shape)


def skin_closeness(skin: np.ndarray) -> float:
    """k in exp(-k |colour - skin|^2): a pixel's weight in the skin spread over a closing lid."""
    return 0.5 / (SKIN_SIGMA ** 2 * max(float(np.sum(np.square(skin))), 1.0))


def crescent(lid: np.ndarray, toward: np.ndarray, depth: float) -> np.ndarray:
    """The polygon of a crescent along a lid's points (corner to corner) toward `toward`: `depth`
    deep in the middle, thinning to nothing at the corners as sin ** LASH_TAPER along the lid."""
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(lid, axis=0), axis=1))])
    arch = np.clip(np.sin(np.pi * along / max(float(along[-1]), 1e-6)), 0.0, 1.0)  # 0 at both corners
    return np.concatenate([lid, (lid + (depth * arch ** LASH_TAPER)[:, None] * toward)[::-1]])


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
