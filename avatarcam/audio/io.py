"""Reading audio files into the one format the rest of AvatarCam uses: 16 kHz mono float32.

soundfile (libsndfile) reads the common formats quickly and exactly; PyAV (FFmpeg) reads what a
given libsndfile build cannot (mp3 on older builds, opus on some, m4a/aac, video containers).
Every failure becomes an `AudioError` that says what is wrong and what to do, because a user
handing us a wrong file should never see a decoder traceback.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from avatarcam.audio.features import SILENCE_DBFS, WINDOW_S
from avatarcam.errors import AudioError

AUDIO_RATE = 16000  # Hz; every audio feature and motion generator works at this rate


def load_audio(path: str | Path, rate: int = AUDIO_RATE, *, allow_silent: bool = False) -> np.ndarray:
    """Read an audio file as mono float32 samples at `rate` Hz.

    Channels are averaged; the rate is converted with a polyphase filter (scipy's
    `resample_poly`, linear phase, so the result stays aligned in time with the original).
    Raises `AudioError` when the file is missing, is not audio, is empty, or is silent
    (its loudest 40 ms below SILENCE_DBFS = -60 dBFS) unless `allow_silent`: a silent file
    would only ever give a still face.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file {path} does not exist; check the path and the file name")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file; give the path of a wav, flac, ogg or mp3 file")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file {path} is empty (0 bytes); record or export the audio again")

    samples, native_rate = _read_any(path)
    if samples.shape[0] == 0:
        raise AudioError(f"audio file {path} holds no audio samples; record or export the audio again")
    mono = np.nan_to_num(samples.mean(axis=1, dtype=np.float64)).astype(np.float32)
    mono = resample(mono, native_rate, rate)
    if not allow_silent:
        level = peak_level_dbfs(mono, rate)
        if level < SILENCE_DBFS:
            what = "digital silence" if level == -np.inf else f"at most {level:.0f} dBFS"
            raise AudioError(
                f"audio file {path} is silent ({what}), so there is nothing to animate; "
                "check that the right microphone or track was recorded, or raise its volume"
            )
    return mono


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Convert mono float samples from `rate_in` to `rate_out` Hz (polyphase, anti-aliased)."""
    if rate_in == rate_out:
        return samples.astype(np.float32, copy=False)
    ratio = Fraction(int(rate_out), int(rate_in))
    out = resample_poly(samples, ratio.numerator, ratio.denominator)
    return out.astype(np.float32, copy=False)


def peak_level_dbfs(samples: np.ndarray, rate: int, window_s: float = WINDOW_S) -> float:
    """Level of the loudest `window_s` stretch, dB RMS re full scale (-inf for digital silence).

    A windowed RMS rather than the sample peak, so a single click in a silent file does not
    count as something to animate.
    """
    width = max(1, int(round(window_s * rate)))
    if samples.size == 0:
        return -np.inf
    energy = np.square(samples, dtype=np.float64)
    if samples.size <= width:
        loudest = energy.mean()
    else:
        sums = np.cumsum(energy)
        loudest = np.max(sums[width - 1:] - np.concatenate(([0.0], sums[:-width]))) / width
    return float(10 * np.log10(loudest)) if loudest > 0 else -np.inf


def _read_any(path: Path) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 samples and their rate, by soundfile or else by PyAV."""
    try:
        samples, native_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return samples, int(native_rate)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        pass  # not a format this libsndfile reads; FFmpeg reads far more
    return _read_with_av(path)


def _read_with_av(path: Path) -> tuple[np.ndarray, int]:
    import av  # imported here: only needed for the formats libsndfile cannot read

    not_audio = (
        f"{path} is not an audio file this program can read, or it is damaged; "
        "convert it to wav, flac, ogg or mp3 and try again"
    )
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise AudioError(not_audio) from e
    with container:
        if not container.streams.audio:
            raise AudioError(
                f"{path} holds no audio track (is it an image or a different kind of file?); "
                "give a wav, flac, ogg or mp3 file"
            )
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="fltp")  # planar float, native rate and channels
        blocks: list[np.ndarray] = []
        native_rate = stream.codec_context.sample_rate or stream.rate
        try:
            for frame in container.decode(stream):
                native_rate = frame.sample_rate
                for converted in to_float.resample(frame):
                    blocks.append(converted.to_ndarray())
            for converted in to_float.resample(None):
                blocks.append(converted.to_ndarray())
        except av.FFmpegError as e:
            if not blocks:
                raise AudioError(not_audio) from e
            # a damaged tail: keep what decoded, as players do
    if not blocks or not native_rate:
        raise AudioError(f"audio file {path} holds no audio samples; record or export the audio again")
    channels = min(block.shape[0] for block in blocks)
    samples = np.concatenate([block[:channels] for block in blocks], axis=1).T
    return np.ascontiguousarray(samples, dtype=np.float32), int(native_rate)
