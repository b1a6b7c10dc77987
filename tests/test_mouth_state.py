"""Any mouth state: a portrait photographed with its lips apart rests with them together
(`Rig.points` against `Rig.photo_points`), and the voice alone opens its mouth. Judged on real portraits with the Face
Landmarker, as a viewer would see them."""

import cv2
import numpy as np
import pytest

from avatarcam import latent
from avatarcam.chain import compose
from avatarcam.render import facemesh as fm
from avatarcam.render.cpu import CpuRenderer
from avatarcam.render.rig import MOUTH_STATE, SEAL_LEFT, build_rig, deform
from avatarcam.render.scene import build_scene
from bench.portraits import inner_lip_gap


def _lip_gaps(points: np.ndarray) -> np.ndarray:
    return points[list(fm.LIPS_LOWER_INNER), 1] - points[list(fm.LIPS_UPPER_INNER), 1]


@pytest.mark.parametrize("filename", ["open_mouth_woman.jpg", "astronaut.png", "photo_of_photo_child.jpg"])
def test_the_rest_brings_the_photos_parted_lips_together(portrait_parts, filename):
    _, face, _, _ = portrait_parts(filename)
    rig = build_rig(face.points, face.pose(), face.blendshapes)
    assert _lip_gaps(rig.photo_points).max() > 3.0  # apart in the photo, in pixels
    rested = deform(rig, rig.rest)
    np.testing.assert_allclose(rested, rig.points[:, :2], atol=1e-3)  # the rest is the rig's points
    seam = SEAL_LEFT * rig.unit  # the lips stop this short of each other, in pixels
    assert np.all(_lip_gaps(rested)[1:-1] > 0.5 * seam) and np.all(_lip_gaps(rested) < 1.5 * seam)
    # what the open lips showed folds onto the lower lip's edge: nothing of it shows at rest
    assert np.abs(rested[rig.mouth_top] - rested[list(fm.LIPS_LOWER_INNER)]).max() < 0.1
    for name in MOUTH_STATE:
        assert rig.rest[latent.index(name)] == 0.0, name


def test_a_closed_mouth_photo_rests_as_it_is(portrait_parts):
    image, face, matte, plate = portrait_parts("grace_hopper.jpg")
    rig = build_rig(face.points, face.pose(), face.blendshapes)
    np.testing.assert_array_equal(rig.photo_points, rig.points[:, :2])
    scene = build_scene(image, matte, plate, rig, (512, 512))
    assert scene.teeth is None
    scale = scene.to_output[0, 0]
    photo = cv2.warpAffine(image, scene.to_output, scene.size, flags=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    x, y, w, h = cv2.boundingRect(np.round(scene.rest_points[list(fm.LIPS_LOWER_OUTER)]).astype(np.int32))
    assert np.abs(scene.scene[y:y + h, x:x + w].astype(int) - photo[y:y + h, x:x + w]).max() <= 2  # its own lips


def test_an_open_mouthed_photo_closes_in_silence_and_opens_with_the_voice(portrait_parts, judge):
    image, face, matte, plate = portrait_parts("open_mouth_woman.jpg")
    assert face.blendshapes["jawOpen"] > 0.5 and inner_lip_gap(face.points) > 0.3  # the photo: a shout
    rig = build_rig(face.points, face.pose(), face.blendshapes)
    renderer = CpuRenderer(build_scene(image, matte, plate, rig, (512, 512)))
    read = {}
    for jaw in (0.0, 0.5):
        motion = latent.zeros(1)[0]
        motion[latent.index("jawOpen")] = jaw
        faces = judge.detect(renderer.render(compose(motion, rig.rest)))
        assert faces, f"the judge lost the face at jaw {jaw}"
        read[jaw] = faces[0]
    assert read[0.0].blendshapes["jawOpen"] < 0.1
    assert inner_lip_gap(read[0.0].points) < 0.03
    assert read[0.5].blendshapes["jawOpen"] > 0.3
    assert inner_lip_gap(read[0.5].points) > 0.15


def test_the_closed_seam_shows_no_teeth(portrait_parts):
    """What the smiling photo's parted lips showed (its white teeth) is painted over before the lips
    close over it: along the closed seam no pixel is nearer the teeth's light than the lips' (with
    the teeth left in, a fifth of the seam showed them as white specks)."""
    image, face, matte, plate = portrait_parts("astronaut.png")
    rig = build_rig(face.points, face.pose(), face.blendshapes)
    scene = build_scene(image, matte, plate, rig, (1280, 720))
    seam = np.zeros(scene.scene.shape[:2], np.uint8)
    cv2.polylines(seam, [np.round(scene.rest_points[list(fm.LIPS_UPPER_INNER)]).astype(np.int32)], False, 255, 3)
    grey = scene.scene.astype(np.float32).mean(axis=2)[seam > 0]
    teeth = np.percentile(image.astype(np.float32).mean(axis=2)[_opening(rig.photo_points, image.shape)], 90)
    assert np.mean(grey > 0.5 * (teeth + np.median(grey))) < 0.02


def _opening(points: np.ndarray, shape) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    polygon = np.concatenate([points[list(fm.LIPS_UPPER_INNER)], points[list(fm.LIPS_LOWER_INNER[::-1])]])
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 255)
    return mask > 0
