"""VideoSink: H.264 + AAC in an MP4 that every player, browser and editor opens, or the container
the file's name asks for (`FORMATS`): .mov and .mkv hold the same streams, .webm VP9 + Opus.

Choices and why:
- libx264, yuv420p, ``+faststart``: the one combination that plays everywhere, and the index at
  the front lets a browser start playing before the whole file has arrived.
- WebM allows only VP8/VP9/AV1 and Vorbis/Opus: VP9 at constant quality (crf, no bit-rate cap),
  libvpx's realtime deadline at its fastest setting (the good-quality one encodes 720p at a few
  frames a second), Opus at 48 kHz.
- BT.709 colour, limited range, tagged in the stream: players assume BT.709 for HD and would
  shift colours of an untagged BT.601 encode; tagging makes every size unambiguous.
- Timestamps are frame numbers in a 1/fps time base, so the file runs at exactly ``fps``.
- Audio is fed to the encoder as the video advances, one frame's worth at a time, so the muxer
  gets both streams in step and interleaves them closely (players keep sync and memory stays
  flat). The audio track is cut or padded with silence to the video's length: the two end
  together.
- The audio is a whole clip (offline) or a live stream still being captured (an `AudioRing`
  from the live daemon): then each frame takes what has arrived of its audio and the rest
  follows with later frames, so the sound is never cut short by a frame that came early.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np
from av.audio.resampler import AudioResampler

from avatarcam.camera.sinks import (FileSigner, SinkBase, as_rate, check_audio, check_frame, check_output_dir,
                                    check_size, samples_at, temp_file, umask_mode)
from avatarcam.errors import OutputError

AAC_RATE = 48_000  # what video tools and browsers expect; speech at 16 kHz is resampled up to it
AAC_BIT_RATE = 128_000
OPUS_BIT_RATE = 96_000  # Opus runs at 48 kHz only
VP9_CRF = 31  # libvpx's constant quality, 0..63 (what its authors suggest for 720p)


@dataclass(frozen=True)
class VideoFormat:
    """A container AvatarCam writes and the streams in it."""

    muxer: str          # FFmpeg's name of the container
    video: str          # video encoder
    audio: str          # audio encoder
    audio_bit_rate: int
    options: dict[str, str] = field(default_factory=dict)  # the muxer's


_MOV_FLAGS = {"movflags": "+faststart"}
FORMATS = {  # by the file name's extension, lower case
    ".mp4": VideoFormat("mp4", "libx264", "aac", AAC_BIT_RATE, _MOV_FLAGS),
    ".mov": VideoFormat("mov", "libx264", "aac", AAC_BIT_RATE, _MOV_FLAGS),
    ".mkv": VideoFormat("matroska", "libx264", "aac", AAC_BIT_RATE),
    ".webm": VideoFormat("webm", "libvpx-vp9", "libopus", OPUS_BIT_RATE),
}
NAMES = ".mp4, .mov, .mkv or .webm"


def video_format(path: str | os.PathLike[str]) -> VideoFormat:
    """The format a video file's name asks for, or an OutputError saying which names work."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory, not a video's name; use {NAMES}")
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        what = f"{path.suffix!r} is not a video format AvatarCam writes" if path.suffix else "the name has no extension"
        raise OutputError(f"cannot write {path}: {what}; use {NAMES}")
    return found


class AudioStream(Protocol):
    """Audio still arriving, by absolute sample index (avatarcam.audio.stream.AudioRing)."""

    end: int  # one past the newest sample

    def read(self, start: int, n: int) -> np.ndarray:
        """Samples [start, start + n), zeros where there are none."""


class _Clip:
    """A whole clip as an AudioStream: everything has arrived, silence after its end."""

    end = sys.maxsize  # all of it is known: the clip, then silence

    def __init__(self, samples: np.ndarray) -> None:
        self.samples = samples

    def read(self, start: int, n: int) -> np.ndarray:
        chunk = self.samples[start:start + n]
        return chunk if len(chunk) == n else np.concatenate([chunk, np.zeros(n - len(chunk), np.float32)])


class VideoSink(SinkBase):
    """Writes frames (and optional audio) to a video file, atomically: it appears complete or not at all.

    The container is the one the name's extension asks for (`FORMATS`: .mp4, .mov, .mkv, .webm).
    `audio` is a whole clip of mono float samples, or an AudioStream being filled as frames come.
    `crf` is H.264's (VP9 takes `VP9_CRF` unless given one), `preset` x264's. With a `signer`, the
    finished file gets its content credentials (a C2PA manifest) before it takes its final name.
    `threads` is the video encoder's (0: FFmpeg's choice, by the machine's cores). The encoded
    picture depends on it (x264 cuts each frame into a slice per thread), so a file meant to be
    the same on every machine gives a fixed number.
    """

    def __init__(self, path: str | os.PathLike[str], size: tuple[int, int] = (1280, 720),
                 fps: float | Fraction = 30, audio: np.ndarray | AudioStream | None = None,
                 audio_rate: int = 16000, crf: int | None = None, preset: str = "veryfast",
                 aac_rate: int = AAC_RATE, signer: FileSigner | None = None, threads: int = 0) -> None:
        self.path = Path(path)
        self.threads = threads
        self.signer = signer
        self.format = video_format(self.path)
        self.size = check_size(size)
        self.fps = as_rate(fps)
        self.frames = 0
        if audio is not None and not hasattr(audio, "read"):
            audio = _Clip(check_audio(audio, audio_rate))
        self._audio: AudioStream | None = audio
        self.audio_rate = int(audio_rate)
        check_output_dir(self.path.parent, self.path)
        self._tmp = temp_file(self.path.parent, self.path.name, self.path)
        self._closed = False
        try:
            self._open(crf, preset, aac_rate)
        except av.FFmpegError as e:
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot set up the encoder for {self.path} "
                              f"(crf={crf}, preset={preset!r}): {e}") from None
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def _open(self, crf: int | None, preset: str, aac_rate: int) -> None:
        fmt = self.format
        self._container = av.open(str(self._tmp), "w", format=fmt.muxer, container_options=dict(fmt.options))
        if fmt.video == "libx264":
            options = {"crf": str(20 if crf is None else crf), "preset": preset}
        else:  # VP9: constant quality, as fast as libvpx goes
            options = {"crf": str(VP9_CRF if crf is None else crf), "b": "0", "deadline": "realtime",
                       "cpu-used": "8", "row-mt": "1"}
        video = self._container.add_stream(fmt.video, rate=self.fps, options=options)
        video.width, video.height = self.size
        video.pix_fmt = "yuv420p"
        cc = video.codec_context
        cc.thread_count = self.threads
        cc.colorspace = cc.color_primaries = cc.color_trc = 1  # AVCOL_*_BT709
        cc.color_range = 1  # AVCOL_RANGE_MPEG (limited): what players assume for video
        self._video = video
        self._audio_stream = None
        self._resampler = None
        self._audio_fed = 0  # input samples handed to the encoder so far
        if self._audio is not None:
            rate = aac_rate if fmt.audio == "aac" else 48_000
            self._audio_stream = self._container.add_stream(fmt.audio, rate=rate, layout="mono")
            self._audio_stream.bit_rate = fmt.audio_bit_rate
            # the encoder's own sample format: planar float for AAC, interleaved for Opus
            self._resampler = AudioResampler(format=self._audio_stream.codec_context.format.name,
                                             layout="mono", rate=rate)
        self._container.start_encoding()  # opens the encoders now: a bad setting fails here, not mid-render

    def write(self, frame: np.ndarray) -> None:
        if self._closed:
            raise ValueError(f"{self.path}: write after close")
        frame = check_frame(frame, self.size)
        # rgb24 -> yuv420p with the BT.709 matrix the stream is tagged with (swscale's default is BT.601).
        yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
            format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        yuv.pts = self.frames
        self._mux(self._video.encode(yuv))
        self.frames += 1
        if self._audio is not None:
            self._feed_audio(min(samples_at(self.frames, self.fps, self.audio_rate), self._audio.end))

    def _feed_audio(self, end: int) -> None:
        """Encode input samples up to ``end``, padding with silence past the end of the audio."""
        start = self._audio_fed
        if end <= start:
            return
        chunk = self._audio.read(start, end - start)
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
        frame.sample_rate = self.audio_rate
        frame.time_base = Fraction(1, self.audio_rate)
        frame.pts = start
        for resampled in self._resampler.resample(frame):
            self._mux(self._audio_stream.encode(resampled))
        self._audio_fed = end

    def _mux(self, packets: Iterable[av.Packet]) -> None:
        try:
            self._container.mux(packets)
        except av.FFmpegError as e:
            raise OutputError(f"writing {self.path} failed: {e}") from e

    def close(self) -> None:
        """Flush the encoders, finish the file and move it to its final name."""
        if self._closed:
            return
        if self.frames == 0:
            self.discard()
            raise OutputError(f"no frames were written to {self.path}, so it was not saved")
        try:
            self._mux(self._video.encode(None))
            if self._audio_stream is not None:
                self._feed_audio(samples_at(self.frames, self.fps, self.audio_rate))
                for resampled in self._resampler.resample(None):
                    self._mux(self._audio_stream.encode(resampled))
                self._mux(self._audio_stream.encode(None))
            self._container.close()
            self._closed = True
            os.chmod(self._tmp, umask_mode())
            if self.signer is not None:  # signs into a second temp file, renamed over the final name
                self.signer.sign_file(self._tmp, self.path)
            else:
                os.replace(self._tmp, self.path)
        except (OSError, av.FFmpegError) as e:
            self.discard()
            raise OutputError(f"finishing {self.path} failed: {e}") from e
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Drop the half-written file; the final name is never touched."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except Exception:  # already failing; the temp file goes either way
                pass
        self._tmp.unlink(missing_ok=True)
