"""The visible label: "AI AVATAR" in a corner of every frame, readable by anyone who sees the video.

The label is white text on a dark, semi-opaque rounded backing, so it reads on any picture: the
text is always fully opaque and the backing at least 60% opaque (contrast ratio 5:1 or more, above
the WCAG AA level of 4.5:1, even over a white background). Its height is a fraction of the frame
height, at least :data:`MIN_HEIGHT`: 0.05 x 360 = 18 px of backing and about 11 px of capital
letters at 360 lines, the size a video call's 640x360 stream shows, so it stays legible after that
downscaling. Settings choose the corner, the size (upwards from the minimum) and the backing's
opacity (within its bounds); nothing turns it off.

The label is drawn once per output size (``cv2.putText`` with anti-aliasing into a small stamp with
its own alpha) and blended into each frame's corner: a few thousand pixels, about 0.05 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TEXT = "AI AVATAR"  # capitals: no lowercase l for the I to be mistaken for
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
MIN_HEIGHT = 0.05  # of the frame height: legible at 360 lines
MAX_HEIGHT = 0.2
DEFAULT_HEIGHT = 0.055
MIN_OPACITY = 0.6  # of the backing (5:1 contrast on white); the text itself is always opaque
DEFAULT_OPACITY = 0.7
MIN_PX = 16  # backing height in px, whatever the frame size
FONT = cv2.FONT_HERSHEY_DUPLEX
CAP_SHARE = 0.6  # capital-letter height / backing height
WHITE = np.array([255.0, 255.0, 255.0], np.float32)
DARK = np.array([16.0, 16.0, 20.0], np.float32)


@dataclass(frozen=True)
class LabelStyle:
    corner: str = "top-left"
    height: float = DEFAULT_HEIGHT
    opacity: float = DEFAULT_OPACITY

    def __post_init__(self) -> None:
        if self.corner not in CORNERS:
            raise ValueError(f"label corner must be one of {', '.join(CORNERS)}, got {self.corner!r}")
        if not MIN_HEIGHT <= self.height <= MAX_HEIGHT:
            raise ValueError(f"label height must be between {MIN_HEIGHT} and {MAX_HEIGHT} of the frame height "
                             f"(smaller is not legible at 360 lines), got {self.height}")
        if not MIN_OPACITY <= self.opacity <= 1.0:
            raise ValueError(f"label opacity must be between {MIN_OPACITY} and 1, got {self.opacity}")

    @classmethod
    def from_settings(cls, settings) -> LabelStyle:
        return cls(settings.label_corner, settings.label_size, settings.label_opacity)


def render_stamp(height_px: int, opacity: float) -> tuple[np.ndarray, np.ndarray]:
    """The label `height_px` high as (premultiplied RGB float32, alpha float32 0..1).

    Two layers: a dark backing (alpha = opacity) and white anti-aliased text over it (alpha 1 where
    the glyphs are). Composited into one: alpha = 1 - (1 - backing)(1 - text), colour = dark *
    backing * (1 - text) + white * text, premultiplied, so a frame pixel becomes
    frame * (1 - alpha) + colour.
    """
    cap = CAP_SHARE * height_px
    (_, ref_h), _ = cv2.getTextSize("A", FONT, 1.0, 1)
    scale = cap / ref_h
    thickness = max(1, int(round(cap / 9)))
    (text_w, text_h), _ = cv2.getTextSize(TEXT, FONT, scale, thickness)
    pad = int(round(0.35 * height_px))
    w, h = text_w + 2 * pad, height_px
    text = np.zeros((h, w), np.uint8)
    cv2.putText(text, TEXT, (pad, (h + text_h) // 2), FONT, scale, 255, thickness, cv2.LINE_AA)
    backing = np.zeros((h, w), np.uint8)
    r = max(2, h // 4)  # rounded corners
    cv2.rectangle(backing, (r, 0), (w - 1 - r, h - 1), 255, -1)
    cv2.rectangle(backing, (0, r), (w - 1, h - 1 - r), 255, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(backing, (cx, cy), r, 255, -1, cv2.LINE_AA)
    t = text.astype(np.float32) / 255.0
    b = opacity * backing.astype(np.float32) / 255.0
    alpha = 1.0 - (1.0 - b) * (1.0 - t)
    colour = DARK[None, None, :] * (b * (1.0 - t))[..., None] + WHITE[None, None, :] * t[..., None]
    return colour, alpha


class Label:
    """Stamps the label on RGB frames of one size, in place: ``Label(size, style).draw(frame)``."""

    def __init__(self, size: tuple[int, int], style: LabelStyle | None = None) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.style = style or LabelStyle()
        w, h = self.size
        height_px = max(MIN_PX, int(round(self.style.height * h)))
        colour, alpha = render_stamp(height_px, self.style.opacity)
        if alpha.shape[1] > 0.9 * w or alpha.shape[0] > 0.5 * h:  # a tiny frame: as large as fits
            fit = min(0.9 * w / alpha.shape[1], 0.5 * h / alpha.shape[0])
            colour, alpha = render_stamp(max(6, int(height_px * fit)), self.style.opacity)
        lh, lw = alpha.shape
        if lw > w or lh > h:
            raise ValueError(f"a {w}x{h} frame is too small for the label ({lw}x{lh} px)")
        margin = max(2, int(round(0.02 * h)))
        x0 = margin if self.style.corner.endswith("left") else w - margin - lw
        y0 = margin if self.style.corner.startswith("top") else h - margin - lh
        self.box = (x0, y0, lw, lh)  # x, y, width, height
        # fixed point, 8 fractional bits: out = (frame * keep + add) >> 8
        self._keep = np.round(256 * (1.0 - alpha)).astype(np.uint32)[..., None]
        self._add = np.round(256 * colour + 128).astype(np.uint32)
        self.alpha = alpha

    @property
    def fixed_point(self) -> tuple[np.ndarray, np.ndarray]:
        """(keep, add) such that a pixel becomes min((pixel * keep + add) >> 8, 255): for renderers
        that draw the label themselves (the GPU kernel)."""
        return self._keep, self._add

    def draw(self, frame: np.ndarray) -> np.ndarray:
        """Blend the label into `frame` (HxWx3 uint8 RGB of this size), in place; returns it."""
        x, y, lw, lh = self.box
        roi = frame[y:y + lh, x:x + lw]
        roi[...] = np.minimum((roi * self._keep + self._add) >> 8, 255)
        return frame
