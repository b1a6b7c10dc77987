"""Audio loading and per-frame features, on the real speech clips in ../shared/assets/speech."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from avatarcam.audio import features
from avatarcam.audio.io import AUDIO_RATE, load_audio, resample
from avatarcam.errors import AudioError

SHORT_CLIP = "fr_commonvoice_17299458.wav"  # 3.6 s: quick to re-encode


def speech_files(speech_dir: Path) -> list[Path]:
    files = sorted(p for p in speech_dir.iterdir() if p.suffix in (".wav", ".ogg", ".flac", ".mp3"))
    assert files, f"no speech clips in {speech_dir}"
    return files


def write_with_av(path: Path, samples: np.ndarray, rate: int, codec: str, container: str) -> None:
    """Encode mono float samples with FFmpeg (PyAV), as another program would have."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.sqrt(np.mean((a[:n] - b[:n]) ** 2) / np.mean(b[:n] ** 2)))


@pytest.fixture(scope="module")
def short_clip(speech_dir: Path) -> np.ndarray:
    return load_audio(speech_dir / SHORT_CLIP)


# -- loading ---------------------------------------------------------------------------------


def test_every_speech_clip_loads(speech_dir):
    for path in speech_files(speech_dir):
        samples = load_audio(path)
        info = soundfile.info(str(path))
        assert samples.dtype == np.float32 and samples.ndim == 1, path.name
        assert abs(len(samples) - info.duration * AUDIO_RATE) <= 2, path.name
        assert np.isfinite(samples).all() and 0.05 < np.abs(samples).max() <= 1.01, path.name


def test_native_rate_and_other_rates(speech_dir):
    path = speech_dir / "en_ljspeech_LJ001-0001.wav"  # 22.05 kHz on disk
    native, native_rate = soundfile.read(str(path), dtype="float32")
    assert len(load_audio(path, rate=native_rate)) == len(native)
    np.testing.assert_allclose(load_audio(path, rate=native_rate), native)
    assert abs(len(load_audio(path, rate=8000)) - len(native) * 8000 / native_rate) <= 1


@pytest.mark.parametrize("rate", [44100, 48000, 8000])
def test_stereo_and_other_rates_give_the_same_signal(tmp_path, short_clip, rate):
    resampled = resample(short_clip, AUDIO_RATE, rate)
    stereo = np.stack([0.8 * resampled, 1.2 * resampled], axis=1)  # channel mean = the original
    path = tmp_path / f"stereo_{rate}.wav"
    soundfile.write(str(path), stereo, rate, subtype="FLOAT")
    loaded = load_audio(path)
    assert abs(len(loaded) - len(short_clip)) <= 1
    # 8 kHz loses everything above 4 kHz, so compare that one in its own band
    reference = resample(resample(short_clip, AUDIO_RATE, rate), rate, AUDIO_RATE) if rate < AUDIO_RATE else short_clip
    assert relative_error(loaded, reference) < 0.01


def test_flac_is_lossless(tmp_path, short_clip):
    path = tmp_path / "clip.flac"
    soundfile.write(str(path), short_clip, AUDIO_RATE, subtype="PCM_16")
    loaded = load_audio(path)
    assert len(loaded) == len(short_clip)
    np.testing.assert_allclose(loaded, short_clip, atol=1 / 32768 + 1e-6)


@pytest.mark.parametrize(
    "name, codec, container, rate",
    [("clip.mp3", "mp3", "mp3", AUDIO_RATE), ("clip.opus", "libopus", "ogg", 48000),
     ("clip.flac", "flac", "flac", 44100), ("clip.m4a", "aac", "mp4", AUDIO_RATE)],
)
def test_encoded_formats_load(tmp_path, short_clip, name, codec, container, rate):
    path = tmp_path / name
    write_with_av(path, resample(short_clip, AUDIO_RATE, rate), rate, codec, container)
    loaded = load_audio(path)
    if name.endswith(".m4a"):
        # PyAV's mp4 muxer writes no edit list, so the AAC encoder's 1024 priming samples stay
        # in the file; a reader cannot know to drop them. Compare after that shift.
        loaded = loaded[1024:]
    assert abs(len(loaded) - len(short_clip)) <= 0.03 * AUDIO_RATE, name
    n = min(len(loaded), len(short_clip))
    r = np.corrcoef(loaded[:n], short_clip[:n])[0, 1]
    assert r > 0.9, f"{name}: decoded signal does not match the original (r={r:.3f}): misaligned or garbled"


# -- errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        load_audio(tmp_path / "nope.wav")


def test_folder(tmp_path):
    with pytest.raises(AudioError, match="folder"):
        load_audio(tmp_path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(AudioError, match="not an audio file|no audio"):
        load_audio(path)


def test_png_renamed_wav(tmp_path):
    import cv2

    ok, png = cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))
    assert ok
    path = tmp_path / "picture.wav"
    path.write_bytes(png.tobytes())
    with pytest.raises(AudioError, match="not an audio file|no audio track"):
        load_audio(path)


def test_truncated_wav_header(tmp_path, speech_dir):
    path = tmp_path / "cut.wav"
    path.write_bytes((speech_dir / SHORT_CLIP).read_bytes()[:30])  # the header is 44 bytes
    with pytest.raises(AudioError):
        load_audio(path)


def test_empty_files(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(empty)
    no_samples = tmp_path / "no_samples.wav"
    soundfile.write(str(no_samples), np.zeros(0, np.float32), AUDIO_RATE)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(no_samples)


def test_silent_files(tmp_path):
    zeros = tmp_path / "zeros.wav"
    soundfile.write(str(zeros), np.zeros(AUDIO_RATE * 2, np.float32), AUDIO_RATE)
    with pytest.raises(AudioError, match="nothing to animate"):
        load_audio(zeros)
    hiss = tmp_path / "hiss.flac"  # a microphone left open in a quiet room: about -70 dBFS
    soundfile.write(str(hiss), np.random.default_rng(0).normal(0, 3e-4, AUDIO_RATE * 2), AUDIO_RATE)
    with pytest.raises(AudioError, match="silent"):
        load_audio(hiss)
    assert len(load_audio(hiss, allow_silent=True)) == AUDIO_RATE * 2


def test_quiet_speech_is_not_silent(tmp_path, short_clip):
    path = tmp_path / "quiet.wav"
    soundfile.write(str(path), short_clip * 0.05, AUDIO_RATE, subtype="FLOAT")  # -26 dB
    assert len(load_audio(path)) == len(short_clip)


# -- per-frame features ----------------------------------------------------------------------


@pytest.mark.parametrize("rate, fps", [(16000, 30), (22050, 30), (16000, 25), (48000, 60)])
def test_envelope_length(rate, fps):
    for n in (0, 1, rate // fps - 1, rate // fps, rate // fps + 1, rate, 3 * rate + 7):
        envelope = features.loudness_envelope(np.full(n, 0.1, np.float32), rate, fps)
        assert len(envelope) == int(np.ceil(n / rate * fps - 1e-9)), (n, rate, fps)


def test_envelope_alignment_on_a_tone_burst():
    rate, fps = 16000, 30
    t = np.arange(2 * rate) / rate
    burst = np.where((t >= 1.0) & (t < 1.5), 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    envelope = features.loudness_envelope(burst, rate, fps)
    full = 20 * np.log10(0.5 / np.sqrt(2))  # -9.0 dB: the burst's RMS level
    # frame 30 is t = 1.0 s exactly: its window is half silence, half tone (-3 dB)
    assert envelope[29] == pytest.approx(features.FLOOR_DB, abs=0.1)  # window ends at 0.987 s
    assert envelope[30] == pytest.approx(full - 3.01, abs=0.3)
    assert envelope[31] == pytest.approx(full, abs=0.2)
    # the burst ends at 1.5 s = frame 45
    assert envelope[44] == pytest.approx(full, abs=0.2)
    assert envelope[45] == pytest.approx(full - 3.01, abs=0.3)
    assert envelope[46] == pytest.approx(features.FLOOR_DB, abs=0.1)


def test_edge_windows_are_not_diluted():
    loud = np.full(16000, 0.1, np.float32)  # -20 dB everywhere, including at frame 0 and the end
    np.testing.assert_allclose(features.loudness_envelope(loud), -20.0, atol=0.01)


def test_streaming_analyzer_equals_offline(short_clip):
    offline = features.frame_features(short_clip)
    np.testing.assert_array_equal(offline.level_db, features.loudness_envelope(short_clip))
    rng = np.random.default_rng(0)
    for _ in range(3):
        analyzer, parts, start = features.FrameAnalyzer(), [], 0
        while start < len(short_clip):
            size = int(rng.integers(0, 2000))
            parts.append(analyzer.push(short_clip[start:start + size]))
            start += size
        parts.append(analyzer.flush())
        streamed = features.FrameFeatures.concat(parts)
        for name in ("level_db", "centroid_hz", "sibilance"):
            np.testing.assert_array_equal(getattr(streamed, name), getattr(offline, name), err_msg=name)


def test_analyzer_lookahead_is_half_a_window():
    analyzer = features.FrameAnalyzer(16000, 30)
    assert analyzer.lookahead_s == pytest.approx(0.020)
    # frame 1 is at 533 samples; its window ends 320 samples later
    assert len(analyzer.push(np.zeros(533 + 319, np.float32))) == 1
    assert len(analyzer.push(np.zeros(1, np.float32))) == 1


def test_spectral_centroid_tracks_pitch_of_a_tone():
    rate = 16000
    t = np.arange(rate) / rate
    low = features.frame_features(0.3 * np.sin(2 * np.pi * 300 * t).astype(np.float32))
    high = features.frame_features(0.3 * np.sin(2 * np.pi * 2500 * t).astype(np.float32))
    assert np.median(low.centroid_hz) == pytest.approx(300, rel=0.1)
    assert np.median(high.centroid_hz) == pytest.approx(2500, rel=0.05)
    hiss = features.frame_features(np.random.default_rng(0).normal(0, 0.1, rate).astype(np.float32))
    assert np.median(hiss.sibilance) > 0.4 > np.median(low.sibilance)


def test_silent_frames_and_speech_loudness_on_synthetic_speech():
    """Bursts of tone over a -50 dB hiss: the gaps are silent, the bursts are not."""
    rate, fps = 16000, 30
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 10 ** (-50 / 20), 4 * rate).astype(np.float32)
    t = np.arange(len(samples)) / rate
    on = ((t % 1.0) >= 0.3) & ((t % 1.0) < 0.7)
    samples += np.where(on, 0.2 * np.sin(2 * np.pi * 200 * t), 0).astype(np.float32)
    frame_on = ((np.arange(4 * fps) / fps) % 1.0 >= 0.3) & ((np.arange(4 * fps) / fps) % 1.0 < 0.7)
    inside = frame_on & np.roll(frame_on, 1) & np.roll(frame_on, -1)  # away from the edges
    outside = ~frame_on & ~np.roll(frame_on, 1) & ~np.roll(frame_on, -1)
    silent = features.silent_frames(samples, rate, fps)
    assert silent[outside].all() and not silent[inside].any()
    loudness = features.speech_loudness(features.loudness_envelope(samples, rate, fps))
    assert loudness.min() >= 0 and loudness.max() <= 1
    assert (loudness[outside] == 0).all() and (loudness[inside] > 0.9).all()


def test_silent_frames_on_real_speech(speech_dir):
    for name in ("en_ljspeech_LJ001-0001.wav", "en_codec2_speech_orig_16k.wav", SHORT_CLIP):
        samples = load_audio(speech_dir / name)
        silent = features.silent_frames(samples)
        envelope = features.loudness_envelope(samples)
        assert 0.05 < silent.mean() < 0.5, name
        # the silent frames are the quiet ones: every silent frame is quieter than every loud one
        assert envelope[silent].max() < np.percentile(envelope, 60), name
