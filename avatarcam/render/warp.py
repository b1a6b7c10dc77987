"""The inverse warp: where each pixel of the moving region samples the portrait from.

The control points' motion, spread over the grid by the scene's barycentric weights, is a forward
field (where each rest pixel goes). The renderers need its inverse: fixed-point iteration first
(CpuRenderer._inverse_shift, the kernel's ac_prepare), then, where that does not settle, the exact
inverse triangle by triangle (`solve_exactly`), the front layer where the mesh folds over itself
(`solve_folds`), and the last open cells filled from their neighbours (`fill_from_neighbours`).
Also what lies behind the moved person (`still_ramp`) and when a frame needs no warp (`unmoved`).
Both renderers use these; the CUDA kernels (kernels/render.h) do the same steps with these constants.
"""

from __future__ import annotations

import numpy as np

from .. import latent
from .scene import Scene, WarpMesh

GAZE = [latent.index("gazeYaw"), latent.index("gazePitch")]  # a frame whose gaze moves is drawn (`unmoved`)
# Steps of the inverse warp's fixed-point iteration (CpuRenderer._inverse_shift). Where a turn
# stretches the picture the iteration converges slowly or oscillates (its error shrinks by the
# forward motion's slope per step); an even count tears holes in the face at far turns, so three
# (docs/decisions.md, "The inverse warp").
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
# turn. All this costs about 1 ms a frame at 512x512.
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
