"""Sinks: where finished frames go (the end of the frame chain).

Every output, a file, a folder of PNGs, a virtual camera, a preview window or nothing at all,
takes the same two calls, so the pipeline that feeds it never knows which one it has. Sinks are
context managers: leaving the ``with`` block normally finishes the output; leaving it through an
exception discards it, so a failed render never looks like a finished one.

This module holds the interface, the checks every sink shares, the null sink and the tee; each
backend lives in its own module (``file.py``, ``frames.py``, ``virtual.py``, ``preview.py``) and
``avatarcam.camera.open_sink`` opens the one a spec names.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from avatarcam.errors import OutputError


@runtime_checkable
class Sink(Protocol):
    """Anything that takes RGB frames: ``write`` each one, ``close`` once at the end."""

    def write(self, frame: np.ndarray) -> None:
        """Take one HxWx3 uint8 RGB frame."""

    def close(self) -> None:
        """Finish the output; the sink takes no frames after this."""

    def __enter__(self) -> Sink: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


S = TypeVar("S", bound="SinkBase")


class SinkBase:
    """Context-manager plumbing shared by the sinks: close on success, discard on error.

    ``discard`` defaults to ``close``: a live output (camera, window) has nothing to roll back;
    file outputs override it to remove what they wrote.
    """

    def write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        """Stop after an error, leaving nothing that looks like a finished output."""
        self.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def check_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame as a C-contiguous HxWx3 uint8 array, or a ValueError naming the shape expected.

    Catching a wrong frame here gives the caller a message about *their* array instead of an
    encoder error several layers down.
    """
    w, h = size
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (h, w, 3):
        got = (f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray)
               else type(frame).__name__)
        raise ValueError(f"expected an RGB frame of shape {(h, w, 3)} (height, width, 3) "
                         f"and dtype uint8 for size {w}x{h}, got {got}")
    return np.ascontiguousarray(frame)


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) as ints; both even, since H.264 in yuv420p halves them for colour."""
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise ValueError(f"size {w}x{h}: width and height must be positive and even")
    return w, h


def as_rate(fps: float | Fraction) -> Fraction:
    """A frame rate as an exact fraction (30 -> 30/1, 29.97 -> 2997/100)."""
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


def check_audio(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mono float samples as a contiguous float32 vector, or a ValueError saying what is wrong."""
    if int(rate) <= 0:
        raise ValueError(f"audio_rate must be positive, got {rate}")
    a = np.asarray(audio)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"audio must be mono float samples of shape (n,), got {a.shape} {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError("audio holds NaN or infinite samples")
    return np.ascontiguousarray(a, dtype=np.float32)


def samples_at(frames: int, fps: Fraction, rate: int) -> int:
    """Audio samples in ``frames`` video frames: where the audio must end to end with the video."""
    return round(frames * rate / fps)


def check_output_dir(directory: Path, what: Path) -> None:
    """Raise OutputError, saying what to do, unless ``directory`` is an existing directory."""
    if not directory.exists():
        raise OutputError(f"cannot write {what}: the directory {directory} does not exist; "
                          "create it first or choose another path")
    if not directory.is_dir():
        raise OutputError(f"cannot write {what}: {directory} is not a directory")


def temp_file(directory: Path, name: str, what: Path) -> Path:
    """Create an empty hidden temporary file in ``directory``, or raise OutputError.

    Outputs are written under such a name and renamed when complete, so a crash never leaves a
    half-written file under the name the user asked for. Creating it is also the only honest
    test that the directory is writable: root ignores permission bits, and a read-only or
    virtual file system refuses whatever they say.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
    except OSError as e:
        raise OutputError(f"cannot write {what}: the directory {directory} is not writable "
                          f"({e.strerror or e}); choose another path") from None
    os.close(fd)
    return Path(tmp)


def umask_mode(mode: int = 0o666) -> int:
    """The permission bits a plain ``open()`` would give a new file, honouring the umask.

    Temporary files are created private (0600); the finished file should look like any other.
    """
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


class NullSink(SinkBase):
    """Counts frames and drops them: the sink for benchmarks, where any output would be noise."""

    def __init__(self, size: tuple[int, int] | None = None) -> None:
        self.size = check_size(size) if size is not None else None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self.size is not None:
            check_frame(frame, self.size)
        self.frames += 1

    def close(self) -> None:
        pass


class Tee(SinkBase):
    """Several open sinks as one: every frame goes to each (a render to a video and to frames)."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    def write(self, frame: np.ndarray) -> None:
        for sink in self.sinks:
            sink.write(frame)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class FileSigner(Protocol):
    """Puts content credentials into finished files (provenance.credentials.ContentSigner)."""

    def sign_file(self, source: Path, final: Path) -> list[Path]:
        """Move the complete file `source` to `final`, signed; the paths written."""

    def sign_png(self, png: bytes, title: str) -> bytes:
        """A PNG's bytes with its manifest inside."""
