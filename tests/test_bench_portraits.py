"""bench.portraits' measures on arrays whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np

from bench.portraits import (
    FACE_OVAL,
    background_change,
    background_mask,
    band_mask,
    eye_line,
    face_share,
    headroom,
    inner_lip_gap,
    mean_abs_laplacian,
    outline_mask,
    top_rows_person,
)


def _face(gap: float = 10.0, eyes: float = 100.0) -> np.ndarray:
    points = np.zeros((478, 3), np.float32)
    points[33, :2], points[263, :2] = (200, 300), (200 + eyes, 300)
    points[13, :2], points[14, :2] = (250, 400), (250, 400 + gap)
    return points


def test_inner_lip_gap_is_the_lip_distance_over_the_eye_corners():
    assert inner_lip_gap(_face(gap=10, eyes=100)) == 0.1
    assert inner_lip_gap(_face(gap=0, eyes=80)) == 0.0
    tilted = _face()
    tilted[14, :2] = (256, 408)  # 6-8-10 triangle
    assert math.isclose(inner_lip_gap(tilted), 0.1)
    frames = np.stack([_face(gap=5), np.full((478, 3), np.nan, np.float32)])  # a frame without a face stays NaN
    gaps = inner_lip_gap(frames)
    assert gaps[0] == 0.05 and np.isnan(gaps[1])


def test_eye_line_and_face_share_are_shares_of_the_frame_height():
    points = np.zeros((478, 3), np.float32)
    points[:, 1] = 288  # every landmark on one row: the eyes at 40% of 720
    assert math.isclose(float(eye_line(points, 720)), 0.4)
    points[10, :2], points[152, :2] = (640, 200), (640, 452)
    assert math.isclose(float(face_share(points, 720)), 252 / 720)


def _disc_outline(cx: float, cy: float, radius: float) -> np.ndarray:
    points = np.zeros((478, 3), np.float32)
    angles = np.linspace(0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
    points[list(FACE_OVAL), 0] = cx + radius * np.cos(angles)
    points[list(FACE_OVAL), 1] = cy + radius * np.sin(angles)
    return points


def test_the_band_lies_just_outside_the_outline():
    inside = np.zeros((200, 200), bool)
    inside[50:150, 50:150] = True
    band = band_mask(inside, 3, 8)
    assert not band[100, 100] and not band[100, 151] and not band[100, 152]  # inside, 2 and 3 px out
    assert band[100, 154] and band[100, 157] and not band[100, 160]           # 5, 8 and 11 px out
    assert band[100, 45] and band[45, 100] and not band[100, 20]
    outline = outline_mask(_disc_outline(100, 100, 40), (200, 200))
    assert outline[100, 100] and outline[100, 138] and not outline[100, 142] and not outline[10, 10]


def test_mean_abs_laplacian_reads_a_known_spot_and_nothing_on_a_ramp():
    image = np.zeros((40, 40), np.float32)
    image[20, 20] = 10.0  # Laplacian -40 on the spot, +10 on its four neighbours
    spot = np.zeros((40, 40), bool)
    spot[20, 19:22] = spot[19:22, 20] = True
    assert math.isclose(mean_abs_laplacian(image, spot), 80 / 5)
    ramp = np.tile(np.arange(40, dtype=np.float32) * 3, (40, 1))  # a straight gradient has none
    inner = np.zeros((40, 40), bool)
    inner[5:35, 5:35] = True
    assert mean_abs_laplacian(ramp, inner) == 0.0
    assert np.isnan(mean_abs_laplacian(ramp, np.zeros((40, 40), bool)))


def test_a_sharp_edge_in_the_band_raises_its_laplacian():
    """The tear measure: a face outline on a flat background is quiet; spikes beside it are not."""
    outline = _disc_outline(100, 100, 40)
    inside = outline_mask(outline, (200, 200))
    band = band_mask(inside, 0.03 * 80, 0.08 * 80)
    smooth = np.where(inside, 180.0, 60.0).astype(np.float32)
    torn = smooth.copy()
    torn[96:104, 142:148] = 200.0  # a skin-coloured fragment just outside the cheek
    assert mean_abs_laplacian(torn, band) > 2 * mean_abs_laplacian(smooth, band)


def test_background_change_counts_only_far_from_the_person_and_outside_the_label():
    rest = np.full((100, 200), 100.0, np.float32)
    person = np.zeros((100, 200), bool)
    person[30:70, 80:120] = True
    moved = rest.copy()
    moved[30:70, 80:120] += 60   # the person moves: not background
    moved[30:70, 120:128] += 50  # within 10 px of the person: not background either
    moved[0:10, 0:30] += 200     # the label's box: left out
    moved[:, 150:] += 4          # far background: 4 levels everywhere there
    background = background_mask(person, 10, exclude=[(0, 0, 30, 10)])
    assert not background[50, 125] and background[50, 140] and not background[5, 5]
    change, smudged = background_change(moved, rest, background)
    far = background[:, 150:].sum()
    assert math.isclose(change, 4 * far / background.sum(), rel_tol=1e-6)
    assert smudged == 0.0
    moved[80:90, 10:20] += 30    # a smudge of 100 pixels, 30 levels
    change2, smudged2 = background_change(moved, rest, background)
    assert math.isclose(change2 - change, 30 * 100 / background.sum(), rel_tol=1e-5)
    assert math.isclose(smudged2, 100 / background.sum())
    assert all(np.isnan(v) for v in background_change(moved, rest, np.zeros_like(background)))


def test_the_matte_at_the_top_edge_and_the_headroom():
    matte = np.zeros((100, 50), np.float32)
    matte[20:, 10:40] = 1.0
    assert not top_rows_person(matte) and headroom(matte) == 0.2
    matte[0, 25] = 0.9
    assert top_rows_person(matte) and headroom(matte) == 0.0
    assert headroom(np.zeros((10, 10))) == 1.0
