"""Reading videos back: frames, audio and stream facts (PyAV).

Tests use this to check what the sinks wrote; benchmarks use it to measure rendered videos
(lip sync, watermark survival). Frames come out as HxWx3 uint8 RGB, converted with the colour
matrix the stream is tagged with, so a BT.709 file decodes to the colours that were encoded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from typing import NamedTuple

import av
import numpy as np
from av.audio.resampler import AudioResampler

PathLike = str | os.PathLike[str]


class Video(NamedTuple):
    """A decoded video; unpacks as ``frames, fps, audio, audio_rate``."""

    frames: np.ndarray  # (n, h, w, 3) uint8 RGB
    fps: Fraction
    audio: np.ndarray | None  # float32 mono, or None without an audio track
    audio_rate: int | None


def iter_frames(path: PathLike) -> Iterator[np.ndarray]:
    """Yield the video's frames one at a time as HxWx3 uint8 RGB: long videos never fill memory."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def read_audio(path: PathLike, rate: int | None = None) -> tuple[np.ndarray | None, int | None]:
    """The first audio track as float32 mono at its own rate (or ``rate``); (None, None) if none.

    Channels are averaged. The result is cut to the track's stated duration: AAC decoders emit
    the encoder's padding of the last frame, which is not part of the recording.
    """
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None, None
        stream = container.streams.audio[0]
        out_rate = rate or stream.rate
        resampler = AudioResampler(format="flt", layout="mono", rate=out_rate)
        chunks = []
        for frame in container.decode(stream):
            chunks.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray()[0] for f in resampler.resample(None))
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        if stream.duration is not None:
            audio = audio[: round(stream.duration * stream.time_base * out_rate)]
        return audio.astype(np.float32, copy=False), out_rate


def read_video(path: PathLike, audio_rate: int | None = None) -> Video:
    """Decode a whole video into memory: frames, fps, audio (resampled to ``audio_rate`` if given)."""
    with av.open(str(path)) as container:
        fps = container.streams.video[0].average_rate
    frames = np.stack(list(iter_frames(path)))
    audio, rate = read_audio(path, audio_rate)
    return Video(frames, Fraction(fps), audio, rate)


def probe(path: PathLike) -> dict[str, object]:
    """Facts about a video file from its headers, without decoding.

    Keys: video_codec, pix_fmt, width, height, fps, frames, duration, audio_codec, audio_rate,
    audio_duration (the audio keys are None without an audio track). ``frames`` falls back to
    counting packets when the container does not store it.
    """
    with av.open(str(path)) as container:
        v = container.streams.video[0]
        frames = v.frames or sum(1 for p in container.demux(v) if p.size)
        fps = v.average_rate
        info: dict[str, object] = {
            "video_codec": v.codec_context.name,
            "pix_fmt": v.codec_context.pix_fmt,
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "fps": float(fps) if fps else None,
            "frames": frames,
            "duration": _seconds(v.duration, v.time_base) or (frames / float(fps) if fps else None),
            "audio_codec": None,
            "audio_rate": None,
            "audio_duration": None,
        }
        if container.streams.audio:
            a = container.streams.audio[0]
            info.update(audio_codec=a.codec_context.name, audio_rate=a.rate,
                        audio_duration=_seconds(a.duration, a.time_base))
        return info


def _seconds(duration: int | None, time_base: Fraction | None) -> float | None:
    return float(duration * time_base) if duration is not None and time_base else None
