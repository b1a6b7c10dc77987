"""A portrait framed into a camera frame: the static layers and warp tables every renderer shares.

Built once per (profile, output size, framing, backdrop). The portrait is scaled so the head sits
where a good webcam would put it (`framing`), the person is composited over the chosen backdrop
through the enrollment's matte (`backdrop`: the photo's own background extended out of focus, a
blur of it, a colour or a picture; never stretched edge pixels), and the moving region (the ROI)
gets a fixed triangulation whose barycentric weights let a renderer turn control-point motion into
a dense displacement field with one sparse product (and whose triangles let it invert that field
exactly where it stretches the picture). Framing and backdrop cost nothing per frame: they are in
the still layers (`Scene.scene`, `source`, `plate`, `matte`) the renderers read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
import scipy.sparse
from scipy.spatial import Delaunay

from ..config import FRAMINGS, Backdrop, parse_backdrop
from ..errors import SettingsError
from . import facemesh as fm
from .plate import pyramid_fill
from .rig import Rig, deform

# Framing, in shares of the frame height. The face is forehead (landmark 10, below the hairline)
# to chin; the eye line is the eye corners' mean row. Per framing: the face's (least, wanted, most)
# and the eye line's (highest, wanted, lowest); `framing()` picks within them. Speech and head
# motion take the judged face up to 0.04 larger and the eye line 0.02 lower than at rest (14
# portraits, DSP motion), hence bands inside the webcam's 0.25-0.40 and 0.38-0.47.
FACE_SHARE = {"head": (0.27, 0.32, 0.345), "shoulders": (0.19, 0.23, 0.26)}
EYE_LINE = {"head": (0.40, 0.42, 0.44), "shoulders": (0.37, 0.40, 0.43)}
HEADROOM = 0.06    # free above the top of the head (hair, hat): head motion must not touch the top edge
HEAD_REACH = 1.2   # face heights above the forehead landmark that still count as the head (a tall hat)
GRID_SHARE = 0.004  # the displacement field's grid step, in frame heights (its cost grows with 1 / step^2)
# Backdrop, in shares of the frame height: where the photo ends inside the frame it fades into the
# backdrop over EDGE_FADE (the body at a crop's bottom ends in a soft vignette, not on a cut line);
# the photo's background extended beyond it is blurred over PHOTO_BLUR (out of focus, not smeared),
# the `blur` backdrop over BLUR.
EDGE_FADE = 0.06
RIM = 0.015  # the photo's own rim, left out of what the backdrop carries beyond it
SOLID = 0.95  # person matte from which a pixel is the person's own colour, no background mixed in
BODY_REACH = 3.0  # face heights either side of the face that shoulders and sleeves may reach
UNSURE = (0.3, 0.7)  # over another backdrop the person matte's soft band is narrowed to this span
PHOTO_BLUR = 0.05
BLUR = 0.025
IRIS_MARGIN = 1.3     # the landmarker's iris radius runs small on big irises: take a margin
IRIS_EDGE = (1.0, 1.15)  # iris radii: the iris texture fades into the painted-out white between them
PAINT_SMOOTH = 0.3    # of the iris radius: the painted-out white is smoothed down the eye over this
LID_EDGE = 0.05       # of an eye's width: the lids' edges the landmarks' eye outline takes in
DETAIL_SCALE = 0.06   # the skin's fine texture is what a blur over this share of an eye's width takes out
DETAIL_LIMIT = 8.0    # grey levels: that texture softly held within them
SEAM_SHADE = 0.75     # the seam between closed lips: the lips' colour this dark
# A photo's own teeth: the pixels of its open mouth lit at least TEETH_FROM of the teeth's light
# show, fully from TEETH_FULL (the dark of the mouth and the tongue are drawn as for any photo);
# used when they cover PHOTO_TEETH_SHARE of the opening, else the drawn teeth stand in.
TEETH_FROM, TEETH_FULL = 0.5, 0.75
PHOTO_TEETH_SHARE = 0.1
FOLD_AREA = 2.0       # px^2 (twice a triangle's area): a triangle turned over by less is a collapsed sliver


@dataclass
class EyeLayer:
    """One eye's iris texture (occluded parts filled in) with its soft alpha."""

    texture: np.ndarray  # (h, w, 3) uint8, centred on the iris
    alpha: np.ndarray    # (h, w) float32 soft disc


@dataclass
class PhotoTeeth:
    """What a photo's parted lips show of its teeth (they are the person's own), in a box of the output
    frame: the rest closes the lips over it (`Rig.photo_points`), an opening jaw shows it again,
    hanging from the upper lip as the upper teeth do (`mouth.mouth_geometry`)."""

    texture: np.ndarray  # (h, w, 3) uint8 the photo's mouth opening
    alpha: np.ndarray    # (h, w) float32 where it shows teeth, within the opening
    anchor: np.ndarray   # (2,) the upper lip's middle (landmark 13) in the photo, box pixels


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
    scene: np.ndarray              # (H, W, 3) uint8 the still frame: the portrait framed over its backdrop
    source: np.ndarray             # (H, W, 3) uint8 what the warp samples: the still frame, irises removed
    plate: np.ndarray              # (H, W, 3) uint8 what is behind the person (the backdrop), where the head moves
    matte: np.ndarray              # (H, W) float32 person alpha in the still frame (fading with the photo's edge)
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
    teeth: PhotoTeeth | None       # what the photo's parted lips show of its teeth, for an opening jaw

    def points(self, frame: np.ndarray) -> np.ndarray:
        """Control points of one motion frame in output pixels."""
        p = deform(self.rig, frame)
        return p @ self.to_output[:, :2].T + self.to_output[:, 2]


EYE_CORNERS = [fm.RIGHT_EYE_OUTER, fm.RIGHT_EYE_UPPER[-1], fm.LEFT_EYE_UPPER[-1], fm.LEFT_EYE_OUTER]


def face_height(points: np.ndarray) -> float:
    """Forehead (landmark 10) to chin, portrait pixels: the face size the framing bands mean."""
    return max(float(np.linalg.norm(points[fm.CHIN, :2] - points[fm.FOREHEAD, :2])), 1.0)


def eye_line(points: np.ndarray) -> float:
    """The eye line's row: the mean of the four eye corners."""
    return float(points[EYE_CORNERS, 1].mean())


def head_top(points: np.ndarray, matte: np.ndarray | None) -> tuple[float, bool]:
    """The top of the head (hair and hat included) in portrait rows, and whether the photo cuts it
    off. It is the top of the person matte's unbroken run of rows above the forehead, over twice the
    face's width (hair is wider than the face), at most HEAD_REACH face heights up (beyond, it is
    rather something the matte took in); without a matte, half a face height above the forehead."""
    forehead, face = float(points[fm.FOREHEAD, 1]), face_height(points)
    reach = forehead - HEAD_REACH * face
    if matte is None:
        return forehead - 0.5 * face, False
    oval = points[list(fm.FACE_OVAL), 0]
    mid, half = (oval.min() + oval.max()) / 2, float(np.ptp(oval))
    x0, x1 = max(int(mid - half), 0), min(int(np.ceil(mid + half)) + 1, matte.shape[1])
    row = int(np.clip(forehead, 0, matte.shape[0] - 1))
    gaps = np.flatnonzero(~(matte[:row + 1, x0:x1] > 0.5).any(axis=1))
    top = int(gaps[-1]) + 1 if len(gaps) else 0
    if top == 0 and reach <= 0:
        return 0.0, True
    return float(max(top, reach)), False


def framing(points: np.ndarray, image_size: tuple[int, int], size: tuple[int, int], mode: str = "head",
            matte: np.ndarray | None = None, photo_points: np.ndarray | None = None) -> np.ndarray:
    """Affine portrait -> output (2, 3) for a framing (FRAMINGS). `photo` fits the whole picture in
    the frame. `head` and `shoulders` choose the face's size and the eye line within their bands
    (FACE_SHARE, EYE_LINE), in this order of weight: HEADROOM above the top of the head (`head_top`
    in the person `matte`); where the photo itself cuts the head off, its top edge at or above the
    frame's (not a straight cut through the hair in mid-frame); the photo's bottom at or below the
    frame's (the body runs out of the frame, not out of the photo); then the wanted size and line.
    The face is centred across the frame. Its size is the taller of the rest's (`points`) and the
    photo's own (`photo_points`, lips apart as photographed): speech opens the jaw again, and framed
    by the closed rest a shouting photo's face grew to 0.41 of the frame as it spoke."""
    w, h = size
    iw, ih = image_size
    if mode == "photo":
        s = min(w / iw, h / ih)
        return np.array([[s, 0, (w - s * iw) / 2], [0, s, (h - s * ih) / 2]], np.float64)
    if mode not in FACE_SHARE:
        raise SettingsError(f"framing must be one of {', '.join(FRAMINGS)}, not {mode!r}")
    face, eyes = face_height(points), eye_line(points)
    if photo_points is not None:
        face = max(face, face_height(photo_points))
    top, cut = head_top(points, matte)
    (f_lo, f_want, f_hi), (e_lo, e_want, e_hi) = FACE_SHARE[mode], EYE_LINE[mode]
    f = np.linspace(f_lo, f_hi, int(round((f_hi - f_lo) / 0.005)) + 1)[:, None]
    e = np.linspace(e_lo, e_hi, int(round((e_hi - e_lo) / 0.005)) + 1)[None, :]
    s = f * h / face
    room = e - s * (eyes - top) / h          # frame top to head top, in frame heights
    above = e - s * eyes / h                 # frame top to photo top (> 0: the photo starts inside)
    below = 1 - e - s * (ih - eyes) / h      # photo bottom to frame bottom (> 0: it ends inside)
    cost = (100 * np.maximum(HEADROOM - room, 0) * (not cut) + 5 * np.maximum(above, 0) * cut
            + 5 * np.maximum(below, 0) + 0.1 * ((f - f_want) / 0.05) ** 2 + 0.1 * ((e - e_want) / 0.03) ** 2)
    i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
    scale, line = float(s[i, 0]), float(e[0, j])
    cx = float(points[:468, 0].mean())
    return np.array([[scale, 0, w / 2 - scale * cx], [0, scale, line * h - scale * eyes]], np.float64)


def fade(inside: np.ndarray, width: float) -> np.ndarray:
    """float32 0..1: how much of the photo shows, from `inside` (1 where the warped photo covers the
    frame): 1 deep inside, easing to 0 over `width` pixels toward the photo's edge, so it ends in a
    soft vignette; where the photo runs past the frame's edge it does not fade (the frame's border
    is not an edge of the photo)."""
    covered = np.pad((inside > 0.999).astype(np.uint8), 1, constant_values=1)
    dist = cv2.distanceTransform(covered, cv2.DIST_L2, 5)[1:-1, 1:-1]
    t = np.clip(dist / max(width, 1.0), 0, 1)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def backdrop_layer(backdrop: Backdrop, plate: np.ndarray, shown: np.ndarray, background: np.ndarray,
                   size: tuple[int, int]) -> np.ndarray:
    """float32 (H, W, 3): what lies behind the person. `photo`: the photo's background carried beyond
    the photo by the push-pull fill from `background` (1 where `plate`, warped, surely shows it) and
    blurred, so it reads as an out-of-focus background rather than a smear (copying edge pixels
    outward drew a sweater's stripes as fog and a flag's as bands); the caller fades the sharp
    plate into it (`shown`). `blur`: the plate so faded, strongly blurred. A colour. A picture
    scaled to cover the frame."""
    w, h = size
    if isinstance(backdrop, tuple):
        return np.full((h, w, 3), backdrop, np.float32)
    if isinstance(backdrop, Path):
        return cover_image(backdrop, size)
    filled = pyramid_fill(plate, background) if background.any() else np.full((h, w, 3), 128, np.float32)
    extended = cv2.GaussianBlur(filled, (0, 0), PHOTO_BLUR * h)
    if backdrop == "photo":
        return extended
    return cv2.GaussianBlur(plate * shown + extended * (1 - shown), (0, 0), BLUR * h)


def background_known(inside: np.ndarray, matte: np.ndarray, points: np.ndarray) -> np.ndarray:
    """float32 0/1, output pixels: where the warped plate surely shows the photo's background, the
    only colours a backdrop may carry beyond the photo. Not the photo's rim (RIM: interpolated,
    and scans and paintings often have a light border there that carried out as a pale band), not
    the person grown by a margin (`plate.hole_mask` fills there), and not the body's region from the
    mouth down (BODY_REACH either side of the face), where mattes miss shoulders that the plate
    then keeps: carried out from a few such pixels, a shirt's corner spread into a glow, a black
    shirt into a dark fog."""
    h, w = matte.shape
    face = face_height(points)
    rim = 2 * max(2, int(RIM * h)) + 1
    known = cv2.erode((inside > 0.999).astype(np.uint8), np.ones((rim, rim), np.uint8))
    grow = 2 * max(3, int(0.03 * face)) + 1
    known[cv2.dilate((matte > 0.02).astype(np.uint8), np.ones((grow, grow), np.uint8)) > 0] = 0
    mouth, cx = int(max(points[fm.LIPS_LOWER_OUTER[5], 1], 0)), float(points[:468, 0].mean())
    known[mouth:, max(int(cx - BODY_REACH * face), 0):max(int(cx + BODY_REACH * face), 0)] = 0
    if not known.any():  # a photo of the person alone: whatever is not the person
        known = cv2.erode((inside > 0.999).astype(np.uint8), np.ones((rim, rim), np.uint8)) * (matte < 0.02)
    return known.astype(np.float32)


def cover_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """float32 (H, W, 3) RGB: the picture at `path` scaled to cover `size` and cropped about its centre."""
    w, h = size
    data = np.fromfile(path, np.uint8) if path.is_file() else np.zeros(0, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SettingsError(f"backdrop {str(path)!r} is not a picture AvatarCam can read (JPEG, PNG, ...)")
    ih, iw = image.shape[:2]
    s = max(w / iw, h / ih)
    a = np.array([[s, 0, (w - s * iw) / 2], [0, s, (h - s * ih) / 2]], np.float64)
    out = cv2.warpAffine(image, a, (w, h), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REFLECT)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB).astype(np.float32)


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
        hole = cv2.bitwise_and(disc, opening) > 0
        source = _paint_out(source, hole=hole, known=(opening > 128) & (disc == 0))
        # Filled row by row, the white came out in streaks; smoothed down the eye, within its opening
        # (the lids and lashes around it kept out).
        inside = (opening > 128).astype(np.float32)
        spread = dict(ksize=(0, 0), sigmaX=0.5, sigmaY=max(0.5, PAINT_SMOOTH * r))
        smooth = cv2.GaussianBlur(source.astype(np.float32) * inside[..., None], **spread)
        smooth /= np.maximum(cv2.GaussianBlur(inside, **spread), 1e-3)[..., None]
        source[hole] = np.clip(np.round(smooth[hole]), 0, 255).astype(np.uint8)

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
        # Past the iris's own edge the texture is the white as painted out here, not as the photo has
        # it beside the iris: moved, the photo's white (a highlight, a shadow, a painted rim) drew a
        # ring round the iris. (The lid-hidden part keeps its completion.)
        beyond = (np.clip((dist - IRIS_EDGE[0] * r) / ((IRIS_EDGE[1] - IRIS_EDGE[0]) * r), 0, 1) * seen)[..., None]
        texture = np.round(texture * (1 - beyond) + _crop(source, x0, y0, 2 * half + 1) * beyond).astype(np.uint8)
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
    upper lashes as a dark line under a raised iris."""
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


def _close_mouth(image: np.ndarray, matte: np.ndarray, rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """The photo and its matte as the rig's rest shows them, the lips closed (`Rig.photo_points` moved
    to `Rig.points`), warped once here so that a frame moves the picture only as far as the face
    moves from its rest: each pixel near the moved points takes the photo's pixel through the
    triangle it lies in of the closed mesh. What the open lips showed is painted over first
    (`_hide_mouth`): the seam between the closed lips takes it in."""
    moves = np.r_[0:fm.RIGHT_IRIS[0], fm.LEFT_IRIS[-1] + 1:len(rig.points)]  # the skin: no iris ...
    moves = moves[~np.isin(moves, rig.mouth_top)]  # ... nor what the open lips showed (folded away)
    src, dst = rig.photo_points[moves].astype(np.float64), rig.points[moves, :2].astype(np.float64)
    moved = np.abs(dst - src).max(axis=1) > 0.01
    span = np.r_[src[moved], dst[moved]]
    margin = 0.25 * float(np.ptp(span, axis=0).max()) + 4
    h, w = image.shape[:2]
    x0, y0 = np.maximum(np.floor(span.min(axis=0) - margin), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(span.max(axis=0) + margin), (w, h)).astype(int)
    edge = [(x, y) for t in np.linspace(0, 1, 9) for x, y in ((x0 + t * (x1 - x0), y0), (x0 + t * (x1 - x0), y1),
                                                                (x0, y0 + t * (y1 - y0)), (x1, y0 + t * (y1 - y0)))]
    inside = ((dst >= (x0, y0)) & (dst <= (x1, y1))).all(axis=1) & ((src >= (x0, y0)) & (src <= (x1, y1))).all(axis=1)
    src, dst = np.r_[src[inside], edge], np.r_[dst[inside], edge]
    # The photo's triangulation (the lips apart: each triangle on one side of them), drawn where the
    # rest puts it; a pixel takes its triangle's map back to the photo (WarpMesh.inverse_affines).
    # Smallest first: a triangle the closing squeezes to a sliver (the open lips' gap) gives way to
    # its neighbours.
    moving = len(src) - len(edge)
    mesh = WarpMesh.of(Delaunay(src), np.arange(moving), np.zeros(len(src)), (x0, y0, x1, y1))
    maps_back = mesh.inverse_affines(dst[:moving] - src[:moving])
    corners = dst[mesh.triangles] - (x0, y0)
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    under = np.full((y1 - y0, x1 - x0), -1, np.int32)
    for k in np.argsort(area):
        cv2.fillConvexPoly(under, np.round(corners[k] * 16).astype(np.int32), int(k), cv2.LINE_8, 4)
    qy, qx = np.mgrid[0:y1 - y0, 0:x1 - x0] + 0.5
    m = maps_back[np.maximum(under, 0)]
    come_from = np.stack([m[..., 0] * qx + m[..., 1] * qy + m[..., 2], m[..., 3] * qx + m[..., 4] * qy + m[..., 5]], -1)
    come_from = np.where((under >= 0)[..., None], come_from, np.stack([qx, qy], -1))
    maps = (come_from + (x0 - 0.5, y0 - 0.5)).astype(np.float32)
    painted = _hide_mouth(image, rig.photo_points)
    closed, closed_matte = image.copy(), matte.copy()
    closed[y0:y1, x0:x1] = cv2.remap(painted, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    closed_matte[y0:y1, x0:x1] = cv2.remap(matte.astype(np.float32), maps, None, cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_REPLICATE)
    return closed, closed_matte


def _photo_teeth(photo: np.ndarray, rig: Rig, a: np.ndarray, size: tuple[int, int], light: float) -> PhotoTeeth | None:
    """The teeth the photo shows between its parted lips (`Rig.photo_points`), framed by `a` into an
    output of `size`, where its pixels are lit near the teeth's `light` (TEETH_FROM .. TEETH_FULL);
    None where they cover less than PHOTO_TEETH_SHARE of the opening."""
    points = rig.photo_points @ a[:, :2].T + a[:, 2]
    polygon = np.concatenate([points[list(fm.LIPS_UPPER_INNER)], points[list(fm.LIPS_LOWER_INNER[::-1])]])
    x0, y0 = np.maximum(np.floor(polygon.min(axis=0)) - 2, 0).astype(int)
    x1, y1 = np.minimum(np.ceil(polygon.max(axis=0)) + 3, size).astype(int)
    if x1 <= x0 or y1 <= y0:
        return None
    box = a.copy()
    box[:, 2] -= (x0, y0)
    texture = cv2.warpAffine(photo, box, (x1 - x0, y1 - y0), flags=cv2.INTER_AREA if a[0, 0] < 1 else cv2.INTER_CUBIC)
    inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(inside, [np.round((polygon - (x0, y0)) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8)).astype(np.float32) / 255
    lit = texture.astype(np.float32).mean(axis=2) / max(light, 1.0)
    lit = np.clip((lit - TEETH_FROM) / (TEETH_FULL - TEETH_FROM), 0, 1)
    alpha = (inside * lit * lit * (3 - 2 * lit)).astype(np.float32)
    if alpha.sum() < PHOTO_TEETH_SHARE * max(float(inside.sum()), 1.0):
        return None
    return PhotoTeeth(texture, alpha, (points[fm.LIPS_UPPER_INNER[5]] - (x0, y0)).astype(np.float32))


def _hide_mouth(source: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The picture with what the photo's parted lips show (teeth, tongue, the dark of the mouth)
    painted over with the lips' own colour, darkened as the shadow where lips meet: the rig's rest
    closes them (`_close_mouth`), squeezing that region into the seam between them, where its teeth
    and dark showed as a broken white and black line. (Inpainted from the lips instead, it took in
    the teeth the landmarks' inner outline runs along and the seam showed them pale.)"""
    opening = np.concatenate([points[list(fm.LIPS_UPPER_INNER), :2], points[list(fm.LIPS_LOWER_INNER[::-1]), :2]])
    hole = np.zeros(source.shape[:2], np.uint8)
    cv2.fillPoly(hole, [np.round(opening * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    if not (hole > 128).any():
        return source
    outer = np.concatenate([points[list(fm.LIPS_UPPER_OUTER), :2], points[list(fm.LIPS_LOWER_OUTER[::-1]), :2]])
    lips = np.zeros_like(hole)
    cv2.fillPoly(lips, [np.round(outer).astype(np.int32)], 255)
    lips &= ~cv2.dilate(hole, np.ones((3, 3), np.uint8))
    colour = np.median(source[lips > 0], axis=0) if lips.any() else np.median(source[hole > 128], axis=0)
    alpha = hole.astype(np.float32)[..., None] / 255
    return np.round(source * (1 - alpha) + SEAM_SHADE * colour * alpha).astype(np.uint8)


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


def build_scene(image: np.ndarray, matte: np.ndarray, plate: np.ndarray, rig: Rig, size: tuple[int, int],
                framing_mode: str = "head", backdrop: str | Backdrop = "photo") -> Scene:
    """Frame a portrait into an output of `size` (width, height) as `framing_mode` says (FRAMINGS),
    over `backdrop` (see config.parse_backdrop), and prepare its warp tables."""
    w, h = size
    behind = parse_backdrop(backdrop) if isinstance(backdrop, str) else backdrop
    photo = image
    closes = bool(np.any(rig.photo_points != rig.points[:, :2]))  # the rest closes the photo's parted lips
    if closes:
        image, matte = _close_mouth(image, matte, rig)
    a = framing(rig.points, image.shape[1::-1], size, framing_mode, matte, rig.photo_points)
    warp = dict(dsize=(w, h), flags=cv2.INTER_CUBIC if a[0, 0] > 1 else cv2.INTER_AREA)
    inside = cv2.warpAffine(np.ones(image.shape[:2], np.float32), a, borderMode=cv2.BORDER_CONSTANT, **warp)
    shown = fade(inside, EDGE_FADE * h)[..., None]
    # Edge pixels are reflected, never replicated outward, and only where the fade hides them.
    plate_o = cv2.warpAffine(plate, a, borderMode=cv2.BORDER_REFLECT, **warp).astype(np.float32)
    image_o = cv2.warpAffine(image, a, borderMode=cv2.BORDER_REFLECT, **warp)
    matte_o = np.clip(cv2.warpAffine(matte.astype(np.float32), a, borderMode=cv2.BORDER_CONSTANT, **warp), 0, 1)
    points = rig.points[:, :2] @ a[:, :2].T + a[:, 2]
    back = backdrop_layer(behind, plate_o, shown, background_known(inside, matte_o, points), size)
    if behind == "photo":
        # The still frame is the photograph itself, not the person over the plate: the plate's fill
        # reaches past the matte (`plate.hole_mask`), and where a matte misses part of the body (the
        # astronaut's collar ring) the fill would smear it in every frame. The renderer shows the
        # plate only where the warp moves the picture away (`cpu.STILL_PX`). Both fade into the
        # photo's background carried beyond its edge.
        scene = image_o * shown + back * (1 - shown)
        plate_o = plate_o * shown + back * (1 - shown)
        matte_o *= shown[..., 0]
    else:
        # Any other backdrop replaces the photo's background: the person over it through the matte.
        # The matte's soft rim (hair, fingers) holds the photo's background mixed in, which drew a
        # pale halo round the person on a dark colour: there the person's colour is carried out from
        # where the matte is solid, and the rim is narrowed to where the matte is fairly sure (its
        # soft band runs wide round a hand, and showed the background, or that colour, as a glow).
        solid = (matte_o > SOLID).astype(np.float32)
        person = pyramid_fill(image_o.astype(np.float32), solid) if solid.any() else image_o
        matte_o = np.clip((matte_o - UNSURE[0]) / (UNSURE[1] - UNSURE[0]), 0, 1) * shown[..., 0]
        scene = person * matte_o[..., None] + back * (1 - matte_o[..., None])
        plate_o = back
    scene = np.clip(np.round(scene), 0, 255).astype(np.uint8)
    plate_o = np.clip(np.round(plate_o), 0, 255).astype(np.uint8)

    iris = rig.iris.copy()
    iris[:, :2] = iris[:, :2] @ a[:, :2].T + a[:, 2]
    iris[:, 2] *= a[0, 0]
    source, eyes = _remove_irises(scene, points, iris)

    grid = max(2, int(round(GRID_SHARE * h)))
    margin = 4 * grid
    lo = np.floor(points.min(0)).astype(int) - margin
    hi = np.ceil(points.max(0)).astype(int) + margin
    roi = (int(max(0, lo[0])), int(max(0, lo[1])), int(min(w, hi[0])), int(min(h, hi[1])))
    weights, grid_shape, mesh = _triangulate(_split_lips(points, rig.mouth_top), rig.follow, roi, grid)
    mouth_colours = _mouth_colours(image_o, points)
    teeth = _photo_teeth(photo, rig, a, size, float(np.mean(mouth_colours[1]))) if closes else None
    return Scene(size=size, to_output=a, scene=scene, source=source, plate=plate_o, matte=matte_o, roi=roi,
                 rest_points=points.astype(np.float32), weights=weights, grid_shape=grid_shape, grid=grid, mesh=mesh,
                 eyes=(eyes[0], eyes[1]), mouth_colours=mouth_colours,
                 eye_colours=_eye_colours(image_o, points, iris), rig=rig,
                 skin_detail=_skin_detail(source, points), teeth=teeth)
