"""Sinks write what players expect, and fail early and cleanly when they cannot."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile

from avatarcam.camera import open_sink, preview
from avatarcam.camera.file import VideoSink
from avatarcam.camera.frames import FramesSink
from avatarcam.camera.sinks import NullSink, Sink
from avatarcam.errors import OutputError
from avatarcam.video import iter_frames, probe, read_audio, read_video

FPS = 30
RATE = 16000


def smooth_frame(w: int, h: int, i: int) -> np.ndarray:
    """A smooth, moving colour pattern: H.264 at crf 20 should keep it nearly intact."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = i / FPS
    r = 128 + 90 * np.sin(2 * np.pi * (x / w + t * 0.5))
    g = 128 + 90 * np.sin(2 * np.pi * (y / h - t * 0.3))
    b = 128 + 90 * np.sin(2 * np.pi * ((x + y) / (w + h) + t * 0.2))
    return np.stack([r, g, b], -1).round().astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited resampling by truncating or zero-padding the spectrum (numpy only)."""
    n = round(len(x) * dst / src)
    spectrum = np.fft.rfft(x)
    out = np.zeros(n // 2 + 1, complex)
    m = min(len(spectrum), len(out))
    out[:m] = spectrum[:m]
    return (np.fft.irfft(out, n) * (n / len(x))).astype(np.float32)


@pytest.fixture(scope="module")
def speech(speech_dir: Path) -> np.ndarray:
    """Two seconds of real read speech at 16 kHz."""
    audio, rate = soundfile.read(speech_dir / "en_ljspeech_LJ001-0001.wav", dtype="float32")
    return resample(audio, rate, RATE)[: 2 * RATE]


@pytest.mark.parametrize("size", [(512, 512), (1280, 720)])
def test_mp4_round_trip(tmp_path: Path, speech: np.ndarray, size: tuple[int, int]) -> None:
    w, h = size
    n = 2 * FPS
    out = tmp_path / "out.mp4"
    written = [smooth_frame(w, h, i) for i in range(n)]
    with VideoSink(out, size=size, fps=FPS, audio=speech, audio_rate=RATE) as sink:
        assert isinstance(sink, Sink)
        for frame in written:
            sink.write(frame)
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]  # no temporary file left behind

    info = probe(out)
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == size
    assert info["fps"] == FPS and info["frames"] == n
    assert info["duration"] == pytest.approx(n / FPS, abs=1e-6)
    assert abs(info["audio_duration"] - info["duration"]) < 1 / FPS

    data = out.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")  # +faststart: index before media

    frames, fps, audio, rate = read_video(out, audio_rate=RATE)
    assert fps == FPS and frames.shape == (n, h, w, 3) and frames.dtype == np.uint8
    worst = min(psnr(a, b) for a, b in zip(frames, written, strict=True))
    assert worst > 35, f"decoded frames differ from written ones: worst PSNR {worst:.1f} dB"

    assert rate == RATE and abs(len(audio) / RATE - n / FPS) < 1 / FPS
    k = min(len(audio), len(speech))
    corr = np.corrcoef(audio[:k], speech[:k])[0, 1]
    assert corr > 0.9, f"decoded audio does not match the speech written (correlation {corr:.2f})"


def test_live_audio_arriving_behind_the_frames_is_all_recorded(tmp_path: Path, speech: np.ndarray) -> None:
    """A live stream's audio comes in chunks that can trail the frames; none of it may be lost."""
    from avatarcam.audio.stream import AudioRing

    ring = AudioRing(rate=RATE)
    n = 2 * FPS
    out = tmp_path / "live.mp4"
    lag = 5  # the audio for a frame arrives 5 frames after it
    per_frame = RATE // FPS
    with VideoSink(out, size=(64, 64), fps=FPS, audio=ring, audio_rate=RATE) as sink:
        for i in range(n):
            if i >= lag:
                ring.write(speech[(i - lag) * per_frame:(i - lag + 1) * per_frame])
            sink.write(smooth_frame(64, 64, i))
        for i in range(n - lag, n):  # the last chunks come in before the stream closes
            ring.write(speech[i * per_frame:(i + 1) * per_frame])
    info = probe(out)
    assert abs(info["audio_duration"] - info["duration"]) < 1 / FPS
    _, _, audio, _ = read_video(out, audio_rate=RATE)
    k = min(len(audio), len(speech))
    corr = np.corrcoef(audio[:k], speech[:k])[0, 1]
    assert corr > 0.9, f"the recorded audio does not match the stream (correlation {corr:.2f})"


def test_audio_and_video_stay_in_sync(tmp_path: Path) -> None:
    """A white flash at t=1 s and a click at t=1 s decode within one frame of each other."""
    size, n = (256, 144), 2 * FPS
    audio = np.zeros(n * RATE // FPS, np.float32)
    audio[RATE : RATE + 80] = 0.8  # 5 ms click at exactly 1.0 s
    out = tmp_path / "sync.mp4"
    with VideoSink(out, size=size, fps=FPS, audio=audio, audio_rate=RATE) as sink:
        for i in range(n):
            sink.write(np.full((144, 256, 3), 255 if i == FPS else 20, np.uint8))

    flash = int(np.argmax([f.mean() for f in iter_frames(out)])) / FPS
    decoded, rate = read_audio(out)
    click = int(np.argmax(np.abs(decoded) > 0.4)) / rate
    assert abs(flash - 1.0) < 1 / FPS, f"flash decoded at {flash:.3f} s"
    assert abs(click - 1.0) < 1 / FPS, f"click decoded at {click:.3f} s"
    assert abs(click - flash) < 1 / FPS


def test_audio_is_cut_or_padded_to_the_video(tmp_path: Path) -> None:
    for seconds in (0.5, 3.0):
        out = tmp_path / f"a{seconds}.mp4"
        audio = np.full(int(seconds * RATE), 0.1, np.float32)
        with VideoSink(out, size=(64, 64), audio=audio, audio_rate=RATE) as sink:
            for _ in range(FPS):
                sink.write(np.zeros((64, 64, 3), np.uint8))
        info = probe(out)
        assert abs(info["audio_duration"] - 1.0) < 1 / FPS


def test_output_directory_missing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        VideoSink(tmp_path / "nope" / "out.mp4", size=(64, 64))


def test_output_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        VideoSink(tmp_path / "file" / "out.mp4", size=(64, 64))


def test_output_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a directory"):
        VideoSink(tmp_path, size=(64, 64))


def test_output_directory_not_writable(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes through permission bits: use a file system that refuses
        target = Path("/sys/avatarcam-test.mp4")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        target = locked / "out.mp4"
    with pytest.raises(OutputError, match="not writable"):
        VideoSink(target, size=(64, 64))
    assert not target.exists()


def test_wrong_frames_are_refused_and_nothing_is_left(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match=r"\(512, 512, 3\)"):
        with VideoSink(out, size=(512, 512)) as sink:
            sink.write(np.zeros((512, 512, 3), np.uint8))
            sink.write(np.zeros((720, 1280, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        with VideoSink(out, size=(64, 64)) as sink:
            sink.write(np.zeros((64, 64, 3), np.float32))
    assert os.listdir(tmp_path) == []


def test_exception_removes_the_temporary_file_and_keeps_the_old_output(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous render")
    with pytest.raises(RuntimeError):
        with VideoSink(out, size=(64, 64)) as sink:
            for _ in range(5):
                sink.write(np.zeros((64, 64, 3), np.uint8))
            assert len(os.listdir(tmp_path)) == 2  # the old file and the hidden temporary one
            raise RuntimeError("crash mid-render")
    assert os.listdir(tmp_path) == ["out.mp4"]
    assert out.read_bytes() == b"previous render"


def test_closing_without_frames_saves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no frames"):
        VideoSink(tmp_path / "out.mp4", size=(64, 64)).close()
    assert os.listdir(tmp_path) == []


def test_frames_sink_writes_pngs_that_read_back_identical(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    written = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    folder = tmp_path / "frames"
    audio = np.linspace(-0.5, 0.5, RATE // 5, dtype=np.float32)
    with FramesSink(folder, size=(64, 48), fps=FPS, audio=audio, audio_rate=RATE) as sink:
        for frame in written:
            sink.write(frame)
    names = sorted(os.listdir(folder))
    assert names == ["audio.wav", "frame_000000.png", "frame_000001.png", "frame_000002.png"]
    for name, frame in zip(names[1:], written, strict=True):
        back = cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(back, frame)
    sound, rate = soundfile.read(folder / "audio.wav", dtype="float32")
    assert rate == RATE and len(sound) == 3 * RATE // FPS  # cut to the three frames
    np.testing.assert_array_equal(sound, audio[: len(sound)])


def test_frames_sink_errors_and_cleanup(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        FramesSink(tmp_path / "a" / "b", size=(64, 48))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        FramesSink(tmp_path / "file", size=(64, 48))
    with pytest.raises(ValueError, match=r"\(48, 64, 3\)"):
        with FramesSink(tmp_path / "frames", size=(64, 48)) as sink:
            sink.write(np.zeros((48, 64, 3), np.uint8))
            sink.write(np.zeros((64, 48, 3), np.uint8))
    assert os.listdir(tmp_path) == ["file"]  # the folder it made is gone again
    with FramesSink(tmp_path / "frames", size=(64, 48)) as sink:
        sink.write(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(OutputError, match="already holds"):  # old and new frames would mix
        FramesSink(tmp_path / "frames", size=(64, 48))


def test_open_sink_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_sink("null", (64, 64), FPS), NullSink)
    for spec in (f"file:{tmp_path / 'a.mp4'}", str(tmp_path / "b.MP4")):
        sink = open_sink(spec, (64, 64), FPS)
        assert isinstance(sink, VideoSink)
        sink.discard()
    sink = open_sink(f"frames:{tmp_path / 'f'}", (64, 64), FPS)
    assert isinstance(sink, FramesSink)
    sink.close()
    with pytest.raises(ValueError, match="frames:DIR"):
        open_sink("webm:x", (64, 64), FPS)


def test_open_sink_opens_the_live_outputs_or_says_why_not(monkeypatch, tmp_path: Path) -> None:
    """`camera` and `preview` come from the same factory as files: here, with no camera device and
    no display, each is one clear error naming what is missing."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(OutputError, match="needs a display"):
        open_sink("preview", (64, 64), FPS)
    with pytest.raises(OutputError, match=str(tmp_path / "video9")):
        open_sink("camera", (64, 64), FPS, camera=str(tmp_path / "video9"))


def test_a_preview_opens_beside_the_sink_while_wanted(monkeypatch) -> None:
    """The tray's "show preview": frames reach the session's sink always, and a window beside it
    only while wanted; a window that cannot open is reported once and the sink goes on."""
    class Window:  # the edge of the machine: a HighGUI window
        opened: list[Window] = []

        def __init__(self, size, on_close=None):
            self.frames, self.closed = 0, False
            Window.opened.append(self)

        def write(self, frame):
            self.frames += 1

        def close(self):
            self.closed = True

    class Kept:
        def __init__(self):
            self.frames, self.closed = 0, False

        def write(self, frame):
            self.frames += 1

        def close(self):
            self.closed = True

    frame = np.zeros((48, 64, 3), np.uint8)
    wanted, errors, kept = [False], [], Kept()
    sink = preview.WithPreview(kept, (64, 48), wanted=lambda: wanted[0], on_close=lambda: None,
                               on_error=errors.append)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    sink.write(frame)
    wanted[0] = True
    sink.write(frame)  # no display here: the real window refuses, once, and the stream goes on
    assert len(errors) == 1 and "display" in errors[0] and sink.preview is None and kept.frames == 2
    monkeypatch.setattr(preview, "PreviewSink", Window)
    for _ in range(3):
        sink.write(frame)
    wanted[0] = False
    sink.write(frame)
    (window,) = Window.opened
    assert window.frames == 3 and window.closed and sink.preview is None and kept.frames == 6
    sink.close()
    assert kept.closed


def test_null_sink_counts_and_checks() -> None:
    with NullSink((64, 64)) as sink:
        for _ in range(4):
            sink.write(np.zeros((64, 64, 3), np.uint8))
        with pytest.raises(ValueError):
            sink.write(np.zeros((32, 32, 3), np.uint8))
    assert sink.frames == 4


def test_bad_settings_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        VideoSink(tmp_path / "o.mp4", size=(513, 512))
    with pytest.raises(OutputError, match="preset"):
        VideoSink(tmp_path / "o.mp4", size=(64, 64), preset="bogus")
    assert os.listdir(tmp_path) == []
