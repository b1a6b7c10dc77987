"""A portrait framed into a camera frame: the static layers and warp tables every renderer shares.

Built once per (profile, output size). The portrait is scaled so the face sits where a webcam
would put it, the rest of the 16:9 (or any) frame is filled with a blurred extension of the
background plate (never black bars), and the moving region (the ROI) gets a fixed
triangulation whose barycentric weights let a renderer turn control-point motion into a
dense displacement field with one sparse product (and whose triangles let it invert that field
exactly where it stretches the picture).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import scipy.sparse
from scipy.spatial import Delaunay

from . import facemesh as fm
from .plate import pyramid_fill
from .rig import Rig, deform

FACE_HEIGHT = 0.40     # face (brow to chin landmarks) height as a share of the frame height
FACE_CENTRE_Y = 0.45   # vertical position of the face centre in the frame
BACKDROP_BLUR = 0.02   # blur (sigma, share of the frame height) of the backdrop beyond the portrait
IRIS_MARGIN = 1.3     # the landmarker's iris radius runs small on big irises: take a margin
LID_EDGE = 0.05       # of an eye's width: the lids' edges the landmarks' eye outline takes in
DETAIL_SCALE = 0.06   # the skin's fine texture is what a blur over this share of an eye's width takes out
DETAIL_LIMIT = 8.0    # grey levels: that texture softly held within them
FOLD_AREA = 2.0       # px^2 (twice a triangle's area): a triangle turned over by less is a collapsed sliver
GRID_PER_FACE = 100    # the displacement field is computed on a grid this fine across the face


@dataclass
class EyeLayer:
    """One eye's iris texture (occluded parts filled in) with its soft alpha."""

    texture: np.ndarray  # (h, w, 3) uint8, centred on the iris
    alpha: np.ndarray    # (h, w) float32 soft disc


@dataclass
class WarpMesh:
    """The moving region's triangulation, in ROI pixels: where the warp stretches the picture so much
    that inverting its field by iteration does not settle, the renderer solves it triangle by
    triangle instead (the warp is affine on each)."""

    skin: np.ndarray         # (S,) the control point of each of the first S vertices; the rest are the ROI's still border
    rest: np.ndarray         # (V, 2) float32 vertices at rest (the lips parted, as the weights see them)
    triangles: np.ndarray    # (T, 3) int32 vertex indices
    orientation: np.ndarray  # (T,) int8 sign of each triangle's area at rest
    at: np.ndarray           # (h, w) int32 the triangle under each ROI pixel's centre at rest
    to_corners: np.ndarray   # (T, 6) float32 a rest point's barycentric weights of corners 0 and 1
                             # (corner 2's is the rest): [[m0 m1] [m2 m3]] (p - (m4, m5))
    depth: np.ndarray        # (T,) float32 how near the viewer a triangle lies where the mesh folds: the
                             # mean of its corners' Rig.follow (the face 1, the rings behind it less)

    @classmethod
    def of(cls, tri: Delaunay, skin: np.ndarray, follow: np.ndarray, roi: tuple[int, int, int, int]) -> WarpMesh:
        """The mesh of a triangulation in output pixels whose first len(skin) vertices are those control
        points; `follow` is each vertex's Rig.follow (0 on the still border); `roi` the region it covers."""
        x0, y0, x1, y1 = roi
        rest = (tri.points - (x0, y0)).astype(np.float32)
        corners = rest[tri.simplices]
        e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
        # The triangle under each ROI pixel's centre at rest, where the exact inverse starts its search.
        py, px = np.mgrid[y0:y1, x0:x1] + 0.5
        at = tri.find_simplex(np.stack([px.ravel(), py.ravel()], -1)).reshape(y1 - y0, x1 - x0)
        return cls(skin=skin, rest=rest, triangles=tri.simplices.astype(np.int32),
                   orientation=np.sign(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).astype(np.int8),
                   at=np.maximum(at, 0).astype(np.int32),
                   to_corners=np.concatenate([tri.transform[:, :2].reshape(-1, 4), tri.transform[:, 2] - (x0, y0)],
                                             axis=1).astype(np.float32),
                   depth=np.asarray(follow, np.float32)[tri.simplices].mean(axis=1))

    def inverse_affines(self, moved: np.ndarray) -> np.ndarray:
        """(T, 8) float32 per triangle, for control-point motion `moved` (M, 2): the affine map from
        where the motion puts the triangle back to its rest place, p = [[a0 a1] [a3 a4]] q + (a2, a5);
        then 1 where the motion turned the triangle over or one beside it (a fold, where the map does
        not say which layer shows), else 0; then 1 where it turned this one over."""
        moved_at = self.rest.copy()
        moved_at[:len(self.skin)] += moved[self.skin]
        d = moved_at[self.triangles]
        d1, d2 = d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]
        area = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
        out = np.zeros((len(area), 8), np.float32)
        # Turned over, and by more than a sliver: the lips' parted seam closes to nothing when they
        # seal, and its flipped slivers must not count as a fold (their neighbours, the lips, would).
        folded = (np.sign(area) != self.orientation) & (np.abs(area) > FOLD_AREA)
        area[np.abs(area) < 1e-6] = 1e-6  # a collapsed triangle: any finite map (it covers no pixel)
        # [r1 r2] @ inverse([d1 d2]), then the offset that takes d's first corner to r's
        r1, r2 = self._edges
        i00, i01, i10, i11 = d2[:, 1] / area, -d2[:, 0] / area, -d1[:, 1] / area, d1[:, 0] / area
        out[:, 0] = r1[:, 0] * i00 + r2[:, 0] * i10
        out[:, 1] = r1[:, 0] * i01 + r2[:, 0] * i11
        out[:, 3] = r1[:, 1] * i00 + r2[:, 1] * i10
        out[:, 4] = r1[:, 1] * i01 + r2[:, 1] * i11
        first = self.rest[self.triangles[:, 0]]
        out[:, 2] = first[:, 0] - out[:, 0] * d[:, 0, 0] - out[:, 1] * d[:, 0, 1]
        out[:, 5] = first[:, 1] - out[:, 3] * d[:, 0, 0] - out[:, 4] * d[:, 0, 1]
        # Beside a fold (a turned face's far edge passing over its hair) the layers overlap, and the
        # triangle under an estimate need not be the one that shows: the triangles that share a
        # corner with a folded one are left to the fold's layer order (cpu.solve_folds).
        corner = np.zeros(len(moved_at), bool)
        corner[self.triangles[folded].ravel()] = True
        out[:, 6] = corner[self.triangles].any(axis=1)
        out[:, 7] = folded
        return out

    @cached_property
    def _edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Each triangle's two edges from its first corner, at rest."""
        r = self.rest[self.triangles]
        return r[:, 1] - r[:, 0], r[:, 2] - r[:, 0]


@dataclass
class Scene:
    size: tuple[int, int]          # output (width, height)
    to_output: np.ndarray          # (2, 3) affine: portrait pixels -> output pixels
    scene: np.ndarray              # (H, W, 3) uint8 the still frame: the portrait, its backdrop extended
    source: np.ndarray             # (H, W, 3) uint8 what the warp samples: the still frame, irises removed
    plate: np.ndarray              # (H, W, 3) uint8 the background without the person, where the head moves
    matte: np.ndarray              # (H, W) float32 person alpha in the still frame
    roi: tuple[int, int, int, int]  # x0, y0, x1, y1 of the moving region
    rest_points: np.ndarray        # (M, 2) control points at rest, output pixels
    weights: scipy.sparse.csr_matrix  # (grid pixels, M + fixed) barycentric weights
    grid_shape: tuple[int, int]    # (gh, gw)
    grid: int                      # output pixels per grid step
    mesh: WarpMesh                 # the triangulation behind `weights`, for the exact inverse
    eyes: tuple[EyeLayer, EyeLayer]
    mouth_colours: np.ndarray      # (3, 3) cavity, teeth, tongue (RGB)
    eye_colours: np.ndarray        # (2, 3, 3) per eye (right, left): skin around it, lash line, white (RGB)
    rig: Rig
    skin_detail: np.ndarray        # (H, W) uint8 the source's fine texture: grey level less its blur, + 128

    def points(self, frame: np.ndarray) -> np.ndarray:
        """Control points of one motion frame in output pixels."""
        p = deform(self.rig, frame)
        return p @ self.to_output[:, :2].T + self.to_output[:, 2]


def framing(points: np.ndarray, image_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Affine portrait -> output that puts the face where a webcam would."""
    w, h = size
    face = points[:468, :2]
    top = float(points[list(fm.RIGHT_BROW + fm.LEFT_BROW), 1].min())
    bottom = float(points[fm.CHIN, 1])
    scale = FACE_HEIGHT * h / max(bottom - top, 1.0)
    cx, cy = face[:, 0].mean(), (top + bottom) / 2
    return np.array([[scale, 0, w / 2 - scale * cx], [0, scale, FACE_CENTRE_Y * h - scale * cy]], np.float64)


def _extend(layer: np.ndarray, coverage: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    return (layer * coverage[..., None] + backdrop * (1 - coverage[..., None])).astype(np.uint8)


def _backdrop(framed: np.ndarray, known: np.ndarray) -> np.ndarray:
    """What fills the frame beyond the portrait (`known` 0 there): the portrait's surroundings
    carried outward by the plate's push-pull fill and blurred, so shoulders and background
    continue softly instead of stopping at a bar. Carrying the edge pixels straight out (a
    replicated border) drew every stripe and star of a flag at the edge as a band across it."""
    filled = pyramid_fill(framed.astype(np.float32), known)
    return cv2.GaussianBlur(filled, (0, 0), BACKDROP_BLUR * framed.shape[0])


def _eye_polygon(points: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
    return np.concatenate([points[list(upper), :2], points[list(lower[::-1]), :2]])


def _remove_irises(scene: np.ndarray, points: np.ndarray, iris: np.ndarray) -> tuple[np.ndarray, list[EyeLayer]]:
    """Split each eye into sclera (iris painted out) and an iris texture (lid-hidden part filled)."""
    source = scene.copy()
    layers = []
    for (cx, cy, r), (upper, lower) in zip(iris, ((fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER),
                                                    (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER))):
        opening = np.zeros(scene.shape[:2], np.uint8)
        cv2.fillPoly(opening, [np.round(_eye_polygon(points, upper, lower) * 16).astype(np.int32)], 255,
                     cv2.LINE_AA, shift=4)
        disc = np.zeros_like(opening)
        cv2.circle(disc, (int(round(cx * 16)), int(round(cy * 16))), int(round(r * IRIS_MARGIN * 16)), 255, -1, cv2.LINE_AA, 4)
        source = _paint_out(source, hole=cv2.bitwise_and(disc, opening) > 0, known=(opening > 128) & (disc == 0))

        half = int(np.ceil(r * IRIS_MARGIN)) + 2
        x0, y0 = int(round(cx)) - half, int(round(cy)) - half
        patch = _crop(scene, x0, y0, 2 * half + 1)
        coverage = _crop(opening, x0, y0, 2 * half + 1)
        yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
        dist = np.hypot(xx - (cx - round(cx)), yy - (cy - round(cy)))
        seen = coverage >= 128
        # the eye proper, without the lids' edges and lashes that the landmarks' outline takes in
        inner = cv2.erode(coverage, _disc(LID_EDGE * float(np.ptp(points[list(upper), 0])))) >= 128
        texture = _complete_iris(patch, seen, inner if inner.any() else seen, dist)
        alpha = np.clip(IRIS_MARGIN * r + 0.5 - dist, 0, 1).astype(np.float32)  # as far as the white was painted
        layers.append(EyeLayer(texture=texture, alpha=alpha))
    return source, layers


def _complete_iris(patch: np.ndarray, seen: np.ndarray, inner: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """The iris patch with its lid-hidden pixels (not `seen`) filled from the iris itself: each from
    its mirror image across the iris's horizontal midline where that lies in the eye proper
    (`inner`: the lids hide the top more than the bottom), else from the eye proper's pixels at the
    same distance from the centre. A widened eye or a raised gaze shows this part; filled by
    inpainting, it took the colour of the lid skin and lashes around it and drew a lid inside the
    eye; mirrored from all the landmarks' outline, which takes in the lids' edges, it drew the
    upper lashes as a dark line under a raised iris. (Tried too, 2026-12-03: keeping that edge
    band with the lids, painted out and pasted only within it; the band's static iris colour drew
    a ring round the moving iris.)"""
    out = patch.copy()
    hidden = ~seen
    mirrored = hidden & inner[::-1]
    out[mirrored] = patch[::-1][mirrored]
    ring = np.round(dist).astype(int)
    for radius in np.unique(ring[hidden & ~mirrored]):
        near = inner & (np.abs(dist - radius) <= 1.0)
        near = near if near.any() else inner
        if near.any():
            out[hidden & ~mirrored & (ring == radius)] = np.median(patch[near], axis=0)
    return out


def _paint_out(image: np.ndarray, hole: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill `hole` row by row from the `known` pixels left and right of it.

    Used to paint an iris out with the eye's own white: each row keeps the sclera's shading
    (darker under the upper lid), where inpainting would drag dark lids and lashes in.
    """
    out = image.copy()
    for y in np.unique(np.nonzero(hole)[0]):
        xs = np.nonzero(hole[y])[0]
        seen = np.nonzero(known[y])[0]
        left, right = seen[seen < xs[0]], seen[seen > xs[-1]]
        if len(left) == 0 and len(right) == 0:
            rows = np.nonzero(known.any(axis=1))[0]
            if len(rows) == 0:
                continue
            near = rows[np.argmin(np.abs(rows - y))]
            out[y, xs] = np.median(image[near, known[near]], axis=0)
            continue
        a = image[y, left[-1]].astype(np.float32) if len(left) else image[y, right[0]].astype(np.float32)
        b = image[y, right[0]].astype(np.float32) if len(right) else a
        xa = left[-1] if len(left) else xs[0]
        xb = right[0] if len(right) else xs[-1]
        t = ((xs - xa) / max(xb - xa, 1))[:, None]
        out[y, xs] = np.round(a + t * (b - a)).astype(np.uint8)
    return out


def _crop(image: np.ndarray, x0: int, y0: int, n: int) -> np.ndarray:
    pad = [(n, n), (n, n)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, pad, mode="edge")
    return padded[y0 + n:y0 + 2 * n, x0 + n:x0 + 2 * n].copy()


def _mouth_colours(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Cavity, teeth and tongue colours that match the portrait's light."""
    lips = np.zeros(image.shape[:2], np.uint8)
    outer = np.concatenate([points[list(fm.LIPS_UPPER_OUTER), :2], points[list(fm.LIPS_LOWER_OUTER[::-1]), :2]])
    cv2.fillPoly(lips, [np.round(outer).astype(np.int32)], 255)
    lip = np.array(cv2.mean(image, mask=lips)[:3]) if lips.any() else np.array([150.0, 80, 80])
    # Teeth are lit like the whites of the eyes: take their colour from the brightest eye pixels.
    eyes = np.zeros(image.shape[:2], np.uint8)
    for upper, lower in ((fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER), (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER)):
        cv2.fillPoly(eyes, [np.round(_eye_polygon(points, upper, lower)).astype(np.int32)], 255)
    white = np.percentile(image[eyes > 0], 90, axis=0) if eyes.any() else np.array([220.0, 215, 205])
    # Eyes behind tinted glasses or in shadow read dim: lean toward a neutral ivory as bright as
    # the face is lit.
    ivory = np.array([236.0, 230, 218]) * min(1.0, float(np.percentile(image[lips > 0].mean(axis=1), 90)) / 150
                                             if lips.any() else 1.0)
    teeth = np.clip(0.5 * white + 0.5 * ivory, 0, 255)
    cavity = lip * 0.3 + np.array([10, 2, 2])
    tongue = lip * 0.8 + np.array([20, 0, 0])
    return np.clip(np.stack([cavity, teeth, tongue]), 0, 255)


def _eye_colours(image: np.ndarray, points: np.ndarray, iris: np.ndarray) -> np.ndarray:
    """Per eye: the skin around it, the lash line, and the white of the eye."""
    out = []
    for (cx, cy, r), upper, lower in zip(iris, (fm.RIGHT_EYE_UPPER, fm.LEFT_EYE_UPPER),
                                         (fm.RIGHT_EYE_LOWER, fm.LEFT_EYE_LOWER)):
        lid = points[list(upper), :2]
        width = float(np.ptp(lid[:, 0]))
        eye = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(eye, [np.round(_eye_polygon(points, upper, lower)).astype(np.int32)], 255)
        # the median colour of a ring around the eye, past its lashes: lashes, brows and a
        # glasses frame are a minority there (a band just above the lashes took in the shadow
        # under Grace Hopper's lids)
        ring = (cv2.dilate(eye, _disc(0.4 * width)) > 0) & ~(cv2.dilate(eye, _disc(0.15 * width)) > 0)
        skin = np.median(image[ring], axis=0) if ring.any() else image[int(lid[4, 1]), int(lid[4, 0])]
        line = np.zeros(image.shape[:2], np.uint8)
        cv2.polylines(line, [np.round(lid).astype(np.int32)], False, 255, 2)
        lash = np.percentile(image[line > 0], 15, axis=0) if line.any() else skin * 0.4
        opening = eye.copy()
        cv2.circle(opening, (int(round(cx)), int(round(cy))), int(round(IRIS_MARGIN * r)), 0, -1)
        seen = image[opening > 0]
        white = np.percentile(seen, 75, axis=0) if len(seen) >= 8 else np.maximum(skin, 200)
        out.append([skin, np.minimum(lash, skin * 0.6), white])
    return np.array(out, np.float32)


def _disc(radius: float) -> np.ndarray:
    """A round structuring element of `radius` pixels (at least 1)."""
    size = 2 * max(1, int(round(radius))) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _skin_detail(source: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The fine texture of the picture (pores, wrinkles): its grey level less a blur over
    DETAIL_SCALE of an eye's width, softly limited, offset by 128, for a shut lid to carry
    (cpu.lid_skin)."""
    grey = source.astype(np.float32).mean(axis=2)
    eye = float(np.mean([np.ptp(points[list(upper), 0]) for upper in (fm.RIGHT_EYE_UPPER, fm.LEFT_EYE_UPPER)]))
    fine = grey - cv2.GaussianBlur(grey, (0, 0), max(1.0, DETAIL_SCALE * eye))
    fine = DETAIL_LIMIT * np.tanh(fine / DETAIL_LIMIT)  # pores and wrinkles, not the crease's or lashes' dark
    return np.clip(np.round(fine) + 128, 0, 255).astype(np.uint8)


def _triangulate(points: np.ndarray, follow: np.ndarray, roi: tuple[int, int, int, int],
                 grid: int) -> tuple[scipy.sparse.csr_matrix, tuple[int, int], WarpMesh]:
    """The moving region's triangulation: each grid pixel's barycentric weights (block centres) over
    the control points (`follow`: how much each follows the head), and the mesh itself for the
    exact inverse."""
    x0, y0, x1, y1 = roi
    border = []
    for t in np.linspace(0, 1, 9):
        border += [(x0 + t * (x1 - x0), y0), (x0 + t * (x1 - x0), y1), (x0, y0 + t * (y1 - y0)), (x1, y0 + t * (y1 - y0))]
    # Iris points are not part of the skin: they move in the eye layer, and tying the eye
    # opening to them would fold the lids over them in a blink.
    skin = np.r_[0:fm.RIGHT_IRIS[0], fm.LEFT_IRIS[-1] + 1:len(points)]
    allp = np.concatenate([points[skin], np.array(border)])
    tri = Delaunay(allp)
    gh, gw = (y1 - y0 + grid - 1) // grid, (x1 - x0 + grid - 1) // grid
    gy, gx = np.mgrid[0:gh, 0:gw]
    px = np.stack([x0 + gx * grid + (grid - 1) / 2, y0 + gy * grid + (grid - 1) / 2], -1).reshape(-1, 2)
    simplex = tri.find_simplex(px)
    simplex[simplex < 0] = 0  # outside the hull cannot happen inside the ROI border; guard anyway
    t = tri.transform[simplex]
    b = np.einsum("nij,nj->ni", t[:, :2], px - t[:, 2])
    bary = np.c_[b, 1 - b.sum(1)]
    rows = np.repeat(np.arange(len(px)), 3)
    column = np.r_[skin, np.full(len(border), len(points))]  # border points: a column of zero motion
    w = scipy.sparse.csr_matrix((bary.ravel(), (rows, column[tri.simplices[simplex].ravel()])),
                                shape=(len(px), len(points) + 1))
    mesh = WarpMesh.of(tri, skin, np.r_[follow[skin], np.zeros(len(border))], roi)
    return w[:, :len(points)].tocsr(), (gh, gw), mesh


def _split_lips(points: np.ndarray, mouth_top: np.ndarray, gap: float = 1.5) -> np.ndarray:
    """Control points for triangulation only, with the jaw's side pulled `gap` px apart.

    The lower lip's inner edge and the upper jaw's points above it (`mouth_top`) coincide, so a
    plain triangulation would tie parts of the lower lip to the upper jaw and smear it when the
    jaw opens. Parting them keeps every triangle on one side; the sliver between them becomes
    the mouth opening.
    """
    down = points[fm.CHIN] - points[fm.FOREHEAD]
    down = down / max(float(np.linalg.norm(down)), 1e-6) * (gap / 2)
    parted = points.copy()
    parted[mouth_top[1:-1]] -= down
    parted[list(fm.LIPS_LOWER_INNER[1:-1])] += down
    return parted


def build_scene(image: np.ndarray, matte: np.ndarray, plate: np.ndarray, rig: Rig, size: tuple[int, int]) -> Scene:
    """Frame a portrait into an output of `size` (width, height) and prepare its warp tables."""
    w, h = size
    a = framing(rig.points, image.shape[1::-1], size)
    warp = dict(dsize=(w, h), flags=cv2.INTER_CUBIC if a[0, 0] > 1 else cv2.INTER_AREA)
    inside = cv2.warpAffine(np.ones(image.shape[:2], np.float32), a, borderMode=cv2.BORDER_CONSTANT, **warp)
    known = (inside > 0.999).astype(np.float32)
    feather = max(3, int(0.02 * h)) | 1
    coverage = cv2.GaussianBlur(np.clip(cv2.erode(inside, np.ones((feather, feather))), 0, 1), (0, 0), feather / 2)
    plate_o = cv2.warpAffine(plate, a, borderMode=cv2.BORDER_REPLICATE, **warp)
    plate_o = _extend(plate_o, coverage, _backdrop(plate_o, known))
    image_o = cv2.warpAffine(image, a, borderMode=cv2.BORDER_REPLICATE, **warp)
    image_o = _extend(image_o, coverage, _backdrop(image_o, known))
    matte_o = np.clip(cv2.warpAffine(matte.astype(np.float32), a, borderMode=cv2.BORDER_REPLICATE, **warp), 0, 1)
    # The still frame is the photograph itself, not the person over the plate: the plate's fill
    # reaches past the matte (`plate.hole_mask`), and where a matte misses part of the body (the
    # astronaut's collar ring) the fill would smear it in every frame. The renderer shows the
    # plate only where the warp moves the picture away (`cpu.STILL_PX`).
    scene = image_o

    points = rig.points[:, :2] @ a[:, :2].T + a[:, 2]
    iris = rig.iris.copy()
    iris[:, :2] = iris[:, :2] @ a[:, :2].T + a[:, 2]
    iris[:, 2] *= a[0, 0]
    source, eyes = _remove_irises(scene, points, iris)

    grid = max(2, int(round(FACE_HEIGHT * h / GRID_PER_FACE)))
    margin = 4 * grid
    lo = np.floor(points.min(0)).astype(int) - margin
    hi = np.ceil(points.max(0)).astype(int) + margin
    roi = (int(max(0, lo[0])), int(max(0, lo[1])), int(min(w, hi[0])), int(min(h, hi[1])))
    weights, grid_shape, mesh = _triangulate(_split_lips(points, rig.mouth_top), rig.follow, roi, grid)
    return Scene(size=size, to_output=a, scene=scene, source=source, plate=plate_o, matte=matte_o, roi=roi,
                 rest_points=points.astype(np.float32), weights=weights, grid_shape=grid_shape, grid=grid, mesh=mesh,
                 eyes=(eyes[0], eyes[1]), mouth_colours=_mouth_colours(image_o, points),
                 eye_colours=_eye_colours(image_o, points, iris), rig=rig,
                 skin_detail=_skin_detail(source, points))
