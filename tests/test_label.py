"""The visible label: present on every frame, legible at 360 lines, bounded by its settings."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatarcam.config import Settings, load_settings
from avatarcam.errors import SettingsError
from avatarcam.provenance.label import CORNERS, MIN_HEIGHT, MIN_OPACITY, Label, LabelStyle

BACKGROUNDS = {
    "white": lambda h, w: np.full((h, w, 3), 255, np.uint8),
    "black": lambda h, w: np.zeros((h, w, 3), np.uint8),
    "grey": lambda h, w: np.full((h, w, 3), 128, np.uint8),
    "noise": lambda h, w: np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8),
}


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    c = rgb.astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722])


def legibility(frame: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, float]:
    """(height in px of the text's bright strokes, contrast ratio text : backing) inside `box`."""
    x, y, w, h = box
    roi = frame[y:y + h, x:x + w]
    lum = relative_luminance(roi)
    backing = np.percentile(lum[h // 2 - 1:h // 2 + 1], 10)  # between the strokes: the darkest of the box
    text_lum = np.percentile(lum, 99)  # the white strokes
    text = lum > (backing + text_lum) / 2  # half way, as a reader's eye would separate them
    rows = np.nonzero(text.any(axis=1))[0]
    height = int(rows[-1] - rows[0] + 1) if rows.size else 0
    return height, (text_lum + 0.05) / (backing + 0.05)


@pytest.mark.parametrize("background", list(BACKGROUNDS))
def test_legible_at_360p_at_the_smallest_setting(background):
    frame = BACKGROUNDS[background](360, 640)
    label = Label((640, 360), LabelStyle("bottom-right", MIN_HEIGHT, MIN_OPACITY))
    label.draw(frame)
    height, contrast = legibility(frame, label.box)
    assert height >= 8, f"capitals only {height} px high"
    assert contrast >= 4.5, f"contrast {contrast:.1f}:1 on {background}"  # WCAG AA for normal text


def test_720p_label_stays_legible_after_downscaling_to_360p():
    frame = BACKGROUNDS["white"](720, 1280)
    label = Label((1280, 720), LabelStyle("top-left", MIN_HEIGHT, MIN_OPACITY))
    label.draw(frame)
    small = cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA)
    x, y, w, h = label.box
    height, contrast = legibility(small, (x // 2, y // 2, w // 2, h // 2))
    assert height >= 8 and contrast >= 4.5


@pytest.mark.parametrize("corner", CORNERS)
def test_corner_and_size(corner):
    label = Label((1280, 720), LabelStyle(corner, 0.1, 1.0))
    x, y, w, h = label.box
    assert h == 72
    assert (x < 640) == corner.endswith("left") and (y < 360) == corner.startswith("top")
    frame = np.full((720, 1280, 3), 200, np.uint8)
    label.draw(frame)
    assert (frame != 200).any(axis=2).sum() > 0.3 * w * h  # drawn where the box says
    outside = frame.copy()
    outside[y:y + h, x:x + w] = 200
    assert (outside == 200).all()


def test_drawn_in_place_cheaply_and_exactly_once():
    frame = np.full((360, 640, 3), 90, np.uint8)
    label = Label((640, 360))
    once = label.draw(frame.copy())
    twice = label.draw(label.draw(frame.copy()))
    assert label.draw(frame) is frame
    assert np.abs(once.astype(int) - twice.astype(int)).max() <= 60  # idempotent enough: opaque text stays


@pytest.mark.parametrize("env, value", [("AVATARCAM_LABEL_SIZE", "0.02"), ("AVATARCAM_LABEL_OPACITY", "0"),
                                        ("AVATARCAM_LABEL_OPACITY", "0.3"), ("AVATARCAM_LABEL_CORNER", "nowhere")])
def test_settings_cannot_make_it_illegible_or_transparent(monkeypatch, env, value):
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError):
        load_settings()


def test_style_from_settings(monkeypatch):
    monkeypatch.setenv("AVATARCAM_LABEL_CORNER", "bottom-left")
    monkeypatch.setenv("AVATARCAM_LABEL_SIZE", "0.08")
    style = LabelStyle.from_settings(Settings())
    assert (style.corner, style.height) == ("bottom-left", 0.08)
    with pytest.raises(ValueError):
        LabelStyle("top-left", 0.01, 0.7)
