"""A preview window (OpenCV HighGUI): see the avatar without a camera device or a video app.

HighGUI wants every call from one thread, so the window is created on the first `write` (the
pacer's thread) rather than in the constructor. Closing the window or pressing q or Esc calls
`on_close` (the daemon stops); the sink itself never blocks for more than a millisecond.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import numpy as np

from avatarcam.camera.sinks import Sink, SinkBase, check_frame, check_size
from avatarcam.errors import AvatarCamError, OutputError

TITLE = "AvatarCam preview"


def has_display() -> bool:
    """Whether a window can be shown (an X11/Wayland display on Linux; always elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class PreviewSink(SinkBase):
    def __init__(self, size: tuple[int, int], on_close: Callable[[], None] | None = None,
                 title: str = TITLE) -> None:
        if not has_display():
            raise OutputError("--sink preview needs a display (DISPLAY or WAYLAND_DISPLAY is not set); "
                              "use --sink file:OUT.mp4 to see the output on a headless machine")
        self.size = check_size(size)
        self.title, self.on_close = title, on_close
        self.frames = 0
        self._open = False

    def write(self, frame: np.ndarray) -> None:
        import cv2

        frame = check_frame(frame, self.size)
        if not self._open:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            cv2.resizeWindow(self.title, *self.size)
            self._open = True
        cv2.imshow(self.title, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        self.frames += 1
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        if (key in (ord("q"), 27) or closed) and self.on_close is not None:
            self.on_close()

    def close(self) -> None:
        if self._open:
            import cv2

            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
            self._open = False


class WithPreview(SinkBase):
    """`sink`, plus a preview window beside it while `wanted()` (the tray's "show preview").

    Written to on the pacer's thread, where HighGUI wants its window; closing the window calls
    `on_close`, and a window that cannot open calls `on_error` with the reason (the sink goes on).
    """

    def __init__(self, sink: Sink, size: tuple[int, int], wanted: Callable[[], bool],
                 on_close: Callable[[], None], on_error: Callable[[str], None]) -> None:
        self.sink, self.size = sink, size
        self.wanted, self.on_close, self.on_error = wanted, on_close, on_error
        self.preview: PreviewSink | None = None

    def write(self, frame: np.ndarray) -> None:
        self.sink.write(frame)
        wanted = self.wanted()
        if wanted and self.preview is None:
            try:
                self.preview = PreviewSink(self.size, on_close=self.on_close)
            except AvatarCamError as exc:
                self.on_error(str(exc))
                return
        if self.preview is not None:
            if wanted:
                self.preview.write(frame)
            else:
                self.preview.close()
                self.preview = None

    def close(self) -> None:
        if self.preview is not None:
            self.preview.close()
        self.sink.close()
