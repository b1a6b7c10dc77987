"""Person/background separation without a learned model: GrabCut seeded by the face mesh.

A portrait's layout is predictable from its face: hair above and beside it, a neck below, then
shoulders widening to the bottom of the frame. That prior labels GrabCut's trimap (face and the
neck under the chin = sure person, head/hair/shoulders = probably person, a thin belt around that
= probably background, everything farther = background), GrabCut learns the colours of both sides
and cuts along the image's own edges, and a guided filter turns the cut into a soft matte only in
a thin band along it, so hair edges blend while the inside stays solid.

Known limits (it is colour-based): background that shares the person's colours right beside them
(a flag's stripes by a white collar, a dark backdrop by a dark collar) can be cut wrongly near the
shoulders. Dark hair before a dark backdrop can be lost whole: where the cut keeps too little of
the head around the face, the head's outline joins the person (`_with_head`), since hair left in
the background would stay behind when the head turns.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatarcam.render.face import CHEEK_IMAGE_LEFT, CHEEK_IMAGE_RIGHT, CHIN, FOREHEAD, Face

WORK_SIDE = 400  # GrabCut runs at this longest side: its cost grows with pixels, the cut barely changes
ITERATIONS = 5
# The head's outline around the face (centre v, half-axes u and v, in face widths and heights), and
# the share of it beside the face a cut must keep to be believed: on the shared portraits a good cut
# keeps 0.66-1.0 of it; a dark-haired head before a dark backdrop, cut down to its face, 0.27.
HEAD = (0.2, 0.65, 0.8)
HEAD_KEPT_MIN = 0.5


@dataclass(frozen=True)
class _FaceFrame:
    """Where the head is and which way is up, in pixels (roll-aware, for tilted portraits)."""

    center: np.ndarray  # midpoint of forehead top and chin
    up: np.ndarray  # unit vector from chin to forehead, image coordinates (y down)
    right: np.ndarray  # unit vector perpendicular to up, toward image right when upright
    width: float  # cheek to cheek
    height: float  # forehead top to chin

    def to_image(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Points at u face-widths right and v face-heights up from the centre."""
        return (self.center + np.outer(u * self.width, self.right) + np.outer(v * self.height, self.up)).astype(np.float32)


def _face_frame(face: Face) -> _FaceFrame:
    p = face.points[:, :2].astype(np.float64)
    top, chin = p[FOREHEAD], p[CHIN]
    up = top - chin
    height = float(np.linalg.norm(up))
    up /= height
    right = np.array([-up[1], up[0]])  # up rotated a quarter turn clockwise on screen
    # A turned face is foreshortened across; the head behind it is not, so keep a plausible width.
    width = max(float(np.linalg.norm(p[CHEEK_IMAGE_RIGHT] - p[CHEEK_IMAGE_LEFT])), 0.75 * height)
    return _FaceFrame(center=(top + chin) / 2, up=up, right=right, width=width, height=height)


def _ellipse(frame: _FaceFrame, du: float, dv: float, au: float, av: float, n: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return frame.to_image(du + au * np.cos(t), dv + av * np.sin(t))


def person_prior(shape: tuple[int, int], face: Face) -> np.ndarray:
    """Where a person probably is, from the face alone: uint8 HxW, 1 inside head/hair/neck/torso.

    Proportions (in face widths u and heights v from the face centre) are generous on purpose:
    GrabCut can only find person pixels inside the probable region, and it trims what is not.
    """
    h, w = shape
    frame = _face_frame(face)
    prior = np.zeros((h, w), np.uint8)
    # Hair and skull: an ellipse reaching well above the hairline and past the ears.
    cv2.fillPoly(prior, [np.round(_ellipse(frame, 0.0, 0.25, 0.85, 0.95)).astype(np.int32)], 1)
    # Neck, then shoulders from about a face height below the chin, widening off the frame.
    far = 4.0 * max(h, w) / frame.height  # face heights to surely pass the image edge
    u = np.array([0.45, 0.55, 1.2, 1.8, 2.4, 3.0])
    v = np.array([-0.3, -0.85, -1.15, -1.5, -2.1, -far])
    body = frame.to_image(np.concatenate([u, -u[::-1]]), np.concatenate([v, v[::-1]]))
    cv2.fillPoly(prior, [np.round(body).astype(np.int32)], 1)
    return prior


def _trimap(image: np.ndarray, face: Face) -> np.ndarray:
    """GrabCut labels from the face geometry, at the image's own size."""
    h, w = image.shape[:2]
    labels = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    prior = person_prior((h, w), face)
    labels[prior > 0] = cv2.GC_PR_FGD
    # Well away from the prior is background for sure: that anchors the background colour model
    # and keeps a look-alike colour far off (a flag, a curtain) from joining the person.
    frame = _face_frame(face)
    reach = int(max(3, 0.25 * frame.width))
    near_person = cv2.dilate(prior, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
    labels[near_person == 0] = cv2.GC_BGD
    # The neck just under the chin is the person whenever the chin is in the picture; marking it
    # keeps head and body one piece where a dark collar would otherwise cut them apart.
    neck = frame.to_image(np.array([-0.18, 0.18, 0.18, -0.18]), np.array([-0.45, -0.45, -0.8, -0.8]))
    cv2.fillConvexPoly(labels, np.round(neck).astype(np.int32), cv2.GC_FGD)
    # The face itself: the hull of the mesh, pulled in a little from its outline.
    face_mask = face_hull((h, w), face)
    shrink = int(max(1, 0.04 * frame.width))
    face_mask = cv2.erode(face_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink + 1,) * 2))
    labels[face_mask > 0] = cv2.GC_FGD
    return labels


def _keep_connected_to(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The parts of a binary mask that touch the seed region, holes filled."""
    count, parts = cv2.connectedComponents(mask, connectivity=8)
    keep = np.unique(parts[(seed > 0) & (mask > 0)])
    keep = keep[keep > 0]
    out = np.isin(parts, keep).astype(np.uint8)
    # Holes: background regions that do not reach the frame border.
    inverse = (1 - out).astype(np.uint8)
    count, parts = cv2.connectedComponents(inverse, connectivity=4)
    edge_labels = np.unique(np.concatenate([parts[0], parts[-1], parts[:, 0], parts[:, -1]]))
    holes = (inverse > 0) & ~np.isin(parts, edge_labels)
    out[holes] = 1
    return out


def person_mask(image_rgb: np.ndarray, face: Face) -> np.ndarray:
    """Hard person mask, uint8 HxW 0/1 at the image's size (GrabCut at a working size)."""
    h, w = image_rgb.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(image_rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else image_rgb
    small_face = Face(points=face.points * np.float32(scale), blendshapes=face.blendshapes, matrix=face.matrix)
    labels = _trimap(small, small_face)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation is random: keep enrolments reproducible
    # Colour models in Lab: distances there track perceived colour, not the camera's channels.
    cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2LAB), labels, None, bgd, fgd, ITERATIONS,
                cv2.GC_INIT_WITH_MASK)
    mask = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)
    # Smooth away specks and slivers, then keep only what hangs together with the face.
    k = max(3, int(0.04 * _face_frame(small_face).width) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    mask = _keep_connected_to(mask, (labels == cv2.GC_FGD).astype(np.uint8))
    mask = _with_head(mask, small_face)
    if scale < 1:
        mask = (cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.uint8)
    return mask


def face_hull(shape: tuple[int, int], face: Face) -> np.ndarray:
    """uint8 HxW, 1 inside the convex hull of the face mesh."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(face.points[:468, :2]).astype(np.int32)), 1)
    return mask


def head_outline(shape: tuple[int, int], face: Face) -> np.ndarray:
    """uint8 HxW, 1 inside the head's outline around the face (`HEAD`)."""
    centre, half_u, half_v = HEAD
    head = np.zeros(shape, np.uint8)
    cv2.fillPoly(head, [np.round(_ellipse(_face_frame(face), 0.0, centre, half_u, half_v)).astype(np.int32)], 1)
    return head


def head_beside_face(shape: tuple[int, int], face: Face) -> np.ndarray:
    """bool HxW: the head's outline around the face, the face hull taken out: where the hair is."""
    return (head_outline(shape, face) > 0) & (face_hull(shape, face) == 0)


def _with_head(mask: np.ndarray, face: Face) -> np.ndarray:
    """The mask, or with the head's outline added where the cut kept too little of the head
    beside the face: hair left in the background stays behind when the head turns (the face
    moves off it and the fill behind shows), where a head moved whole takes a little backdrop
    along at its rim."""
    beside = head_beside_face(mask.shape, face)
    if not beside.any() or mask[beside].mean() >= HEAD_KEPT_MIN:
        return mask
    return mask | head_outline(mask.shape, face)


def refine_matte(image_rgb: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray:
    """Soft alpha from a hard mask: a guided filter (edges follow the image) inside a band only.

    Far inside and far outside the cut stay exactly 1 and 0, so the filter cannot bleed a person's
    colours into a distant background or punch holes in a face.
    """
    guide = image_rgb.astype(np.float32) / 255.0
    soft = cv2.ximgproc.guidedFilter(guide, mask.astype(np.float32), radius, 1e-3)
    soft = cv2.GaussianBlur(soft, (0, 0), max(0.8, radius / 4))  # a feathered rim, never a jagged one
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    band = (cv2.dilate(mask, kernel) > 0) & (cv2.erode(mask, kernel) == 0)
    matte = mask.astype(np.float32)
    matte[band] = soft[band]
    return np.clip(matte, 0.0, 1.0)


def person_matte(image_rgb: np.ndarray, face: Face) -> np.ndarray:
    """Soft person matte, float32 HxW in 0..1 (1 = person), for an RGB uint8 portrait.

    The face hull is always fully opaque: whatever GrabCut decides at the rim, the part the
    renderer animates most must move as one piece with the rest of the head.
    """
    mask = person_mask(image_rgb, face)
    radius = int(np.clip(0.03 * face.size, 2, 24))
    matte = refine_matte(image_rgb, mask, radius)
    matte[face_hull(mask.shape, face) > 0] = 1.0
    return matte
