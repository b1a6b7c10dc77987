"""The portrait rig: a control mesh over the portrait and how each motion channel moves it.

Built once per profile from the measured face mesh (no model needed afterwards). Geometry
lives in a face-local frame: origin between the outer eye corners, x toward the subject's
left (image right), y down the face, z into the screen, one unit = the distance between the
outer eye corners. Each expression channel is a per-point 3D displacement in that frame
(linear in its weight); head pose rotates the points about a pivot inside the head.
Renderers (CPU and GPU) only read this data; they share no other knowledge of faces.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, fields
from functools import cache
from importlib import resources

import numpy as np

from .. import latent
from . import facemesh as fm

# Rings around the face oval (scale about the oval centre, how far they follow the head):
# hair and ears move with the head, the next ring half way, the outer ring stays put so the
# shoulders and everything beyond do not move.
RINGS = ((1.2, 1.0), (1.45, 0.5), (1.85, 0.0))

# A warp of a flat photo shows less of an out-of-plane turn than it is given: the Face
# Landmarker reads about half of a yaw and 85% of a pitch (76-100% across the shared portraits).
# These gains make the picture show the commanded angle (measured with bench/roundtrip.py).
TURN_GAIN = {"headYaw": 2.1, "headPitch": 1.2, "headRoll": 1.0}
# ... and reads a turned head as rolled against the turn, by about a sixth of the yaw (0.13 on the
# photo, 0.2 on the cartoon): this much roll with the yaw makes it read none.
ROLL_PER_YAW = 0.15
# The yaw drawn, the portrait's own included, eases off past the first of these (degrees) and stays
# within the second: a flat picture turned far from the camera tears at its far cheek, and easing
# sooner hides a frontal face's turn from the judge (docs/decisions.md, "Turns").
DRAWN_YAW = (30.0, 42.0)
RELIEF_PARALLAX = 0.5  # share of the nose's relief that shifts it in a turn (_cylinder_yaw)
FAR_SIDE_FLOOR = 0.9  # the least slope of x over u on a turn's far side (_far_side_spread)
FAR_SIDE_TABLE = 129  # samples of u in 0..1 the far side's spread is worked out on
_FAR_SIDE_U = np.linspace(0.0, 1.0, FAR_SIDE_TABLE)
_FAR_SIDE_PHI = np.arcsin(_FAR_SIDE_U)  # their angles round the cylinder, unturned

# How far a full brow raise lifts the brow, in its height above the lid: as far as the judge reads
# it best before a face looks startled and a painting's lid skin breaks up (docs/decisions.md, "Brows").
BROW_RAISE = 1.25
EYEBALL_RADIUS = 0.45  # eyeball radius in units of eye width: the iris moves r * sin(gaze)

# Pursed lips close in around a small opening whatever the jaw does: over an open jaw, mouthPucker
# brings the lips together by this times sqrt(pucker) of their gap (as mouthClose does), else a
# pursed mouth reads as a shouted "O" (docs/decisions.md, "Pursed lips over an open jaw").
PUCKER_CLOSES = 0.6
# A jaw gain (`Rig.jaw_gain`) lifts the openings of speech, most the small ones a landmarker (and an
# eye) would miss, but never the widest: at JAW_FULL, the jaw's full opening, it drops as on any
# other face, so a lifted mouth never gapes wider than a person's.
JAW_FULL = 1.0

# A portrait photographed mid-word, shouting or smiling with its lips apart rests with them together:
# the rig's points are a closed mouth, and the scene warps the photo to it once (`Rig.photo_points`,
# scene._close_mouth). Of the photo's gap between the lips (when over SEAL_FROM, face-local units,
# about a pixel on a 100 px face: below it the lips read as closed already and the rest is the photo
# itself), the upper lip comes down SEAL_UPPER_SHARE and the lower lip rises the rest, the skin
# below it easing toward the chin's own rise: the jaw carries most of an open mouth's opening, and
# an upper lip pulled down far looks long.
SEAL_FROM = 0.01
SEAL_UPPER_SHARE = 0.2
# The chin rises to SEAL_JAW times the gap at the middle where the photo's jaw is dropped (its
# jawOpen at SEAL_JAW_FULL or more; in proportion below), a shout dropping it further than the lips
# part; where the lips part in a smile, the jaw stays and the lower lip alone comes up. Judged on
# the shouting photo closed (jawOpen, inner-lip gap over the eye distance): 0.8 reads 0.016 / 0.024,
# 1.0 0.013 / 0.014, 1.2 0.010 / 0.007; the smiling astronaut's chin raised as far read a jaw opened
# to 0.5 as jawOpen 0.08 (0.27 with the photo's parted lips kept). The rise fades out toward the
# jaw's angles, SEAL_JAW_WIDTH face-local units each side of the mouth.
SEAL_JAW = 1.2
SEAL_JAW_FULL = 0.5
SEAL_JAW_WIDTH = 0.9
# The lips stop this short of each other (face-local units, a fraction of a pixel): the seam where
# closed lips meet, which takes in what the open lips showed (painted over: scene._hide_mouth).
# The judge read a wider seam as lips apart on a soft photo (the child's: inner-lip gap 0.050 of the
# eye distance at 0.015, 0.030 at 0.005, 0.028 here).
SEAL_LEFT = 0.002
# The channels that say how far apart the lips are: the rest takes them as a closed mouth, whatever
# the photo shows (its seal brings the lips together), so the voice alone opens the mouth. The other
# channels (a smile, a frown, a press, the brows) keep the portrait's own values as its style.
MOUTH_STATE = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLowerDownLeft",
               "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight")

# Per-vertex corrections to the hand-built expression fields, fitted once on MediaPipe's canonical
# face so that its blendshape head reads each channel as commanded (tools/fit_expressions.py).
EXPRESSION_FIT_FILE = "expression_fit.npz"


@cache
def _expression_fit() -> np.ndarray:
    """(44, 468, 3) corrections in face-local units per unit weight (zeros where none is shipped)."""
    out = np.zeros((len(latent.EXPRESSION), 468, 3), np.float32)
    path = resources.files("avatarcam") / "data" / EXPRESSION_FIT_FILE
    if not path.is_file():
        return out
    with path.open("rb") as f, np.load(f, allow_pickle=False) as data:
        for name, correction in zip(data["channels"], data["corrections"], strict=True):
            out[latent.EXPRESSION.index(str(name))] = correction
    return out


@dataclass
class Rig:
    """Everything a renderer needs to move one portrait (image coordinates are the portrait's)."""

    points: np.ndarray      # (M, 3) control points in portrait pixels; 0..477 the face mesh
    local: np.ndarray       # (M, 3) the same points in face-local units
    origin: np.ndarray      # (3,) face-local origin in portrait pixels
    axes: np.ndarray        # (3, 3) columns: face-local x, y, z axes in image axes
    unit: float             # portrait pixels per face-local unit
    bases: np.ndarray       # (44, M, 3) displacement per unit weight of each expression channel
    follow: np.ndarray      # (M,) how much each point follows the head pose (1 head .. 0 fixed)
    pivot: np.ndarray       # (3,) head rotation centre, face-local units
    rest: np.ndarray        # (DIM,) the portrait's own motion latent (pose, gaze, expression)
    iris: np.ndarray        # (2, 3): per eye (right, left) iris centre x, y in portrait px and radius
    face_width: float       # face width in face-local units (for translations in face widths)
    head_radius: float      # half the width of the head and hair, face-local units (yaw cylinder)
    mouth_top: np.ndarray   # (11,) control points on the lower lip's inner edge at rest, moving with the upper jaw
    lids_follow_gaze: np.ndarray  # (M, 3) lid motion per unit of sin(gaze pitch), face-local units
    photo_points: np.ndarray  # (M, 2) where the photo has the control points, its lips apart as photographed:
                              # `points` close them (_seal), and the scene warps the photo to match, once
    # this portrait's yaw gains on TURN_GAIN's, turning to image left and right from its own yaw,
    # measured at enrollment (render.calibrate.turn_gain)
    turn_gain: np.ndarray = field(default_factory=lambda: np.ones(2, np.float32))
    # how much further this portrait's jaw drops for a small jawOpen (`jaw_lift`): the landmarker
    # reads the same drop as less open on some faces (a wide smile reads as raised lips), measured
    # at enrollment (render.calibrate.jaw_gain)
    jaw_gain: float = 1.0

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{f.name: np.asarray(getattr(self, f.name)) for f in fields(self)})
        return buffer.getvalue()


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _bump(x: np.ndarray, centre: float, radius: float) -> np.ndarray:
    """1 at centre, smoothly 0 at `radius` away."""
    return 1.0 - _smoothstep(0.0, radius, np.abs(x - centre))


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Origin, axes and unit of the face-local frame from the 478 landmarks."""
    right, left = points[fm.RIGHT_EYE_OUTER], points[fm.LEFT_EYE_OUTER]
    origin = (right + left) / 2
    x = left - right
    unit = float(np.linalg.norm(x))
    x = x / unit
    y = points[fm.CHIN] - points[fm.FOREHEAD]
    y = y - x * (y @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return origin, np.stack([x, y, z], axis=1), unit


def _lip_geometry(q: np.ndarray) -> dict[str, np.ndarray | float]:
    upper_in, lower_in = q[list(fm.LIPS_UPPER_INNER)], q[list(fm.LIPS_LOWER_INNER)]
    upper_out, lower_out = q[list(fm.LIPS_UPPER_OUTER)], q[list(fm.LIPS_LOWER_OUTER)]
    line = (upper_in + lower_in) / 2
    order = np.argsort(line[:, 0])
    return {
        "line_x": line[order, 0], "line_y": line[order, 1],
        "upper_y": upper_in[order, 1], "lower_y": lower_in[order, 1],
        "centre": line.mean(axis=0),
        "half_width": float((upper_out[-1, 0] - upper_out[0, 0]) / 2),
        "upper_thickness": float(np.median(upper_in[:, 1] - upper_out[:, 1])),
        "lower_thickness": float(np.median(lower_out[:, 1] - lower_in[:, 1])),
    }


def _expression_bases(q: np.ndarray) -> dict[str, np.ndarray]:
    """Displacement fields (M, 3) for each expression channel, in face-local units.

    Amplitudes are set so that weight 1 reads as about 1 on MediaPipe's blendshape scale
    (tuned with bench/roundtrip.py). Fields fall off smoothly so skin stretches, never tears.
    """
    n = len(q)
    x, y, z = q[:, 0], q[:, 1], q[:, 2]
    lips = _lip_geometry(q)
    mx, my = float(lips["centre"][0]), float(lips["centre"][1])
    half = float(lips["half_width"])
    line = np.interp(x, lips["line_x"], lips["line_y"])
    upper_lip = list(fm.LIPS_UPPER_INNER[1:-1]) + list(fm.LIPS_UPPER_OUTER[1:-1])
    lower_lip = list(fm.LIPS_LOWER_INNER[1:-1]) + list(fm.LIPS_LOWER_OUTER[1:-1])
    corners = [fm.LIPS_UPPER_OUTER[0], fm.LIPS_UPPER_OUTER[-1], fm.LIPS_UPPER_INNER[0], fm.LIPS_UPPER_INNER[-1]]
    face_pts = np.arange(n) < 468
    near_mouth = _bump(x, mx, half * 2.2) * _bump(y, my, 0.45) * face_pts
    b: dict[str, np.ndarray] = {}

    def field(dx=0.0, dy=0.0, dz=0.0, w=None) -> np.ndarray:
        out = np.zeros((n, 3))
        out[:, 0], out[:, 1], out[:, 2] = dx, dy, dz
        return out * (w if w is not None else 1.0)[:, None]

    # Jaw: the mandible rotates about the jaw joints; everything below the lip line moves,
    # the lower lip fully, the cheeks partly, the upper lip not at all.
    lateral = _smoothstep(0.6 * half, 1.4 * half, np.abs(x - mx))  # 0 between the corners, 1 beyond
    below = _smoothstep(-0.01, 0.01 + 0.12 * lateral, y - line) * face_pts  # the whole lower lip moves as one
    below *= 1 - 0.55 * _smoothstep(half * 0.9, half * 2.4, np.abs(x - mx))
    below[upper_lip] = 0.0
    below[lower_lip] = 1.0
    below[corners] = 0.3
    # Lips are soft: near the corners the lower lip opens less than the rigid chin below it,
    # which makes the opening an oval rather than a box.
    taper = np.sqrt(np.clip(1 - (np.abs(x - mx) / (1.05 * half)) ** 2, 0.05, 1))  # an elliptical opening
    below *= taper + (1 - taper) * _smoothstep(0.05, 0.3, y - line)
    # The upper lip's sides go down a little with the corners (none mid-lip, as far as the
    # corners beside them): the opening is then a lens between two arches, where an upper lip
    # held still made its top a straight edge ending in dark wedges at the corners.
    below[upper_lip] = float(np.mean(below[corners])) * np.clip(np.abs(x[upper_lip] - mx) / half, 0, 1) ** 2
    pivot_y, pivot_z = 0.2, 0.55
    theta = 0.6  # radians at jawOpen 1: about 4.5 cm between the lips, a wide-open mouth
    # An opening jaw also draws the corners in a little (the mouth narrows as it opens); without
    # it the judge reads the corners, left high above the dropped lower lip, as a smile.
    at_corners = _bump(np.abs(x - mx), half, 0.12) * _bump(y, my, 0.12) * face_pts
    b["jawOpen"] = (field(dy=theta * (pivot_z - z), dz=theta * (y - pivot_y), w=below)
                    + field(dx=-0.05 * np.sign(x - mx), dy=0.04, w=at_corners))
    b["jawForward"] = field(dz=-0.08, dy=0.01, w=below)
    b["jawLeft"] = field(dx=0.09, w=below)
    b["jawRight"] = field(dx=-0.09, w=below)

    # Lips only (not chin): used by closures, presses and rolls.
    lower_only = np.zeros(n)
    lower_only[lower_lip] = 1.0
    lower_only = np.maximum(lower_only, near_mouth * _bump(y, line + lips["lower_thickness"] / 2, 0.12) * (y > line))
    upper_only = np.zeros(n)
    upper_only[upper_lip] = 1.0
    upper_only = np.maximum(upper_only, near_mouth * _bump(y, line - lips["upper_thickness"] / 2, 0.1) * (y < line))
    # How far out from the lips' meeting line a point sits, as a share of the lip (0 at the line,
    # 1 at the lip's outer edge), fading out in the skin beyond: presses and rolls thin the lips
    # by moving their outer edges, not the line where they meet.
    along = _bump(x, mx, 1.15 * half) * face_pts

    def outerness(depth: np.ndarray, thickness: float) -> np.ndarray:
        inside = np.clip(depth / max(thickness, 1e-3), 0, 1)
        return along * np.where(depth <= thickness, inside, 1 - _smoothstep(0.0, 0.15, depth - thickness))

    upper_edge = np.interp(x, lips["line_x"], lips["upper_y"])  # the lips' inner edges (apart in an open mouth)
    lower_edge = np.interp(x, lips["line_x"], lips["lower_y"])
    upper_outer_edge = outerness(upper_edge - y, lips["upper_thickness"]) * (y < upper_edge)
    lower_outer_edge = outerness(y - lower_edge, lips["lower_thickness"]) * (y > lower_edge)
    upper_outer_edge[lower_lip] = 0.0
    lower_outer_edge[upper_lip] = 0.0
    # mouthClose: the lips stay together while the jaw drops, i.e. the lower lip gives back the
    # jaw's motion, fading smoothly into the chin (per unit of jawOpen; clamped to it in deform).
    lip_bottom = line + lips["lower_thickness"]
    to_chin = 1 - _smoothstep(0.0, 1.0, (y - lip_bottom) / np.maximum(float(q[fm.CHIN, 1]) - lip_bottom, 0.1))
    # No cut at the lips' line: the jaw itself fades in across it, and the lower lip's inner points
    # near the corners can sit a hair above the line interpolated between both lips, where a cut
    # left them dropped with the jaw (a dark wedge at the corner of sealed lips).
    lower_lip_to_chin = to_chin * _bump(x, mx, 2.5 * half) * face_pts
    lower_lip_to_chin[upper_lip] = 1.0  # the upper lip's sides, lowered with the jaw, come back up too
    lower_lip_to_chin[lower_lip] = 1.0  # the lips meet along their whole width, not only mid-mouth
    b["mouthClose"] = -b["jawOpen"] * lower_lip_to_chin[:, None]

    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        corner_x = mx + sign * half
        at_corner = _bump(x, corner_x, 0.32) * _bump(y, my, 0.3) * face_pts
        this_side = _smoothstep(-0.05, 0.15, sign * (x - mx)) * face_pts
        cheek = _bump(x, corner_x + sign * 0.08, 0.3) * _bump(y, my - 0.25, 0.25) * face_pts
        b[f"mouthSmile{side}"] = field(dx=sign * 0.09, dy=-0.14, dz=0.03, w=at_corner) + field(dy=-0.04, w=cheek)
        b[f"mouthStretch{side}"] = field(dx=sign * 0.18, dy=0.06, w=at_corner)
        b[f"mouthFrown{side}"] = field(dy=0.08, w=at_corner)
        b[f"mouthDimple{side}"] = field(dx=sign * 0.05, dz=0.04, w=at_corner)
        press = this_side * near_mouth
        b[f"mouthPress{side}"] = (field(dy=0.55 * lips["upper_thickness"], w=upper_outer_edge * press)
                                  + field(dy=-0.55 * lips["lower_thickness"], w=lower_outer_edge * press)
                                  + field(dx=-sign * 0.04, w=at_corner))
        b[f"mouthUpperUp{side}"] = field(dy=-0.06, w=upper_only * this_side)
        b[f"mouthLowerDown{side}"] = field(dy=0.07, w=lower_only * this_side)
        cheek_sq = _bump(x, sign * 0.38, 0.22) * _bump(y, 0.25, 0.18) * face_pts
        b[f"cheekSquint{side}"] = field(dy=-0.12, w=cheek_sq)
        nose_side = _bump(x, sign * 0.22, 0.12) * _bump(y, 0.38, 0.15) * face_pts
        b[f"noseSneer{side}"] = field(dy=-0.05, w=nose_side)

        # Eyes: upper lid points travel toward their lower partners; the skin above follows.
        upper = list(fm.LEFT_EYE_UPPER if sign > 0 else fm.RIGHT_EYE_UPPER)
        lower = list(fm.LEFT_EYE_LOWER if sign > 0 else fm.RIGHT_EYE_LOWER)
        gap = q[lower, 1] - q[upper, 1]            # lid opening per contour point
        eye_x = q[upper, 0]
        order = np.argsort(eye_x)
        gap_at = np.interp(x, eye_x[order], gap[order], left=0.0, right=0.0)
        lid_y = np.interp(x, eye_x[order], q[upper, 1][order])
        low_y = np.interp(x, eye_x[order], q[lower, 1][order])
        eye_cx = float(np.mean(eye_x))
        in_eye_x = _bump(x, eye_cx, 0.22) * face_pts
        brow_y = float(np.mean(q[list(fm.LEFT_BROW if sign > 0 else fm.RIGHT_BROW), 1]))
        reach = 0.5 * max(float(np.min(lid_y)) - brow_y, 0.05)  # the lid skin, never the brow
        above = in_eye_x * (1 - _smoothstep(0.0, reach, lid_y - y)) * (y <= lid_y + 1e-6)
        below_lid = in_eye_x * (1 - _smoothstep(0.0, 0.12, y - low_y)) * (y >= low_y - 1e-6)
        # In a blink the upper lid does the travelling; the lower lid barely rises. Both meet on
        # one smooth curve just above the lower lid: meeting point by point, the closed lid copied
        # every bump of the lower lid's contour (and the offset between paired upper and lower
        # points) into a kinked lash line.
        closed = _closed_lid(q[upper, :2], q[lower, :2])
        lower_order = np.argsort(q[lower, 0])
        low_at = np.interp(x, q[lower, 0][lower_order], q[lower, 1][lower_order])
        inside = (x > eye_x.min()) & (x < eye_x.max())
        blink = (field(dy=1.0, w=above * inside * (closed(x) - lid_y))
                 + field(dy=1.0, w=below_lid * inside * (closed(x) - low_at)))
        blink[upper, 1] = closed(q[upper, 0]) - q[upper, 1]
        blink[lower, 1] = closed(q[lower, 0]) - q[lower, 1]
        b[f"eyeBlink{side}"] = blink
        squint = field(dy=-0.5, w=below_lid * gap_at) + field(dy=0.15, w=above * gap_at)
        squint[lower, 1] = -0.5 * gap
        squint[upper, 1] = 0.15 * gap
        b[f"eyeSquint{side}"] = squint
        wide = field(dy=-0.45, w=above * gap_at)
        wide[upper, 1] = -0.45 * gap
        b[f"eyeWide{side}"] = wide
        # The lids ride on the eyeball: looking down lowers them, looking up raises them. Per
        # unit of sin(gaze pitch), the iris travels EYEBALL_RADIUS eye widths; the lids half that.
        eye_width = float(np.ptp(eye_x))
        follow_gaze = field(dy=0.5 * EYEBALL_RADIUS * eye_width, w=np.maximum(above, below_lid))
        follow_gaze[upper + lower, 1] = 0.5 * EYEBALL_RADIUS * eye_width
        b["_lidsFollowGaze"] = b.get("_lidsFollowGaze", 0) + follow_gaze

        # Brows carry the forehead with them, fading slowly toward the hairline (a fast fade
        # would fold the skin above the brow), and stretch the lid skin below.
        forehead_top = float(np.min(y[:468]))
        fade_up = 1 - 0.6 * _smoothstep(0.0, max(brow_y - forehead_top, 0.1), brow_y - y)
        around_brow = np.where(y < brow_y, fade_up, _bump(y, brow_y, 0.3)) * face_pts
        # The lid skin between the upper lid and the brow takes up all of the brow's travel
        # evenly (a short ramp stretched the lid's crease and lashes into a dark band).
        lid_to_brow = max(float(np.min(lid_y)) - brow_y, 0.08)
        above_eye = _smoothstep(0.0, lid_to_brow, np.minimum(lid_y, 0.0) - y)
        # Inner and outer raises overlap (radius = their spacing) so that both together lift
        # the brow evenly instead of into an M; each side's inner raise stops at the midline.
        this_half = _smoothstep(-0.05, 0.05, sign * x)
        inner = _bump(x, sign * 0.15, 0.4) * this_half * around_brow * above_eye
        outer = _bump(x, sign * 0.55, 0.4) * around_brow * above_eye
        whole = _bump(x, sign * 0.38, 0.32) * around_brow * above_eye
        # A full raise lifts the brow by BROW_RAISE times its height above the lid, stretching the lid
        # skin below it (the renderer inverts that stretch exactly: cpu.EXACT_AFTER).
        raise_by = BROW_RAISE * lid_to_brow
        b[f"browOuterUp{side}"] = field(dy=-raise_by, w=outer)
        b[f"browDown{side}"] = field(dy=0.12, dx=-sign * 0.04, w=whole)
        b.setdefault("_browInner", np.zeros((n, 3)))
        b["_browInner"] += field(dy=-raise_by, w=inner)

    b["browInnerUp"] = b.pop("_browInner")
    inward = -(x - mx) / half * near_mouth * _bump(y, my, 0.35)  # toward the mouth centre, 1 at the corners
    # Funnel: corners in, lips flared out (their red shows more) around a small round opening.
    # The flare moves the lips' outer edges away from the meeting line, the opposite of a roll,
    # through the same smooth falloff into the skin: moving the outer contour points alone
    # folded the skin beside them and the warp tore there. The opening is the upper lip's rise;
    # the lower lip comes up a little, closing on the round opening. Lowered instead (0.05, with
    # the upper lip rising 0.03), it stretched the lower lip beyond what the few-step inverse warp
    # follows over an open jaw: a jagged tear of skin under the mouth at every rounded vowel, and
    # the lower lip gone (more inverse iterations diverge further). The judge read the funnel the
    # better for it (docs/decisions.md, "The funnel"). A rounded mouth narrows: the corners drawn
    # in are what makes the judge read a funnel as a more open mouth, and they stay.
    b["mouthFunnel"] = (field(dx=0.1, w=inward) + field(dy=-0.05, dz=-0.06, w=upper_only)
                        + field(dy=-0.02, dz=-0.06, w=lower_only)
                        + field(dy=-0.5 * lips["upper_thickness"], w=upper_outer_edge)
                        + field(dy=0.5 * lips["lower_thickness"], w=lower_outer_edge))
    b["mouthPucker"] = field(dx=0.2, w=inward) + field(dz=-0.1, w=upper_only + lower_only)
    b["mouthRollUpper"] = field(dy=0.85 * lips["upper_thickness"], w=upper_outer_edge)
    b["mouthRollLower"] = field(dy=-0.85 * lips["lower_thickness"], w=lower_outer_edge)
    b["mouthShrugUpper"] = field(dy=-0.04, w=upper_only)
    b["mouthShrugLower"] = field(dy=-0.05, w=lower_only + 0.5 * below * _bump(y, 1.0, 0.3))
    b["mouthLeft"] = field(dx=0.08, w=near_mouth)
    b["mouthRight"] = field(dx=-0.08, w=near_mouth)
    b["cheekPuff"] = field(dx=0.05 * np.sign(x), w=_bump(np.abs(x), 0.5, 0.2) * _bump(y, 0.65, 0.25) * face_pts)
    b["tongueOut"] = np.zeros((n, 3))  # drawn in the mouth layer, not a deformation

    # Where the seal moves the lips (see _seal): the lower lip and everything below it, the upper lip
    # fading into the skin toward the nose, both fading out past the corners; and how far below the
    # lower lip a point lies on the way to the chin (0 .. 1), which rises further.
    sideways = (1 - _smoothstep(half, 1.8 * half, np.abs(x - mx))) * face_pts  # the mouth's width, then fading
    lower_outer = q[list(fm.LIPS_LOWER_OUTER)]
    lip_edge = np.interp(x, *lower_outer[np.argsort(lower_outer[:, 0]), :2].T)
    # the jaw is one bone: it rises across the whole lower face, fading only toward its angles
    seal_chin = (_smoothstep(0.0, 1.0, (y - lip_edge) / np.maximum(float(q[fm.CHIN, 1]) - lip_edge, 0.1))
                 * _bump(x, mx, SEAL_JAW_WIDTH) * face_pts)
    seal_lower = np.where(y > line, 1.0, 0.0) * sideways
    upper_outer = q[list(fm.LIPS_UPPER_OUTER)]
    upper_lip_edge = np.interp(x, *upper_outer[np.argsort(upper_outer[:, 0]), :2].T)
    seal_upper = np.where(y < line, 1 - _smoothstep(0.0, 0.25, upper_lip_edge - y), 0.0) * sideways
    seal_lower[lower_lip], seal_upper[lower_lip] = 1.0, 0.0
    seal_upper[upper_lip], seal_lower[upper_lip], seal_chin[upper_lip] = 1.0, 0.0, 0.0
    b["_sealLower"], b["_sealUpper"], b["_sealChin"] = seal_lower, seal_upper, seal_chin
    return b


def _closed_lid(upper: np.ndarray, lower: np.ndarray):
    """y(x) of where an eye's lids meet when it closes: 3% of the way from the lower lid to the
    upper one, as a parabola (least squares, the corners held) so the lash line runs smoothly.
    (Meeting higher, at 8%, the judge read Grace Hopper's closed left eye a little less shut:
    blink r 0.91 -> 0.89 in bench/roundtrip.py; a lash line tapered toward the corners cost as much.)"""
    order_u, order_l = np.argsort(upper[:, 0]), np.argsort(lower[:, 0])
    xs = np.linspace(min(upper[:, 0].min(), lower[:, 0].min()), max(upper[:, 0].max(), lower[:, 0].max()), 17)
    lid = np.interp(xs, upper[order_u, 0], upper[order_u, 1])
    low = np.interp(xs, lower[order_l, 0], lower[order_l, 1])
    meet = 0.97 * low + 0.03 * lid
    weights = np.ones_like(xs)
    weights[[0, -1]] = 10.0  # the corners stay where they are
    return np.poly1d(np.polyfit(xs, meet, 2, w=weights))


def _rest_latent(face_pose: tuple[float, float, float], blendshapes: dict[str, float],
                 gaze: tuple[float, float], closed: bool) -> np.ndarray:
    rest = latent.zeros(1)[0]
    for name, value in zip(("headYaw", "headPitch", "headRoll"), face_pose):
        rest[latent.index(name)] = value
    rest[latent.index("gazeYaw")], rest[latent.index("gazePitch")] = gaze
    for name in latent.EXPRESSION:
        rest[latent.index(name)] = 0.0 if closed and name in MOUTH_STATE else blendshapes.get(name, 0.0)
    return rest


def _iris(points: np.ndarray) -> np.ndarray:
    """Per eye (subject's right, left): iris centre x, y and radius in portrait pixels."""
    out = []
    for idx in (fm.RIGHT_IRIS, fm.LEFT_IRIS):
        centre = points[idx[0], :2]
        radius = float(np.mean(np.linalg.norm(points[list(idx[1:]), :2] - centre, axis=1)))
        out.append([centre[0], centre[1], radius])
    return np.array(out, np.float32)


def _gaze_from_iris(q: np.ndarray, iris_local: np.ndarray) -> tuple[float, float]:
    """The portrait's own gaze (yaw, pitch) from where each iris sits in its eye."""
    yaws, pitches = [], []
    for (cx, cy), upper, lower in zip(iris_local, (fm.RIGHT_EYE_UPPER, fm.LEFT_EYE_UPPER),
                                      (fm.RIGHT_EYE_LOWER, fm.LEFT_EYE_LOWER)):
        corners = q[[upper[0], upper[-1]], :2]
        width = float(abs(corners[1, 0] - corners[0, 0]))
        centre = (q[list(upper), :2].mean(0) + q[list(lower), :2].mean(0)) / 2
        r = EYEBALL_RADIUS * width
        yaws.append(np.arcsin(np.clip((cx - centre[0]) / r, -1, 1)))
        pitches.append(np.arcsin(np.clip((cy - centre[1]) / r, -1, 1)))
    return float(np.mean(yaws)), float(np.mean(pitches))


def build_rig(points: np.ndarray, pose: tuple[float, float, float], blendshapes: dict[str, float],
              fitted: bool = True, closed: bool = True) -> Rig:
    """Prepare the rig of a portrait from its 478 landmarks (pixels), head pose and blendshapes.

    `fitted=False` leaves out the shipped expression corrections, `closed=False` rests the mouth as the
    photo shows it instead of closed (`_seal`, MOUTH_STATE): both for refitting the corrections
    on MediaPipe's canonical face, whose lips are apart.
    """
    points = np.asarray(points, np.float64)
    origin, axes, unit = face_frame(points)
    q = (points - origin) @ axes / unit

    oval = q[list(fm.FACE_OVAL)]
    centre = oval.mean(axis=0)
    pivot = np.array([centre[0], centre[1] - 0.1, 0.6])
    rings, follow = [], [np.ones(len(q))]
    for scale, weight in RINGS:
        ring = centre + (oval - centre) * np.array([scale, scale, 1.0])  # hair at the depth of the face edge
        rings.append(ring)
        follow.append(np.full(len(ring), weight))
    local = np.concatenate([q] + rings)
    follow_all = np.concatenate(follow)

    expr = _expression_bases(local)
    lids_follow_gaze = expr.pop("_lidsFollowGaze").astype(np.float32)
    seal_weights = expr.pop("_sealLower"), expr.pop("_sealUpper"), expr.pop("_sealChin")
    bases = np.stack([expr[name] for name in latent.EXPRESSION]).astype(np.float32)
    if fitted:
        bases[:, :468] += _expression_fit()
    bases[:, 468:] *= 0  # iris points are moved by gaze in the eye layer, not by expressions

    # What a portrait's parted lips show (teeth in a smile) belongs to the upper jaw: points at
    # the lower lip's inner edge that move like the upper lip keep it there when the jaw drops.
    # In a closed mouth they coincide with the lips and change nothing.
    upper_inner, lower_inner = list(fm.LIPS_UPPER_INNER), list(fm.LIPS_LOWER_INNER)
    mouth_top = np.arange(len(local), len(local) + len(lower_inner))
    local = np.concatenate([local, q[lower_inner]])
    bases = np.concatenate([bases, bases[:, upper_inner]], axis=1)
    follow_all = np.concatenate([follow_all, np.ones(len(lower_inner))])
    lids_follow_gaze = np.concatenate([lids_follow_gaze, np.zeros((len(lower_inner), 3), np.float32)])
    seal_weights = [np.r_[w, np.zeros(len(lower_inner))] for w in seal_weights]  # mouth_top: set by _seal
    photo_points = (origin + unit * local @ axes.T)[:, :2]
    if closed:
        jaw_share = float(np.clip(blendshapes.get("jawOpen", 0.0) / SEAL_JAW_FULL, 0.0, 1.0))
        local = local + _seal(local, axes, *seal_weights, mouth_top, jaw_share)

    all_points = origin + unit * local @ axes.T
    iris = _iris(points)
    iris_local = ((np.c_[iris[:, :2], np.zeros(2)] - origin) @ axes / unit)[:, :2]
    rest = _rest_latent(pose, blendshapes, _gaze_from_iris(q, iris_local), closed)
    face_width = float(oval[:, 0].max() - oval[:, 0].min())
    head_radius = 1.02 * float(np.abs(local[follow_all >= 1.0, 0] - pivot[0]).max())
    return Rig(points=all_points.astype(np.float32), local=local.astype(np.float32), origin=origin.astype(np.float32),
               axes=axes.astype(np.float32), unit=unit, bases=bases, follow=follow_all.astype(np.float32),
               pivot=pivot.astype(np.float32), rest=rest, iris=iris, face_width=face_width,
               head_radius=head_radius, mouth_top=mouth_top, lids_follow_gaze=lids_follow_gaze,
               photo_points=photo_points.astype(np.float32))


def _seal(local: np.ndarray, axes: np.ndarray, lower: np.ndarray, upper: np.ndarray, chin: np.ndarray,
          mouth_top: np.ndarray, jaw_share: float) -> np.ndarray:
    """(M, 3) the displacement that closes the photo's parted lips, face-local units: of each
    column's gap the upper lip comes down SEAL_UPPER_SHARE and the lower lip rises the rest, with
    everything below it (`lower`) easing toward the chin's rise (`chin`: 0 at the lower lip, 1 at
    the chin): `jaw_share` of SEAL_JAW times the middle's gap; `upper` says how much each point comes
    down with the upper lip. The motion is straight down the face as the picture shows it (`axes`: a
    face tilted in depth shows less of it), so points in one column keep their order. What the open lips
    showed (`mouth_top`, kept with the upper jaw) folds away onto the lower lip's edge, so the closed
    mouth hides it and an opening jaw reveals the mouth layer. Zero for lips closed in the photo
    (SEAL_FROM)."""
    upper_inner, lower_inner = list(fm.LIPS_UPPER_INNER), list(fm.LIPS_LOWER_INNER)
    down = axes[:2, 1] / max(float(np.linalg.norm(axes[:2, 1])), 1e-6)
    seen = axes[:2].T @ down  # how far a local displacement shows down the face in the picture
    gap = np.maximum((local[lower_inner] - local[upper_inner]) @ seen, 0.0)
    if gap.max() <= SEAL_FROM:
        return np.zeros_like(local, np.float32)
    columns = (local[lower_inner, 0] + local[upper_inner, 0]) / 2
    order = np.argsort(columns)
    shut = np.maximum(gap - SEAL_LEFT, 0.0)  # how far the lips travel to meet, column by column
    shut_at = np.interp(local[:, 0], columns[order], shut[order])  # ... and at each point's place across
    rises = (1 - SEAL_UPPER_SHARE) * shut_at
    rises += chin * (jaw_share * SEAL_JAW * float(gap.max()) - rises)
    out = np.zeros_like(local, np.float64)
    out[:, 1] = (upper * SEAL_UPPER_SHARE * shut_at - lower * rises) / seen[1]
    # the inner edges meet column by column (an oval opening's lower edge lies nearer the middle)
    out[upper_inner, 1] = SEAL_UPPER_SHARE * shut / seen[1]
    out[lower_inner, 1] = -(1 - SEAL_UPPER_SHARE) * shut / seen[1]
    out[mouth_top] = local[lower_inner] + out[lower_inner] - local[mouth_top]
    return out.astype(np.float32)


def head_scale(rig: Rig, frame: np.ndarray):
    """How much larger than in the portrait the head is drawn in `frame` (headLogScale)."""
    scale = latent.index("headLogScale")
    return np.exp(frame[scale] - rig.rest[scale])


def jaw_lift(gain: float, jaw: float) -> float:
    """The factor on the jaw's drop at jawOpen `jaw` for a rig of `gain`: `gain` for the smallest
    openings, falling to 1 at JAW_FULL (and under 1 past it), so the drop is gain * jaw at first
    and JAW_FULL at JAW_FULL."""
    return gain / (1.0 + (gain - 1.0) * max(jaw, 0.0) / JAW_FULL)


def deform(rig: Rig, frame: np.ndarray) -> np.ndarray:
    """Control point positions (M, 2) in portrait pixels for one motion frame (absolute latent).

    Expressions and pose are applied as the difference from the portrait's own (rig.rest).
    """
    delta = frame[latent.EXPRESSION_SLICE] - rig.rest[latent.EXPRESSION_SLICE]
    close = latent.index("mouthClose") - latent.EXPRESSION_SLICE.start
    pucker = latent.index("mouthPucker") - latent.EXPRESSION_SLICE.start
    jaw = max(float(frame[latent.index("jawOpen")]), 0.0)
    delta[close] = min(delta[close], jaw)  # lips can only close an open jaw
    delta[close] += PUCKER_CLOSES * np.sqrt(np.clip(delta[pucker], 0.0, 1.0)) * max(jaw - delta[close], 0.0)
    # the jaw's lift scales its drop and the lips' closing of it alike, so closed lips stay closed
    delta[[latent.index("jawOpen") - latent.EXPRESSION_SLICE.start, close]] *= jaw_lift(rig.jaw_gain, jaw)
    local = rig.local + np.tensordot(delta, rig.bases, axes=1)
    pitch = latent.index("gazePitch")
    local += (np.sin(frame[pitch]) - np.sin(rig.rest[pitch])) * rig.lids_follow_gaze
    cam = local @ rig.axes.T  # image axes, face units, relative to origin

    rest = {n: float(rig.rest[latent.index(n)]) for n in TURN_GAIN}
    seen_yaw = float(frame[latent.index("headYaw")]) - rest["headYaw"]
    gains = dict(TURN_GAIN, headYaw=TURN_GAIN["headYaw"] * float(rig.turn_gain[int(seen_yaw > 0)]))
    target = {n: rest[n] + gains[n] * (float(frame[latent.index(n)]) - rest[n]) for n in gains}
    target["headYaw"] = float(_soft_limit(np.float64(target["headYaw"]), *np.radians(DRAWN_YAW)))
    target["headRoll"] += ROLL_PER_YAW * seen_yaw
    # Yaw turns the head about its own vertical axis, in the face's frame; pitch and roll then
    # tilt it in the image's.
    turned = rig.pivot + _cylinder_yaw(local - rig.pivot, target["headYaw"] - rest["headYaw"], rig.head_radius,
                                       seen_yaw)
    tilt = (latent.rotation(0.0, target["headPitch"], target["headRoll"])
            @ latent.rotation(0.0, rest["headPitch"], rest["headRoll"]).T)
    pivot = rig.axes @ rig.pivot
    scale = head_scale(rig, frame)
    shift = np.array([frame[latent.index("headX")], frame[latent.index("headY")], 0.0]) * rig.face_width
    posed = pivot + scale * (turned @ rig.axes.T - pivot) @ tilt.T + shift
    moved = cam + rig.follow[:, None] * (posed - cam)
    return (rig.origin[:2] + rig.unit * moved[:, :2]).astype(np.float32)


def _cylinder_yaw(p: np.ndarray, angle: float, radius: float, seen: float) -> np.ndarray:
    """Turn points (relative to the head's axis, face frame) by `angle` about the vertical axis,
    sideways; their depth turns by `seen`, the turn the picture is to show (`angle` is larger:
    TURN_GAIN). Depth matters only to the pitch and roll that follow, which tilt it into the
    picture: the larger turn's depth would lift one cheek and drop the other, read as roll
    (4-9 degrees at 20 of yaw and 12 of pitch).

    The head is taken as a cylinder of `radius` plus each point's own relief (the nose stands
    out of it). A rigid rotation of the measured mesh would fold the far cheek over itself, which
    a warp cannot show; on the cylinder the far side bunches up toward the silhouette instead,
    as it does on screen, and nothing crosses over.
    """
    if angle == 0.0:
        return p
    u = np.clip(p[:, 0] / radius, -1.0, 1.0)
    phi = np.arcsin(u)
    relief = p[:, 2] + radius * np.cos(phi)  # < 0: in front of the cylinder's surface
    # Sideways, what lies behind the surface (the face's sides, the cylinder being as wide as
    # the hair) stays on it, and what stands in front (the nose) shifts by half its relief: their
    # full parallax would slide the far cheek and the nose's far flank over the skin beside
    # them, which a warp shows as folds (a tenth as many folded triangles at 20 degrees). Depth
    # keeps the whole relief, for the pitch that follows.
    sideways = np.where(relief > 0, 0.0, RELIEF_PARALLAX * relief)

    out = p.copy()
    out[:, 0] = radius * _far_side_spread(u, angle, np.sin(_around(phi, angle))) - sideways * np.sin(angle)
    out[:, 2] = -radius * np.cos(_around(phi, seen)) + relief * np.cos(seen)
    return out


def _around(phi: np.ndarray, turn: float) -> np.ndarray:
    """Angles round the cylinder after `turn`, easing toward its sides without reaching them."""
    return _soft_limit(phi + turn, knee=0.3 * np.pi, limit=0.49 * np.pi)


def _far_side_spread(u: np.ndarray, angle: float, x: np.ndarray) -> np.ndarray:
    """`x` (on a unit cylinder, of points at `u`) with the far side's squeeze spread evenly: every
    step toward the limb at least FAR_SIDE_FLOOR of its width in the picture, the far side then
    scaled back to its span (the head's axis to the silhouette), so the silhouette stays. The cylinder
    alone squeezes the last of the far cheek and whatever lies beside it (ear, hair) onto a pixel
    or two at the limb, a hard straight cut against the backdrop (docs/decisions.md, "Turns")."""
    side = np.sign(angle)
    table_x = side * np.sin(_around(side * _FAR_SIDE_PHI, angle))
    steps = np.maximum(np.diff(table_x), FAR_SIDE_FLOOR * _FAR_SIDE_U[1])
    spread = np.concatenate([[0.0], np.cumsum(steps)])
    spread = table_x[0] + spread * (table_x[-1] - table_x[0]) / spread[-1]
    far = u * side > 0
    out = x.copy()
    out[far] = side * np.interp(side * u[far], _FAR_SIDE_U, spread)
    return out


def _soft_limit(u: np.ndarray, knee: float, limit: float) -> np.ndarray:
    """u unchanged up to +-knee, then easing toward +-limit without reaching it (no two points
    of the far side land on the same spot, so the warp stays invertible)."""
    over = np.maximum(np.abs(u) - knee, 0.0)
    return np.sign(u) * np.minimum(np.abs(u), knee + (limit - knee) * np.tanh(over / (limit - knee)))
