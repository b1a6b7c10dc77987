"""The eye layers' geometry: per eye, the lids' outline, the iris's place (moved over the eyeball
for gaze) and, where the lids moved from the portrait's, what they uncover and cover (the lid skin
spread over a closing eye, its texture, the lash line). CpuRenderer._draw_eyes draws it; the GPU
renderer uploads the same masks and its kernels blend them (`EyeGeometry` is the contract).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .. import latent
from . import facemesh as fm
from .masks import SHIFT, coverage, polygon_box
from .rig import EYEBALL_RADIUS, head_scale
from .scene import IRIS_MARGIN, Scene
from .warp import GAZE

LID_CHANNELS = np.array([[latent.index(f"{c}{side}") for c in ("eyeBlink", "eyeWide", "eyeSquint")]
                         for side in ("Right", "Left")])  # (eye, channel), eyes as in Scene.eyes
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
        cv2.circle(disc, (int(round(cx * 16)), int(round(cy * 16))), int(round(r * 16)), 255, -1, cv2.LINE_AA, SHIFT)
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
    # a smooth curve through the lid (its points joined straight made the folded rows polygons),
    # fitted in float64 over x mapped onto [-1, 1]: np.polyfit on the float32 pixel columns solved
    # in float32, ill-conditioned (a RankWarning per frame on some photos, the curve 0.2 px off)
    curve = np.polynomial.Polynomial.fit(rest[:, 0].astype(np.float64), rest[:, 1].astype(np.float64), 3)
    lash_y = curve(np.clip(xs, rest[0, 0], rest[-1, 0])).astype(np.float32)
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
