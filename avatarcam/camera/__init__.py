"""The camera: where finished frames go. `open_sink` opens the output a spec names; the
interface every output shares is `avatarcam.camera.sinks.Sink`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avatarcam.camera.sinks import FileSigner, NullSink, Sink

if TYPE_CHECKING:
    from avatarcam.camera.file import AudioStream

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")  # file.FORMATS, without loading FFmpeg
SINK_CHOICES = ("camera", "preview", "file:OUT.mp4 (or a path ending .mp4, .mov, .mkv or .webm)", "frames:DIR", "null")


def is_file_spec(spec: str) -> bool:
    """True when a sink spec names files (a video or a folder of frames): what gets content credentials."""
    return spec.startswith(("file:", "frames:")) or Path(spec).suffix.lower() in VIDEO_SUFFIXES


def open_sink(spec: str, size: tuple[int, int], fps: float = 30,
              audio: np.ndarray | AudioStream | None = None, audio_rate: int = 16000,
              signer: FileSigner | None = None, preset: str = "veryfast", threads: int = 0,
              camera: str | None = None, on_close: Callable[[], None] | None = None) -> Sink:
    """Open the sink a spec names: 'camera' (the virtual camera, the device `camera` or the one
    labelled AvatarCam), 'preview' (a window; closing it calls `on_close`), 'file:OUT.mp4',
    'OUT.mp4' (.mov, .mkv, .webm), 'frames:DIR', 'null'. Files record `audio` beside the frames
    (a clip, or a live stream's ring) and are signed with content credentials by `signer`, when
    given; `preset` is x264's for H.264 files, `threads` the video encoder's (`camera.file.VideoSink`)."""
    # Backends are imported on demand: the null sink should not pay for loading FFmpeg.
    if spec == "null":
        return NullSink(size)
    if spec == "camera":
        from avatarcam.camera.virtual import VirtualCameraSink
        return VirtualCameraSink(size, fps, device=camera)
    if spec == "preview":
        from avatarcam.camera.preview import PreviewSink
        return PreviewSink(size, on_close=on_close)
    if spec.startswith("frames:"):
        from avatarcam.camera.frames import FramesSink
        directory = spec.removeprefix("frames:")
        if not directory:
            raise ValueError("sink 'frames:' needs a directory, e.g. frames:out_frames")
        return FramesSink(directory, size=size, fps=fps, audio=audio, audio_rate=audio_rate, signer=signer)
    if spec.startswith("file:") or Path(spec).suffix.lower() in VIDEO_SUFFIXES:
        from avatarcam.camera.file import VideoSink
        path = spec.removeprefix("file:")
        if not path:
            raise ValueError("sink 'file:' needs a path, e.g. file:out.mp4")
        return VideoSink(path, size=size, fps=fps, audio=audio, audio_rate=audio_rate, signer=signer, preset=preset,
                         threads=threads)
    raise ValueError(f"unknown sink {spec!r}; choose one of: {', '.join(SINK_CHOICES)}")
