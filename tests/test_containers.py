"""`avatarcam render -o` writes the container the name asks for (.mp4, .mov, .mkv: H.264 + AAC;
.webm: VP9 + Opus), decoded back here; any other name is a one-line error that writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from avatarcam import cli
from avatarcam.audio.features import frame_count
from avatarcam.camera.file import VideoSink, video_format
from avatarcam.camera import open_sink
from avatarcam.errors import OutputError
from avatarcam.video import probe, read_video

SIZE = (640, 360)
SECONDS = 2.5
STREAMS = {".mp4": ("h264", "aac"), ".mov": ("h264", "aac"), ".mkv": ("h264", "aac"), ".webm": ("vp9", "opus")}


def run(*args: str) -> int:
    return cli.main(list(args))


@pytest.fixture(scope="module")
def clip(speech_dir, tmp_path_factory) -> Path:
    """2.5 s of real read speech."""
    audio, rate = soundfile.read(speech_dir / "en_ljspeech_LJ001-0001.wav", dtype="float32")
    path = tmp_path_factory.mktemp("clip") / "clip.wav"
    soundfile.write(path, audio[:int(SECONDS * rate)], rate)
    return path


@pytest.fixture(scope="module", params=sorted(STREAMS))
def rendered(request, clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / f"talk{request.param}"
    assert run("render", "--audio", str(clip), "-o", str(out), "--size", "x".join(map(str, SIZE)),
               "--engine", "dsp", "-q") == 0
    return out


def test_render_writes_the_container_the_name_asks_for(rendered):
    video, audio = STREAMS[rendered.suffix]
    info = probe(rendered)
    assert (info["video_codec"], info["audio_codec"]) == (video, audio)
    assert (info["width"], info["height"]) == SIZE
    frames, fps, sound, rate = read_video(rendered, 16000)
    assert fps == 30 and frames.shape == (frame_count(int(SECONDS * 16000), 16000, 30), SIZE[1], SIZE[0], 3)
    assert frames.std() > 20  # a picture, not a blank
    assert sound is not None and abs(len(sound) / rate - SECONDS) < 0.1
    assert np.sqrt(np.mean(sound ** 2)) > 0.01  # the speech, not silence
    # no temporary file left; MKV and WebM cannot hold a C2PA manifest: it lies beside them
    sidecar = [] if rendered.suffix in (".mp4", ".mov") else [rendered.with_suffix(".c2pa").name]
    assert sorted(p.name for p in rendered.parent.iterdir()) == sorted([rendered.name, *sidecar])


@pytest.mark.parametrize("rendered", [".webm"], indirect=True)
def test_verify_reads_the_watermark_back_from_a_webm(rendered, capsys):
    """On VP9, the codec furthest from the H.264 the watermark was tuned on."""
    capsys.readouterr()
    assert run("verify", str(rendered)) == 0
    assert "\n  watermark     found\n" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["talk.avi", "talk", "folder", "new_folder/"])
def test_a_name_no_container_answers_is_one_line_and_writes_nothing(name, clip, tmp_path, capsys):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    if name == "folder":
        (outputs / name).mkdir()
    capsys.readouterr()
    code = run("render", "--audio", str(clip), "-o", str(outputs) + "/" + name, "--size", "320x180",
               "--engine", "dsp", "-q")
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("avatarcam: error: cannot write"), err
    assert "use .mp4, .mov, .mkv or .webm, or --frames DIR for PNG frames" in lines[0]
    assert [str(p.relative_to(outputs)) for p in outputs.rglob("*")] == (["folder"] if name == "folder" else [])


def test_the_sinks_take_the_containers_and_refuse_other_names(tmp_path):
    for suffix, (video, _) in STREAMS.items():
        assert video_format(tmp_path / f"a{suffix.upper()}") is video_format(tmp_path / f"a{suffix}")
        sink = open_sink(str(tmp_path / f"b{suffix}"), (64, 64), 30)
        assert isinstance(sink, VideoSink)
        sink.discard()
    for bad in (tmp_path / "c.avi", tmp_path / "c", tmp_path):
        with pytest.raises(OutputError, match="use .mp4, .mov, .mkv or .webm"):
            VideoSink(bad, size=(64, 64))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_sink_factory_knows_every_container_the_file_sink_writes():
    """`open_sink` tells a video file by its name without loading FFmpeg: its list of extensions
    must be the file sink's formats, or a name one of them writes would be refused."""
    from avatarcam.camera.file import FORMATS
    from avatarcam.camera import VIDEO_SUFFIXES

    assert set(VIDEO_SUFFIXES) == set(FORMATS)
