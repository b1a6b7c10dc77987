"""The person matte on real portraits: the head goes with the person, even where GrabCut loses the hair."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatarcam.render import segment


@pytest.mark.parametrize("name", ["lady_in_black_painting.jpg", "grace_hopper.jpg", "photo_of_photo_child.jpg"])
def test_the_hair_is_part_of_the_person(portraits_dir, judge, name):
    """Dark hair before a dark painted wall: GrabCut alone keeps a quarter of the head around the
    lady's face, so her hair stayed behind when the head turned. The matte keeps the head on every
    portrait, and on the photos where the cut holds, the backdrop beside the head stays out."""
    image = cv2.cvtColor(cv2.imread(str(portraits_dir / name)), cv2.COLOR_BGR2RGB)
    face = judge.detect(image)[0]
    matte = segment.person_matte(image, face)
    hair = segment.head_beside_face(matte.shape, face)
    assert (matte[hair] > 0.5).mean() > 0.8
    frame = segment._face_frame(face)
    beside = frame.to_image(np.array([-1.6, 1.6]), np.array([0.3, 0.3]))  # a face width and more off each cheek
    for x, y in np.round(beside).astype(int):
        if 0 <= x < image.shape[1] and 0 <= y < image.shape[0]:
            assert matte[y, x] < 0.5, f"backdrop at ({x}, {y}) taken for the person"


def test_a_cut_that_kept_the_head_is_left_as_it_is(portraits_dir, judge):
    image = cv2.cvtColor(cv2.imread(str(portraits_dir / "grace_hopper.jpg")), cv2.COLOR_BGR2RGB)
    face = judge.detect(image)[0]
    hair = segment.head_beside_face(image.shape[:2], face)
    kept = hair.astype(np.uint8)
    kept[np.flatnonzero(hair.any(axis=1))[::3]] = 0  # two thirds of the head beside the face
    assert np.array_equal(segment._with_head(kept, face), kept)
    face_only = segment.face_hull(image.shape[:2], face)
    assert segment._with_head(face_only, face)[hair].all()
