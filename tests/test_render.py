"""The renderer, judged by an independent measurer (MediaPipe's Face Landmarker) on real portraits."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from avatarcam import latent
from avatarcam.config import Settings
from avatarcam.profiles import load_profile
from avatarcam.render import facemesh as fm
from avatarcam.render import open_renderer
from avatarcam.render import cpu, warp
from avatarcam.render import rig as rig_module
from avatarcam.render.cpu import CpuRenderer
from avatarcam.render.eyes import crescent, eye_geometry
from avatarcam.render.masks import coverage
from avatarcam.render.mouth import mouth_geometry
from avatarcam.render.rig import Rig, build_rig
from avatarcam.render.scene import DETAIL_LIMIT, EDGE_FADE, build_scene, framing
from avatarcam.render.warp import fill_from_neighbours


def _portrait(portrait_parts, filename: str):
    """A portrait with a rough person matte and plate, and its rig."""
    image, face, matte, plate = portrait_parts(filename)
    return image, matte, plate, build_rig(face.points, face.pose(), face.blendshapes)


@pytest.fixture(scope="module")
def hopper(portrait_parts):
    return _portrait(portrait_parts, "grace_hopper.jpg")


@pytest.fixture(scope="module")
def renderer(hopper):
    image, matte, plate, rig = hopper
    return CpuRenderer(build_scene(image, matte, plate, rig, (512, 512)))


@pytest.fixture(scope="module")
def astronaut_parts(portrait_parts):
    return _portrait(portrait_parts, "astronaut.png")


@pytest.fixture(scope="module")
def cartoon_parts(portrait_parts):
    return _portrait(portrait_parts, "cartoon_boy.jpg")


@pytest.fixture(scope="module")
def astronaut(astronaut_parts):
    return CpuRenderer(build_scene(*astronaut_parts, (512, 512)))


@pytest.fixture(scope="module")
def hopper_720p(hopper):
    return CpuRenderer(build_scene(*hopper, (1280, 720)))


@pytest.fixture(scope="module")
def astronaut_720p(astronaut_parts):
    return CpuRenderer(build_scene(*astronaut_parts, (1280, 720)))  # eyes about 43 px wide


# The shut lid's measures below count pixels across the lash line and the lid; they were set on
# eyes about 60 px wide, as 1080p frames the head (at 720p the webcam framing makes them 43 px).
@pytest.fixture(scope="module")
def hopper_1080p(hopper):
    return CpuRenderer(build_scene(*hopper, (1920, 1080)))


@pytest.fixture(scope="module")
def astronaut_1080p(astronaut_parts):
    return CpuRenderer(build_scene(*astronaut_parts, (1920, 1080)))


def _with(rig: Rig, **values: float) -> np.ndarray:
    frame = rig.rest.copy()
    for name, value in values.items():
        frame[latent.index(name)] = value
    return frame


def _measure(judge, frame: np.ndarray):
    faces = judge.detect(frame)
    assert faces, "the judge found no face in the rendered frame"
    return faces[0]


def test_rest_frame_is_the_portrait_framed_without_bars(renderer):
    frame = renderer.render(renderer.scene.rig.rest)
    assert frame.shape == (512, 512, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame, renderer.scene.scene)
    for edge in (frame[0], frame[-1], frame[:, 0], frame[:, -1]):
        assert edge.mean() > 10, "black bars at the frame edge"


def test_wide_frame_fills_16_9_without_black_bars(hopper, hopper_720p):
    image, matte, plate, rig = hopper
    frame = hopper_720p.render(_with(rig, jawOpen=0.4))
    assert frame.shape == (720, 1280, 3)
    columns = frame.reshape(720, 1280 * 3).T.reshape(1280, -1)
    assert (columns.max(axis=1) > 20).all(), "a column of the 16:9 frame is black"
    # Beyond the portrait's left edge (the flag) the backdrop continues its colours softly: the
    # flag's stripes and stars are not carried across as bands, which copying the edge did.
    left = int(np.ceil(framing(rig.points, image.shape[1::-1], (1280, 720))[0, 2]))
    assert left > 40
    edge = frame[:, left + 4].astype(np.float32)
    beyond = frame[:, :20].astype(np.float32).mean(axis=1)
    assert np.abs(np.diff(beyond, axis=0)).max() < 4  # smooth down the frame
    assert (beyond.std(axis=0) < 0.5 * edge.std(axis=0)).all()


def test_behind_the_person_is_the_photograph_where_the_picture_does_not_move(hopper):
    # The plate's fill reaches past the matte's rim; where a matte misses part of the person (this
    # rough hull round the face misses the hat's crown and the neck) it smeared them in every frame.
    image, matte, plate, rig = hopper
    scene = build_scene(image, matte, plate, rig, (512, 512))
    renderer = CpuRenderer(scene)
    flags = cv2.INTER_CUBIC if scene.to_output[0, 0] > 1 else cv2.INTER_AREA  # as build_scene warps
    photo = cv2.warpAffine(image, scene.to_output, scene.size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    # where the frame shows the photograph itself: not its edge, which fades into the backdrop
    fade = 2 * int(np.ceil(EDGE_FADE * scene.size[1])) + 3
    inside = cv2.erode(cv2.warpAffine(np.ones(image.shape[:2], np.uint8), scene.to_output, scene.size),
                       np.ones((fade, fade), np.uint8)) > 0
    plate_o = cv2.warpAffine(plate, scene.to_output, scene.size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    filled = inside & (np.abs(plate_o.astype(int) - photo).max(axis=-1) > 20)  # where the plate is not the photo
    assert filled.sum() > 2000
    rest = renderer.render(rig.rest)
    assert np.abs(rest.astype(int) - photo)[inside].max() <= 1
    # a speaking mouth moves the chin, not the top of the head: there the photograph stays
    speaking = renderer.render(_with(rig, jawOpen=0.6, mouthFunnel=0.3))
    brows = int(scene.rest_points[list(fm.RIGHT_BROW + fm.LEFT_BROW), 1].min())
    above = filled.copy()
    above[brows:] = False
    assert above.sum() > 500
    assert np.abs(speaking.astype(int) - photo)[above].max() <= 2  # rounding of matte and compositing


def test_same_motion_gives_the_same_picture(renderer):
    frame = _with(renderer.scene.rig, jawOpen=0.5, headYaw=0.1, eyeBlinkLeft=0.6)
    assert np.array_equal(renderer.render(frame), renderer.render(frame))


def test_far_from_the_head_nothing_moves(renderer):
    rig = renderer.scene.rig
    moved = renderer.render(_with(rig, jawOpen=0.7, headYaw=rig.rest[0] + 0.2, headRoll=rig.rest[2] + 0.1))
    x0, y0, x1, y1 = renderer.scene.roi
    outside = np.ones(moved.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert outside.any()
    assert np.array_equal(moved[outside], renderer.scene.scene[outside])


def _forward(scene, moved: np.ndarray, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the piecewise-affine warp takes source points `src` (ROI pixels): each moves with the
    barycentric mean of its rest triangle's corners' motion. Also whether its triangle was found
    (the triangle-under-each-pixel table can miss by a pixel at an edge)."""
    mesh = scene.mesh
    h, w = mesh.at.shape
    t = mesh.at[np.clip(src[:, 1], 0, h - 1).astype(int), np.clip(src[:, 0], 0, w - 1).astype(int)]
    a, b, c = (mesh.rest[mesh.triangles[t, k]] for k in range(3))
    e1, e2, d = b - a, c - a, src - a
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    l1 = (d[:, 0] * e2[:, 1] - d[:, 1] * e2[:, 0]) / area
    l2 = (e1[:, 0] * d[:, 1] - e1[:, 1] * d[:, 0]) / area
    weights = np.stack([1 - l1 - l2, l1, l2], 1)
    motion = np.zeros_like(mesh.rest)
    motion[:len(mesh.skin)] = moved[mesh.skin]
    return src + np.einsum("nk,nkc->nc", weights, motion[mesh.triangles[t]]), weights.min(axis=1) > -1e-3


def test_the_warp_is_inverted_exactly_where_it_stretches_the_picture(renderer, monkeypatch):
    """Lips sealed over a dropped jaw stretch the skin between lip and chin to three times its
    length. There the fixed-point iteration alone oscillates and sampled the wrong place by 8 px
    (a band of streaks over the chin); solved through the mesh's triangles, a pixel samples where
    the warp comes from."""
    scene = renderer.scene
    frame = _with(scene.rig, jawOpen=0.7, mouthClose=0.7)
    points = scene.points(frame)
    moved = points - scene.rest_points
    lip, chin = points[fm.LIPS_LOWER_OUTER[len(fm.LIPS_LOWER_OUTER) // 2]] - scene.roi[:2], points[fm.CHIN] - scene.roi[:2]
    y, x = np.mgrid[int(lip[1]) + 3:int(chin[1]) - 3, int(lip[0]) - 25:int(lip[0]) + 25]
    targets = np.stack([x.ravel(), y.ravel()], 1).astype(np.float32)

    def error() -> np.ndarray:
        src = targets - renderer._inverse_shift(moved)[y.ravel(), x.ravel()]
        landed, found = _forward(scene, moved, src)
        return np.linalg.norm(landed - targets, axis=1)[found]

    exact = error()
    assert np.median(exact) < 0.05 and np.mean(exact < 0.5) > 0.85, np.percentile(exact, [50, 85, 95])
    monkeypatch.setattr(cpu, "EXACT_AFTER", np.inf)  # the iteration alone
    assert np.median(error()) > 2.0


def test_each_triangle_maps_back_to_its_rest_place_and_folds_are_marked(renderer):
    mesh, scene = renderer.scene.mesh, renderer.scene
    moved = scene.points(_with(scene.rig, jawOpen=0.6, headYaw=scene.rig.rest[0] + 0.15)) - scene.rest_points
    maps = mesh.inverse_affines(moved)
    corners = mesh.rest.copy()
    corners[:len(mesh.skin)] += moved[mesh.skin]
    q = corners[mesh.triangles]  # (T, 3, 2) where the motion put each corner
    back = np.stack([maps[:, None, 0] * q[..., 0] + maps[:, None, 1] * q[..., 1] + maps[:, None, 2],
                     maps[:, None, 3] * q[..., 0] + maps[:, None, 4] * q[..., 1] + maps[:, None, 5]], -1)
    unfolded = maps[:, 6] == 0
    assert unfolded.mean() > 0.85  # an open mouth folds the seam between the lips, a dropped chin over the neck
    np.testing.assert_allclose(back[unfolded], mesh.rest[mesh.triangles][unfolded], atol=0.02)
    # a corner pushed across its triangle's far edge turns it over, and the triangles sharing a corner
    # with it are marked too, nothing further; one that only collapses to a sliver is not
    t = int(np.flatnonzero((mesh.triangles < len(mesh.skin)).all(axis=1))[len(mesh.triangles) // 3])
    a, b, c = mesh.triangles[t]
    pushed = np.zeros_like(moved)
    far_side = mesh.rest[b] + mesh.rest[c] - mesh.rest[a]  # a mirrored through the middle of b-c
    pushed[mesh.skin[a]] = far_side - mesh.rest[a]
    marked = mesh.inverse_affines(pushed)[:, 6] > 0
    around_a = mesh.triangles[(mesh.triangles == a).any(axis=1)]  # the only ones the push can turn over
    beside = np.isin(mesh.triangles, around_a).any(axis=1)
    assert marked[t] and not marked[~beside].any()
    pushed[mesh.skin[a]] = 0.5 * (mesh.rest[b] + mesh.rest[c]) - mesh.rest[a]  # onto the edge: area 0
    assert not mesh.inverse_affines(pushed)[:, 6].any()


def test_where_the_mesh_folds_the_layer_nearest_the_viewer_shows():
    """A corner pushed past its neighbours folds the mesh: where two triangles now cover a point,
    the one whose corners follow the head more (the face over the rings behind it) gives the source."""
    from scipy.spatial import Delaunay

    from avatarcam.render.scene import WarpMesh

    ring = [(0, 0), (40, 0), (80, 0), (80, 40), (80, 80), (40, 80), (0, 80), (0, 40)]
    tri = Delaunay(np.array(ring + [(40, 40), (60, 40)], float))  # a "face" point and one beside it
    mesh = WarpMesh.of(tri, np.arange(10), np.r_[np.full(8, 0.2), 1.0, 0.6], (0, 0, 80, 80))
    moved = np.zeros((10, 2), np.float32)
    moved[8] = (28, 0)  # the face point pushed past its neighbour at (60, 40)
    affines = mesh.inverse_affines(moved)
    assert affines[:, 7].any()  # a fold
    layers = warp.fold_layers(affines)
    ys, xs = np.mgrid[2:78:3, 2:78:3]
    targets = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    src = np.full_like(targets, -1.0)
    open_cells = warp.solve_folds(src, targets, np.arange(len(targets)), affines, mesh)
    overlapped = 0
    for i, q in enumerate(targets):  # each point against every layer that may show, by hand
        best, expected, covering = -1.0, None, 0
        for t in layers:
            a = affines[t]
            p = np.array([a[0] * q[0] + a[1] * q[1] + a[2], a[3] * q[0] + a[4] * q[1] + a[5]])
            b = mesh.to_corners[t, :4].reshape(2, 2) @ (p - mesh.to_corners[t, 4:])
            inside = b.min() >= -1e-4 and 1 - b.sum() >= -1e-4
            covering += inside
            if inside and mesh.depth[t] > best:
                best, expected = mesh.depth[t], p
        overlapped += covering > 1
        if expected is None:
            assert i in open_cells
        else:
            np.testing.assert_allclose(src[i], expected, atol=1e-3)
    assert overlapped > 5  # points two layers cover, where the choice matters


def test_cells_left_open_take_their_nearest_solved_neighbours():
    grid = np.arange(6, dtype=np.float32)[:, None, None] * np.ones((6, 5, 2), np.float32)  # each cell holds its row
    grid[1:4] = -100.0
    fill_from_neighbours(grid, np.arange(1 * 5, 4 * 5))  # rows 1 to 3 left open
    # row 1 takes row 0's value, row 3 row 4's, pass one; row 2 the mean of both, pass two
    np.testing.assert_allclose(grid[1], 0.0)
    np.testing.assert_allclose(grid[3], 4.0)
    np.testing.assert_allclose(grid[2], 2.0)
    far = np.zeros((2 * warp.FILL_PASSES + 3, 1, 2), np.float32)
    far[1:-1] = 7.0
    fill_from_neighbours(far, np.arange(1, len(far) - 1))
    assert far[len(far) // 2, 0, 0] == 7.0  # out of every pass's reach: it keeps its own
    assert far[1, 0, 0] == 0.0


@pytest.mark.parametrize("portrait,channel", [
    ("renderer", "jawOpen"), ("renderer", "eyeBlinkLeft"), ("renderer", "eyeBlinkRight"), ("renderer", "mouthPucker"),
    ("renderer", "browOuterUpLeft"), ("renderer", "browDownRight"), ("renderer", "mouthStretchRight"),
    ("astronaut", "browInnerUp"), ("astronaut", "eyeBlinkLeft"), ("astronaut", "jawOpen"),
    ("renderer", "browInnerUp"), ("renderer", "mouthPressLeft"), ("renderer", "mouthPressRight"),
])
def test_judge_sees_a_commanded_expression_grow(request, judge, portrait, channel):
    renderer = request.getfixturevalue(portrait)
    rig = renderer.scene.rig
    measured = [_measure(judge, renderer.render(_with(rig, **{channel: v}))).blendshapes[channel]
                for v in (rig.rest[latent.index(channel)], 0.5, 1.0)]
    assert measured[2] > measured[0] + 0.1, f"{channel}: judge read {measured}"
    assert measured[1] >= measured[0] - 0.02


def test_smile_acts_on_the_commanded_side(renderer, judge):
    rig = renderer.scene.rig
    left = _measure(judge, renderer.render(_with(rig, mouthSmileLeft=1.0))).blendshapes
    right = _measure(judge, renderer.render(_with(rig, mouthSmileRight=1.0))).blendshapes
    assert left["mouthSmileLeft"] > left["mouthSmileRight"] + 0.1
    assert right["mouthSmileRight"] > right["mouthSmileLeft"] + 0.1


@pytest.mark.parametrize("channel,index,degrees", [("headYaw", 0, 12), ("headYaw", 0, -12), ("headPitch", 1, 8),
                                                    ("headRoll", 2, 10), ("headRoll", 2, -10)])
def test_judge_reads_the_commanded_head_turn(renderer, judge, channel, index, degrees):
    rig = renderer.scene.rig
    base = _measure(judge, renderer.render(rig.rest)).pose()
    turned = _measure(judge, renderer.render(_with(rig, **{channel: rig.rest[index] + np.radians(degrees)}))).pose()
    change = np.degrees(turned[index] - base[index])
    assert change == pytest.approx(degrees, abs=4.0)


@pytest.mark.parametrize("yaw", [-20, 20])
def test_a_turned_head_that_nods_does_not_roll(renderer, judge, yaw):
    """Yaw and pitch together: the judge reads no roll that was not commanded (the yaw's depth
    once followed the larger turn TURN_GAIN gives the picture, and the pitch tilted it into 8-9
    degrees of roll; 0.5-1.8 now)."""
    rig = renderer.scene.rig
    base = _measure(judge, renderer.render(rig.rest)).pose()
    turned = _measure(judge, renderer.render(_with(rig, headYaw=rig.rest[0] + np.radians(yaw),
                                                   headPitch=rig.rest[1] + np.radians(12)))).pose()
    assert abs(np.degrees(turned[2] - base[2])) < 4.0


@pytest.mark.parametrize("angle", [0.35, -0.35])
def test_a_turn_spreads_the_far_side_evenly_and_keeps_the_silhouette(angle):
    # A row of points on the head's cylinder turned by about 20 degrees. On the cylinder alone the
    # far side bunches up at the limb (its last steps a fifth of its mean): the far cheek and
    # the ear and hair beside it meet the backdrop in one hard straight cut.
    radius = 100.0
    u = np.linspace(-1.0, 1.0, 401)
    points = np.stack([u * radius, np.zeros_like(u), -radius * np.sqrt(1.0 - u ** 2)], axis=1)
    x = rig_module._cylinder_yaw(points, angle, radius, angle)[:, 0]
    assert np.all(np.diff(x) > 0)  # nothing crosses over
    side = np.sign(angle)
    spread = side * u > 0
    steps = np.abs(np.diff(x[spread]))
    assert steps.min() > 0.8 * steps.mean()
    bare = radius * np.sin(rig_module._around(np.arcsin(u), angle))
    limb = -1 if side > 0 else 0
    assert x[limb] == pytest.approx(bare[limb])  # the silhouette stays where the cylinder puts it
    assert np.allclose(x[~spread], bare[~spread])  # the near side as before


def test_gaze_moves_the_irises_the_commanded_way(renderer, judge):
    rig = renderer.scene.rig
    looks = {}
    for yaw in (-0.35, 0.35):
        shapes = _measure(judge, renderer.render(_with(rig, gazeYaw=yaw))).blendshapes
        # Looking toward image right: the subject's left eye looks out, the right eye looks in.
        looks[yaw] = shapes["eyeLookOutLeft"] + shapes["eyeLookInRight"] - shapes["eyeLookInLeft"] - shapes["eyeLookOutRight"]
    assert looks[0.35] > looks[-0.35] + 0.3, looks


def test_renderer_uses_current_rig_code_and_what_enrollment_measured(tmp_path):
    import dataclasses
    import shutil

    from avatarcam.profiles import BUNDLED_DIR
    from avatarcam.render import RIG_FILE, prepare_rig
    from avatarcam.render.calibrate import JAW_GAIN_RANGE

    copy = tmp_path / "default"
    shutil.copytree(BUNDLED_DIR / "default", copy)
    current = prepare_rig(load_profile(copy, Settings()))
    rest = current.rest.copy()
    rest[:3] += 0.05  # a pose the landmarks alone would not give
    stale = dataclasses.replace(current, bases=np.zeros_like(current.bases), rest=rest,
                                turn_gain=np.array([0.8, 1.3], np.float32), jaw_gain=1.6)
    (copy / RIG_FILE).write_bytes(stale.to_bytes())
    rebuilt = prepare_rig(load_profile(copy, Settings()))
    assert np.array_equal(rebuilt.bases, current.bases)
    assert np.allclose(rebuilt.rest[:3], rest[:3])
    assert np.allclose(rebuilt.turn_gain, [0.8, 1.3])
    assert rebuilt.jaw_gain == pytest.approx(1.6)
    # a gain measured when rigs were lifted less comes back as the least every rig has now
    (copy / RIG_FILE).write_bytes(dataclasses.replace(stale, jaw_gain=1.0).to_bytes())
    assert prepare_rig(load_profile(copy, Settings())).jaw_gain == pytest.approx(JAW_GAIN_RANGE[0])


def test_the_jaw_gain_lifts_small_openings_not_the_widest_and_sealed_lips_stay_sealed(hopper):
    import dataclasses

    from avatarcam.render.rig import JAW_FULL, deform

    rig = hopper[3]
    strong = dataclasses.replace(rig, jaw_gain=2.0)
    rest = {r.jaw_gain: deform(r, r.rest)[fm.CHIN, 1] for r in (rig, strong)}

    def drop(r, jaw):
        return deform(r, _with(rig, jawOpen=jaw))[fm.CHIN, 1] - rest[r.jaw_gain]

    assert drop(strong, 0.1) == pytest.approx(2 / (1 + 0.1 / JAW_FULL) * drop(rig, 0.1), rel=0.02)  # nearly twice
    assert drop(strong, JAW_FULL) == pytest.approx(drop(rig, JAW_FULL), rel=0.02)  # the widest as on any face
    assert drop(rig, 0.1) < drop(strong, 0.1) < drop(strong, 0.4) < drop(strong, JAW_FULL)  # still in order
    for r in (rig, strong):  # the inner lips (13 above 14) close over the larger drop as over the smaller
        p = deform(r, _with(rig, jawOpen=0.4, mouthClose=0.4))
        assert abs(p[14, 1] - p[13, 1]) < 0.5


def test_a_smiling_mouth_shows_quiet_syllables(astronaut_parts, judge):
    """The astronaut's wide, toothy smile read a jaw dropped to 0.3 (a quiet syllable) as jawOpen 0.05
    (the raised lips of a smile): enrollment's jaw gain (render.calibrate) lifts her small openings."""
    import dataclasses

    from avatarcam.render.calibrate import calibrate

    image, matte, plate, rig = astronaut_parts
    seen = {}
    for gain in (1.0, calibrate(judge, image, matte, plate, rig)[1]):
        lifted = dataclasses.replace(rig, jaw_gain=gain)
        renderer = CpuRenderer(build_scene(image, matte, plate, lifted, (512, 512)))
        seen[gain] = _measure(judge, renderer.render(_with(rig, jawOpen=0.3))).blendshapes["jawOpen"]
    plain, gain = seen.pop(1.0), max(seen)
    assert gain > 1.5 and seen[gain] > plain + 0.03, f"gain {gain:.2f}, jawOpen read {seen[gain]:.2f} ({plain:.2f} at 1)"


def test_quiet_syllables_show_where_a_louder_one_reads_as_wide_as_it_is(portrait_parts, judge):
    """The hand-on-cheek woman reads a jaw dropped to 0.3 as wide as it is, but the motion model's
    quietest syllables (0.1) as shut at the rig's own drop: every rig lifts small openings some."""
    import dataclasses

    from avatarcam.render.calibrate import calibrate

    image, matte, plate, rig = _portrait(portrait_parts, "hand_on_cheek_woman.jpg")
    gain = calibrate(judge, image, matte, plate, rig)[1]
    plain, lifted = (_measure(judge, CpuRenderer(build_scene(image, matte, plate, dataclasses.replace(rig, jaw_gain=g),
                                                             (512, 512))).render(_with(rig, jawOpen=0.1))).blendshapes["jawOpen"]
                     for g in (1.0, gain))
    assert plain < 0.03 and lifted >= 0.05, f"gain {gain:.2f}: jawOpen 0.1 read {lifted:.2f} ({plain:.2f} at 1)"


def test_vertical_gaze_moves_irises_and_lids_the_commanded_way(renderer, judge):
    rig = renderer.scene.rig
    down = {}
    for pitch in (-0.3, 0.3):
        s = _measure(judge, renderer.render(_with(rig, gazePitch=pitch))).blendshapes
        down[pitch] = s["eyeLookDownLeft"] + s["eyeLookDownRight"] - s["eyeLookUpLeft"] - s["eyeLookUpRight"]
    assert down[0.3] > down[-0.3] + 0.3, down


@pytest.mark.parametrize("portrait", ["renderer", "default"])
def test_sealed_lips_meet_along_the_whole_mouth(request, portrait):
    """mouthClose over an open jaw (a bilabial): the lower lip meets the upper one from corner to
    corner and nothing of the mouth's inside shows (the corners once stayed down with the jaw: a
    dark wedge of mouth interior beside sealed lips)."""
    renderer = (request.getfixturevalue(portrait) if portrait == "renderer"
                else open_renderer(load_profile("default", Settings()), (512, 512), device="cpu"))
    scene = renderer.scene
    for jaw in (0.3, 0.6):
        frame = _with(scene.rig, jawOpen=jaw, mouthClose=jaw)
        points = scene.points(frame)
        upper, lower = points[scene.rig.mouth_top], points[list(fm.LIPS_LOWER_INNER)]
        width = float(np.linalg.norm(upper[-1] - upper[0]))
        gap = np.linalg.norm(lower - upper, axis=1)
        assert gap.max() < 0.06 * width, f"jaw {jaw}: lips apart by {np.round(gap, 1)} px (mouth {width:.0f} px)"
        # and the renderer draws no mouth interior
        x0, y0, x1, y1 = scene.roi
        assert mouth_geometry(scene, points - (x0, y0), frame, (y1 - y0, x1 - x0)) is None


@pytest.mark.parametrize("channel", ["mouthPressLeft", "mouthPressRight"])
def test_pressed_lips_stay_sealed_and_thin(renderer, channel):
    """A press thins the lips without parting them (its fitted correction moves each inner lip
    point with its partner) or folding them: no mouth interior is drawn, the red gets thinner on
    the pressed side and nowhere crosses the line where the lips meet."""
    scene = renderer.scene
    frame = _with(scene.rig, **{channel: 1.0})
    points = scene.points(frame)
    x0, y0, x1, y1 = scene.roi
    assert mouth_geometry(scene, points - (x0, y0), frame, (y1 - y0, x1 - x0)) is None
    upper_in, lower_in = points[list(fm.LIPS_UPPER_INNER)], points[list(fm.LIPS_LOWER_INNER)]
    width = float(np.linalg.norm(upper_in[-1] - upper_in[0]))
    assert np.linalg.norm(lower_in - upper_in, axis=1).max() < 0.06 * width

    def red(p):  # each lip's red height at each contour point between the corners
        upper = p[list(fm.LIPS_UPPER_INNER[1:-1]), 1] - p[list(fm.LIPS_UPPER_OUTER[1:-1]), 1]
        lower = p[list(fm.LIPS_LOWER_OUTER[1:-1]), 1] - p[list(fm.LIPS_LOWER_INNER[1:-1]), 1]
        return upper + lower
    ratio = red(points) / red(scene.points(scene.rig.rest))
    pressed = slice(5, None) if channel.endswith("Left") else slice(None, 4)  # contours run right to left side
    assert ratio[pressed].mean() < 0.85, np.round(ratio, 2)
    assert ratio.min() > 0.1, np.round(ratio, 2)


def test_fitted_corrections_change_only_lip_press(hopper):
    """The shipped corrections (tools/fit_expressions.py) add to the two press channels' fields on the
    face mesh, and leave every other channel, the rings and the irises as built by hand."""
    rig = hopper[3]
    pose = tuple(float(v) for v in rig.rest[:3])
    fitted = build_rig(rig.points[:478], pose, {}, fitted=True)
    hand_built = build_rig(rig.points[:478], pose, {}, fitted=False)
    change = np.abs(fitted.bases - hand_built.bases).max(axis=2)  # (channel, point)
    changed = {latent.EXPRESSION[k] for k in np.flatnonzero(change.max(axis=1) > 1e-6)}
    assert changed == {"mouthPressLeft", "mouthPressRight"}
    rings_and_irises = np.setdiff1d(np.arange(468, change.shape[1]), fitted.mouth_top)
    assert change[:, rings_and_irises].max() == 0.0
    # what parted lips show moves with the upper lip, corrected or not
    np.testing.assert_array_equal(fitted.bases[:, fitted.mouth_top], fitted.bases[:, list(fm.LIPS_UPPER_INNER)])
    assert 0.02 < change.max() < 0.15  # face-local units (eye corner to eye corner = 1)


@pytest.mark.parametrize("portrait", ["renderer", "astronaut"])
def test_a_closed_eye_is_one_smooth_lash_line(request, portrait):
    """At a full blink both lids meet along one smooth curve from corner to corner (meeting point
    by point, the closed lid copied each bump of the lower lid into a kinked lash line)."""
    scene = request.getfixturevalue(portrait).scene
    frame = _with(scene.rig, eyeBlinkLeft=1.0, eyeBlinkRight=1.0)
    points = scene.points(frame)
    for upper, lower in ((fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER), (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER)):
        lid, low = points[list(upper)], points[list(lower)]
        width = float(np.linalg.norm(lid[-1] - lid[0]))
        curve = np.poly1d(np.polyfit(lid[:, 0], lid[:, 1], 2))
        assert np.abs(lid[:, 1] - curve(lid[:, 0])).max() < 0.02 * width  # kinked: 0.03-0.04
        # the lower lid is on the same curve: the eye is shut, with no slit left
        assert np.abs(low[:, 1] - curve(low[:, 0])).max() < 0.03 * width


def test_a_widened_eye_shows_more_of_the_eye(astronaut):
    """Raising the upper lid uncovers white and iris: where the lid was, the eye now shows, not
    the lid's skin and lashes carried into it (the iris's hidden top filled by inpainting took
    their colour) nor a lash line drawn across it (the raised lid carries its own)."""
    scene = astronaut.scene
    frame = _with(scene.rig, eyeWideLeft=1.0, eyeWideRight=1.0)
    picture = astronaut.render(frame).astype(np.float32)
    for eye, g in enumerate(eye_geometry(scene, scene.points(frame), frame, (0, 0), picture.shape)):
        x0, y0, x1, y1 = g.lid.box
        uncovered = (coverage(g.lid.now, g.lid.shape) > 200) & (coverage(g.lid.was, g.lid.shape) < 55)
        assert uncovered.sum() > 50, "eyeWide did not raise the lid"
        seen = picture[y0:y1, x0:x1][uncovered].mean(axis=0)
        _, _, white = scene.eye_colours[eye]
        # as bright as the eye's white, give or take the iris; the lid's skin is 40 levels darker
        assert np.abs(seen - white).mean() < 20, f"eye {eye}: the uncovered strip is {seen}, the white {white}"


def test_a_shut_lid_is_skin_where_the_iris_showed_above_the_landmarks(renderer):
    """Behind her glasses the landmarker puts Grace Hopper's upper lids below the lids in the
    photo, so the top of each iris lies in what the warp takes for lid skin: a closing lid dragged
    it down as a dark smudge on the shut lid (its darkest pixels at 0.63 of the skin around the
    eye). Above its lash line the shut lid is as light as that skin, give or take its shading."""
    scene = renderer.scene
    frame = _with(scene.rig, eyeBlinkLeft=1.0, eyeBlinkRight=1.0)
    light = renderer.render(frame).astype(np.float32).mean(axis=2)
    rest = scene.points(scene.rig.rest)
    geometry = eye_geometry(scene, scene.points(frame), frame, (0, 0), light.shape)
    for g, iris in zip(geometry, (fm.RIGHT_IRIS, fm.LEFT_IRIS)):
        x0, y0, x1, y1 = g.lid.box
        centre = rest[iris[0]] - (x0, y0)
        radius = np.linalg.norm(rest[list(iris[1:])] - rest[iris[0]], axis=1).mean()
        yy, xx = np.mgrid[y0:y1, x0:x1] - np.array([y0, x0])[:, None, None]
        lash = cv2.dilate(g.lid.line, np.ones((7, 7), np.uint8)) > 0
        iris_top = (np.hypot(xx - centre[0], yy - centre[1]) < 1.3 * radius) & (yy < centre[1]) & ~lash
        eye = (coverage(g.lid.was, g.lid.shape) > 128).astype(np.uint8)
        around = (cv2.dilate(eye, np.ones((15, 15), np.uint8)) > 0) & ~(cv2.dilate(eye, np.ones((7, 7), np.uint8)) > 0)
        lid = light[y0:y1, x0:x1]
        darkest, skin = np.percentile(lid[iris_top], 5), np.median(lid[around])
        assert darkest > 0.8 * skin, f"a dark smudge on the shut lid: {darkest:.0f} against skin {skin:.0f}"


def test_a_shut_eyes_lash_line_thins_toward_the_corners(astronaut_1080p):
    """The lash line of a shut eye is a crescent, darkest in the middle and thinning to nothing at
    the corners. Drawn with an even width (5% of the eye) it read as a marker line, and was as dark
    at the corners as in the middle or darker, where the open eye's lashes join it."""
    renderer = astronaut_1080p
    scene = renderer.scene
    frame = _with(scene.rig, eyeBlinkLeft=1.0, eyeBlinkRight=1.0)
    light = renderer.render(frame).astype(np.float32).mean(axis=2)
    points = scene.points(frame)
    for upper, (skin, lash, _) in zip((fm.RIGHT_EYE_UPPER, fm.LEFT_EYE_UPPER), scene.eye_colours):
        lid = points[list(upper)]
        lid = lid[np.argsort(lid[:, 0])]
        width = float(np.ptp(lid[:, 0]))
        xs = np.arange(int(np.ceil(lid[0, 0])), int(lid[-1, 0]))
        ys = np.interp(xs, lid[:, 0], lid[:, 1])
        reach = int(round(0.1 * width))
        # per column: how many pixels about the lid are nearer the lash colour than the skin's
        dark = np.array([np.sum((skin.mean() - light[int(y) - reach:int(y) + reach, x])
                                > 0.5 * (skin.mean() - lash.mean())) for x, y in zip(xs, ys)])
        u = (xs - xs[0]) / (len(xs) - 1)
        middle, ends = dark[(u > 0.4) & (u < 0.6)].mean(), dark[(u < 0.08) | (u > 0.92)].mean()
        assert 0.5 <= middle <= 0.06 * width, f"lash line {middle:.1f} px deep in the middle of a {width:.0f} px eye"
        assert ends <= 0.8 * middle, f"lash line {ends:.1f} px deep at the corners, {middle:.1f} in the middle"


def _fine(image: np.ndarray) -> np.ndarray:
    """An RGB image's fine texture: its grey level less a blur."""
    grey = image.astype(np.float32).mean(axis=2)
    return grey - cv2.GaussianBlur(grey, (0, 0), 2.0)


def test_a_shut_lid_carries_the_skins_texture(hopper_1080p):
    """A shut lid is not a smooth patch: over the former opening, away from the lashes, Grace
    Hopper's shut lids show fine texture (grey level less a blur) like the wrinkled skin above her
    open eyes, as far as the lid's texture is limited (DETAIL_LIMIT). Filled with a blur of the
    skin around, the shut lid's texture was 0.7 grey levels (now 3.4; the skin above 20)."""
    renderer = hopper_1080p
    scene = renderer.scene
    frame = _with(scene.rig, eyeBlinkLeft=1.0, eyeBlinkRight=1.0)
    shut, still = (_fine(renderer.render(f)) for f in (frame, scene.rig.rest))
    points = scene.points(frame)
    geometry = eye_geometry(scene, points, frame, (0, 0), shut.shape)
    for g, upper in zip(geometry, (fm.RIGHT_EYE_UPPER, fm.LEFT_EYE_UPPER)):
        x0, y0, x1, y1 = g.lid.box
        opening = cv2.erode(coverage(g.lid.was, g.lid.shape), np.ones((5, 5), np.uint8)) > 128
        lashes = cv2.dilate(g.lid.line, np.ones((9, 9), np.uint8)) > 0
        lid = opening & ~lashes
        above = np.zeros_like(opening)  # the band of lid skin above the open eye, clear of its lashes
        rest = scene.points(scene.rig.rest)[list(upper)]
        for x, y in np.round(rest[2:-2] - (x0, y0)).astype(int):
            above[max(y - 12, 0):max(y - 5, 0), max(x - 2, 0):x + 3] = True
        texture, skin = shut[y0:y1, x0:x1][lid].std(), still[y0:y1, x0:x1][above].std()
        assert lid.sum() > 100 and above.sum() > 50
        assert texture > 0.3 * min(skin, DETAIL_LIMIT), f"shut lid texture {texture:.2f}, the lid skin's {skin:.2f}"


def test_a_closing_lid_draws_without_warnings(portrait_parts):
    """The shut lid's texture follows a curve fitted through the lid (eyes.lid_skin). On the
    open-mouthed portrait np.polyfit fitted it in float32 pixels, ill-conditioned: a RankWarning
    every frame with a closing lid (twenty in a render). Now none."""
    renderer = CpuRenderer(build_scene(*_portrait(portrait_parts, "open_mouth_woman.jpg"), (1280, 720)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for closed in (0.3, 0.7, 1.0):
            renderer.render(_with(renderer.scene.rig, eyeBlinkLeft=closed, eyeBlinkRight=closed))


@pytest.mark.parametrize("portrait", ["hopper_720p", "astronaut_720p"])
def test_a_shut_eye_leaves_no_ghost_of_its_lashes(portrait, request):
    """The open eye's lashes and the shadow under its upper lid lie above the landmarks' lid line;
    a shut lid covers them too. Left alone, they stayed behind as a dark arc over the shut eye, the
    open eye's ghost: in the band above the open upper lid, the darkest tenth of the shut eye's
    pixels were at 0.73-0.87 of the skin around the eye (now 0.87-0.96; the open eye's lashes
    there, 0.15-0.38)."""
    renderer = request.getfixturevalue(portrait)
    scene = renderer.scene
    light = renderer.render(_with(scene.rig, eyeBlinkLeft=1.0, eyeBlinkRight=1.0)).astype(np.float32).mean(axis=2)
    rest = scene.points(scene.rig.rest)
    for upper, lower in ((fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER), (fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER)):
        lid = rest[list(upper)]
        width = float(np.ptp(lid[:, 0]))
        band = coverage(crescent(lid, np.array([0.0, -1.0]), 0.12 * width), light.shape) > 200
        eye = coverage(np.concatenate([lid, rest[list(lower)][::-1]]), light.shape)
        near, far = (cv2.dilate(eye, np.ones((k, k), np.uint8)) > 0 for k in (int(0.15 * width) | 1, int(0.3 * width) | 1))
        darkest, skin = np.percentile(light[band], 10), np.median(light[far & ~near & ~band])
        assert darkest > 0.85 * skin, f"a ghost of the lashes over the shut eye: {darkest:.0f} against skin {skin:.0f}"


def test_a_raised_gaze_shows_no_lashes_under_the_iris(cartoon_parts):
    """Looking up shows the bottom of the iris texture, which the lower lid hid in the picture. Filled
    by mirroring the iris's top from all the landmarks' outline, it took the dark upper lid line
    that the outline takes in and drew it as a line under the raised iris: across the iris's width
    below it, the darkest row was at 0.15-0.19 of the white (now 0.53-0.66)."""
    renderer = CpuRenderer(build_scene(*cartoon_parts, (1920, 1080)))  # eyes as wide as the measure was set on
    scene = renderer.scene
    frame = _with(scene.rig, gazePitch=float(scene.rig.rest[latent.index("gazePitch")]) - 0.2)
    light = renderer.render(frame).astype(np.float32).mean(axis=2)
    points = scene.points(frame)
    yy, xx = np.mgrid[0:light.shape[0], 0:light.shape[1]]
    for eye, (g, iris) in enumerate(zip(eye_geometry(scene, points, frame, (0, 0), light.shape), (fm.RIGHT_IRIS, fm.LEFT_IRIS))):
        radius = np.linalg.norm(points[list(iris[1:])] - points[iris[0]], axis=1).mean()
        cx, cy = g.iris_centre
        below = (coverage(g.outline, light.shape) > 200) & (np.abs(xx - cx) < 0.6 * radius) & (yy > cy + radius)
        rows = [light[y][below[y]].mean() for y in np.unique(yy[below]) if below[y].sum() >= 3]
        assert len(rows) >= 2, "the raised iris left no white below it to look at"
        white = scene.eye_colours[eye][2].mean()
        assert min(rows) > 0.4 * white, f"eye {eye}: a dark line under the raised iris ({min(rows):.0f}, white {white:.0f})"


def test_an_open_mouth_is_a_lens_not_a_box(renderer):
    """With the jaw open, the upper lip's sides go down with the corners and its middle stays:
    the opening's top arches into the corners (held still, the upper lip made a straight top edge
    ending in dark wedges at the corners)."""
    scene = renderer.scene
    rest = scene.points(scene.rig.rest)
    points = scene.points(_with(scene.rig, jawOpen=0.5))
    drop = (points - rest)[list(fm.LIPS_UPPER_INNER), 1]  # corner, ..., middle, ..., corner
    corners = (drop[0] + drop[-1]) / 2
    assert corners > 2.0  # px: the corners follow the jaw
    assert abs(drop[5]) < 0.05 * corners
    assert np.all(drop[[1, -2]] > 0.3 * corners) and np.all(drop[[1, -2]] <= corners + 1e-3)
    assert np.all(np.diff(drop[:6]) <= 1e-3) and np.all(np.diff(drop[5:]) >= -1e-3)  # down toward the corners


def _roughness_under_the_mouth(renderer, frame) -> float:
    """Mean |Laplacian| of the grey picture over the lower lip and the skin under it, halfway to
    the chin, leaving out the drawn opening and a few pixels around it."""
    scene = renderer.scene
    picture = renderer.render(frame)
    points = scene.points(frame)
    outer = points[list(fm.LIPS_LOWER_OUTER)]
    below = outer + 0.5 * (points[fm.CHIN] - outer) * (0.0, 1.0)
    region = np.zeros(picture.shape[:2], np.uint8)
    outline = np.concatenate([points[list(fm.LIPS_LOWER_INNER)], below[::-1]])
    cv2.fillPoly(region, [np.round(outline).astype(np.int32)], 1)
    x0, y0, x1, y1 = scene.roi
    m = mouth_geometry(scene, points - (x0, y0), frame, (y1 - y0, x1 - x0))
    if m is not None:
        opening = np.zeros_like(region)
        cv2.fillPoly(opening, [np.round(m.polygon + (m.box[0] + x0, m.box[1] + y0)).astype(np.int32)], 1)
        region &= 1 - cv2.dilate(opening, np.ones((7, 7), np.uint8))
    grey = cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F))[region > 0].mean())


def test_rounded_lips_do_not_tear_the_skin_under_the_mouth(renderer):
    """Lips rounded into a funnel over an open jaw (an /o/) keep the lower lip and the skin under
    it as smooth as the jaw alone leaves them. The funnel once lowered the lower lip further than
    the inverse warp follows: a jagged tear under the opening on Grace Hopper's wrinkled skin
    (1.24 to 1.50 times as rough as the jaw alone)."""
    rig = renderer.scene.rig
    for jaw in (0.3, 0.5, 0.8):
        plain = _roughness_under_the_mouth(renderer, _with(rig, jawOpen=jaw))
        rounded = _roughness_under_the_mouth(renderer, _with(rig, jawOpen=jaw, mouthFunnel=0.8))
        assert rounded < 1.3 * plain, f"jaw {jaw}: {rounded:.1f} against {plain:.1f}"


@pytest.mark.parametrize("jaw", [0.2, 0.4, 0.6])
def test_pursed_lips_close_in_around_a_small_opening(renderer, judge, jaw):
    """Over an open jaw, pursed lips narrow the opening and shorten it too, an "oo", not a
    shouted "O": the judge reads the mouth no more open than the jaw alone leaves it, and reads
    the pucker. (Narrowed only, the judge read it twice as open at jaw 0.4.)"""
    rig = renderer.scene.rig
    alone = _with(rig, jawOpen=jaw)
    pursed = _with(rig, jawOpen=jaw, mouthPucker=0.7)
    mid = len(fm.LIPS_UPPER_INNER) // 2
    lips = [fm.LIPS_LOWER_INNER[mid], fm.LIPS_UPPER_INNER[mid]]
    gap = lambda frame: float(np.subtract(*renderer.scene.points(frame)[lips, 1]))  # noqa: E731 (px)
    assert gap(pursed) < 0.75 * gap(alone)
    seen_alone = _measure(judge, renderer.render(alone)).blendshapes
    seen = _measure(judge, renderer.render(pursed)).blendshapes
    assert seen["jawOpen"] < seen_alone["jawOpen"] + 0.06, \
        f"jaw {jaw}: judged {seen['jawOpen']:.2f} against {seen_alone['jawOpen']:.2f}"
    assert seen["mouthPucker"] > seen_alone["mouthPucker"] + 0.05


@pytest.mark.parametrize("portrait", ["renderer", "astronaut"])
def test_the_tongue_rests_on_the_lower_teeth(request, portrait):
    # up the middle of an open mouth from the lower lip: the lower teeth, then straight the tongue,
    # with no dark band of the cavity between (the tongue's flat base once hung above the teeth)
    renderer = request.getfixturevalue(portrait)
    frame = _with(renderer.scene.rig, jawOpen=0.45)
    grey = renderer.render(frame).astype(np.float32).mean(axis=-1)
    points = renderer.scene.points(frame)
    lower, upper = points[list(fm.LIPS_LOWER_INNER)], points[list(fm.LIPS_UPPER_INNER)]
    width = float(np.linalg.norm(upper[-1] - upper[0]))
    x, y = np.round(lower[5]).astype(int)
    up = grey[y - int(0.3 * width):y + 1, x][::-1]
    teeth = int(np.argmax(up[:int(0.1 * width)]))
    above = up[teeth + 1:teeth + 1 + int(0.1 * width)]
    assert above.min() > 0.5 * up[teeth], f"a dark band between teeth and tongue: {up.round()}"


def _upper_teeth(renderer, jaw: float):
    """The mouth layer's geometry at `jaw`, the upper lip's inner edge in its box, and per column of
    the box the rows its teeth cover below that edge."""
    scene = renderer.scene
    frame = _with(scene.rig, jawOpen=jaw)
    x0, y0, x1, y1 = scene.roi
    points = scene.points(frame) - (x0, y0)
    m = mouth_geometry(scene, points, frame, (y1 - y0, x1 - x0))
    assert m is not None
    lip = points[list(fm.LIPS_UPPER_INNER)] - m.box[:2]
    rows = np.arange(m.shape[0])[:, None] + 0.5
    below = rows > np.interp(np.arange(m.shape[1]) + 0.5, lip[:, 0], lip[:, 1])
    upper = (m.teeth_alpha > 128) & below & (rows < lip[:, 1].max() + 0.2 * m.width)
    return m, lip, upper


def test_upper_teeth_are_longest_in_the_middle(renderer):
    """The upper front teeth hang from the upper lip, longest at the incisors and shorter toward
    the canines, and stay inside the opening."""
    m, lip, upper = _upper_teeth(renderer, 0.4)
    length = upper.sum(axis=0)
    span = np.flatnonzero(length)
    third = len(span) // 3
    middle = length[span[third:-third]].max()  # the central incisors (a gap parts them at the very middle)
    assert middle > 0.08 * m.width
    assert length[span[:2]].mean() < 0.7 * middle and length[span[-2:]].mean() < 0.7 * middle
    opening = coverage(m.polygon, m.shape) > 0
    assert np.mean(opening[upper]) > 0.95


def test_drawn_teeth_are_shaded_with_gaps_not_a_slab(renderer):
    """Drawn teeth read as teeth: darker toward the lip they grow from, dark gaps between them,
    the row dimmer toward the cheeks; a row of one colour read as a white slab."""
    m, lip, upper = _upper_teeth(renderer, 0.5)
    grey = m.teeth.astype(np.float32).mean(axis=2)
    length = upper.sum(axis=0)
    columns = np.flatnonzero(length >= 3)
    third = len(columns) // 3
    middle = columns[third + np.argmax(length[columns[third:-third]])]  # a central incisor's middle
    down = grey[upper[:, middle], middle]
    assert down[2 * len(down) // 3] > 1.15 * down[0], f"no shadow under the lip: {down.round()}"
    # across the row, at a third of the teeth's length: gaps are local dips in the light
    row = np.array([grey[np.flatnonzero(upper[:, c])[len(np.flatnonzero(upper[:, c])) // 3], c] for c in columns])
    dips = [i for i in range(2, len(row) - 2) if row[i] < 0.85 * max(row[i - 2], row[i + 2])]
    assert len(dips) >= 3, f"no gaps between teeth across {row.round()}"
    assert np.ptp(row) > 40


def test_a_moved_iris_has_no_halo(portrait_parts):
    """An iris moved for gaze carries no ring of the photo's white round it: beside the iris, within
    the eye, the picture is as light as the white further out (the texture's margin was the photo's
    white as it lay beside the iris, and drew a pale ring 12-18 levels lighter on this photo)."""
    renderer = CpuRenderer(build_scene(*_portrait(portrait_parts, "toothy_smile_small.png"), (1280, 720)))
    scene, rig = renderer.scene, renderer.scene.rig
    for turn in (0.3, -0.3):
        frame = _with(rig, gazeYaw=float(rig.rest[latent.index("gazeYaw")]) + turn)
        light = renderer.render(frame).astype(np.float32).mean(axis=2)
        yy, xx = np.mgrid[0:light.shape[0], 0:light.shape[1]]
        for g, radius in zip(eye_geometry(scene, scene.points(frame), frame, (0, 0), light.shape), rig.iris[:, 2]):
            r = radius * scene.to_output[0, 0]
            dist = np.hypot(xx - g.iris_centre[0], yy - g.iris_centre[1])
            inside = coverage(g.outline, light.shape) > 200
            ring, further = inside & (dist > 1.1 * r) & (dist < 1.3 * r), inside & (dist > 1.4 * r) & (dist < 1.8 * r)
            assert ring.sum() > 5 and further.sum() > 5
            assert abs(light[ring].mean() - light[further].mean()) < 10, f"gaze {turn:+}: a ring round the iris"
