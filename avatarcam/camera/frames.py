"""FramesSink: one lossless PNG per frame, for editing tools and for exact comparisons.

Frames are named frame_000000.png, frame_000001.png, ... so any tool that reads an image
sequence (ffmpeg -i frame_%06d.png, Blender, DaVinci) takes them in order. With audio, the
sound goes beside them as audio.wav. Each file is written under a temporary name and renamed,
so a crash never leaves a truncated PNG; an error inside the ``with`` block removes everything
the sink wrote.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import soundfile

from avatarcam.camera.sinks import (FileSigner, SinkBase, as_rate, check_audio, check_frame, check_output_dir,
                                    check_size, samples_at, temp_file, umask_mode)
from avatarcam.errors import OutputError

FRAME_NAME = "frame_{:06d}.png"
AUDIO_NAME = "audio.wav"


class FramesSink(SinkBase):
    """Writes numbered PNGs into ``directory`` (created if missing; its parent must exist)."""

    def __init__(self, directory: str | os.PathLike[str], size: tuple[int, int] = (1280, 720),
                 fps: float | Fraction = 30, audio: np.ndarray | None = None,
                 audio_rate: int = 16000, signer: FileSigner | None = None) -> None:
        self.directory = Path(directory)
        self.signer = signer  # each PNG gets its own content credentials
        self.size = check_size(size)
        self.fps = as_rate(fps)  # a PNG sequence has no clock; fps only sets the audio's length
        self.frames = 0
        self._audio = check_audio(audio, audio_rate) if audio is not None else None
        self.audio_rate = int(audio_rate)
        self._closed = False
        if self.directory.exists() and not self.directory.is_dir():
            raise OutputError(f"cannot write frames to {self.directory}: it is a file, not a directory")
        if self.directory.is_dir() and any(self.directory.glob("frame_*.png")):
            raise OutputError(f"{self.directory} already holds frame_*.png files; they would mix "
                              "with the new ones: choose an empty directory or remove them")
        check_output_dir(self.directory.parent, self.directory)
        self._created = not self.directory.exists()
        try:
            self.directory.mkdir(exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create {self.directory}: {e.strerror or e}") from None
        temp_file(self.directory, "probe", self.directory).unlink()  # writable? fail now, not mid-render
        self._mode = umask_mode()

    def write(self, frame: np.ndarray) -> None:
        if self._closed:
            raise ValueError(f"{self.directory}: write after close")
        frame = check_frame(frame, self.size)
        ok, png = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OutputError(f"could not encode frame {self.frames} as PNG")
        name = FRAME_NAME.format(self.frames)
        data = png.tobytes() if self.signer is None else self.signer.sign_png(png.tobytes(), name)
        self._atomic_write(name, data)
        self.frames += 1

    def _atomic_write(self, name: str, data: bytes) -> None:
        tmp = temp_file(self.directory, name, self.directory / name)
        try:
            tmp.write_bytes(data)
            os.chmod(tmp, self._mode)
            os.replace(tmp, self.directory / name)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"writing {self.directory / name} failed: {e.strerror or e}") from None

    def close(self) -> None:
        """Write the audio beside the frames, cut or padded to the frames' duration."""
        if self._closed:
            return
        self._closed = True
        if self._audio is not None:
            n = samples_at(self.frames, self.fps, self.audio_rate)
            audio = np.pad(self._audio[:n], (0, max(0, n - len(self._audio))))
            wav = io.BytesIO()
            soundfile.write(wav, audio, self.audio_rate, format="WAV", subtype="FLOAT")
            self._atomic_write(AUDIO_NAME, wav.getvalue())

    def discard(self) -> None:
        """Remove what this sink wrote (and the directory, if it made it and nothing else is there)."""
        self._closed = True
        for i in range(self.frames):
            (self.directory / FRAME_NAME.format(i)).unlink(missing_ok=True)
        if self._created:
            try:
                self.directory.rmdir()
            except OSError:  # someone else put files there: leave them
                pass
