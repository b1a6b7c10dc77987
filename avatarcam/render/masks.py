"""Anti-aliased coverage masks of small polygons (the eye and mouth layers' shapes) and their
boxes, drawn with OpenCV: both renderers draw them on the host the same way (the kernels blend them).
"""

from __future__ import annotations

import cv2
import numpy as np

SHIFT = 4  # sub-pixel bits for anti-aliased polygon drawing


def polygon_box(polygon: np.ndarray, shape: tuple[int, ...], margin: int) -> tuple[int, int, int, int] | None:
    """Integer bounding box of a polygon plus a margin, clipped to an image; None if empty."""
    x0, y0 = np.floor(polygon.min(0)).astype(int) - margin
    x1, y1 = np.ceil(polygon.max(0)).astype(int) + margin + 1
    x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), shape[1]), min(int(y1), shape[0])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def coverage(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased coverage (uint8 0..255) of a polygon."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(polygon * 16).astype(np.int32)], 255, cv2.LINE_AA, SHIFT)
    return m
