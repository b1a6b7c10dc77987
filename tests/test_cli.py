"""The `avatarcam` command end to end: real photos and speech in, real videos decoded back and measured."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import cv2
import numpy as np
import pytest

from avatarcam import cli
from avatarcam.audio.features import loudness_envelope
from avatarcam.audio.io import load_audio
from avatarcam.render import gpu
from avatarcam.render.face import FaceMeasurer
from avatarcam.video import probe, read_video


def run(*args: str) -> int:
    return cli.main(list(args))


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo.mp4"
    assert run("render", "--demo", "-o", str(out), "--size", "512x512", "-q") == 0
    return out


def test_help_names_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        run("--help")
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for command in ("enroll", "profiles", "render", "doctor"):
        assert command in text


def test_console_script_renders_help():
    exe = shutil.which("avatarcam") or pytest.skip("the avatarcam console script is not on PATH")
    result = subprocess.run([exe, "render", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--audio" in result.stdout and "--size" in result.stdout


def test_demo_is_h264_aac_30fps_covering_the_clip(demo_video):
    info = probe(demo_video)
    clip = load_audio(cli.demo_audio())
    assert (info["video_codec"], info["audio_codec"], info["pix_fmt"]) == ("h264", "aac", "yuv420p")
    assert (info["width"], info["height"], info["fps"]) == (512, 512, 30)
    assert info["frames"] == int(np.ceil(len(clip) / 16000 * 30))
    assert info["audio_duration"] == pytest.approx(info["duration"], abs=1 / 30)


def test_60_fps_video_shows_the_30_fps_motion_and_the_frames_between(tmp_path):
    """--fps 60 with the learned model: twice the frames, the model's own ones those of a 30 fps render."""
    out = tmp_path / "60.mp4"
    assert run("render", "--demo", "-o", str(out), "--frames", str(tmp_path / "60"), "--size", "256x256",
               "--fps", "60", "-q") == 0
    assert run("render", "--demo", "--frames", str(tmp_path / "30"), "--size", "256x256", "-q") == 0
    info, clip = probe(out), load_audio(cli.demo_audio())
    assert info["fps"] == 60 and info["frames"] == int(np.ceil(len(clip) / 16000 * 60))
    assert info["audio_duration"] == pytest.approx(info["duration"], abs=1 / 30)
    frames = {fps: np.stack([cv2.imread(str(p)) for p in sorted((tmp_path / fps).glob("frame_*.png"))]).astype(np.int16)
              for fps in ("30", "60")}
    n = len(frames["30"]) - 1
    even, odd, base = frames["60"][0:2 * n:2], frames["60"][1:2 * n:2], frames["30"][:n]
    # the model's own frames at their instants (the watermark's state aside), the ones between elsewhere
    same, between = np.abs(even - base).mean(), np.abs(odd - base).mean()
    assert same < 0.5 and between > 3 * same, (same, between)


def test_demo_lips_follow_the_speech(demo_video, face_model):
    """The judge's jawOpen on the decoded video rises and falls with the clip's loudness."""
    video = read_video(demo_video)
    with FaceMeasurer(face_model, max_faces=1, video=True) as judge:
        jaw = np.array([judge.detect(f, int(i * 1000 / 30) + 1)[0].blendshapes["jawOpen"]
                        for i, f in enumerate(video.frames)])
    loud = loudness_envelope(load_audio(cli.demo_audio()))[:len(jaw)]
    r = np.corrcoef(jaw, loud)[0, 1]
    assert r > 0.5, f"judge jawOpen vs loudness r = {r:.2f}"
    quiet = loud < np.percentile(loud, 10)
    assert np.mean(jaw[quiet]) < 0.1


def same_pixels(a, b) -> bool:
    return np.array_equal(cv2.imread(str(a)), cv2.imread(str(b)))


def test_same_seed_same_frames_other_seed_other_motion(tmp_path, speech_dir):
    audio = str(speech_dir / "fr_commonvoice_17299458.wav")
    dirs = [tmp_path / name for name in ("a", "b", "c")]
    for d, seed in zip(dirs, ("3", "3", "4")):
        assert run("render", "--audio", audio, "--frames", str(d), "--size", "256x256", "--seed", seed, "-q") == 0
    frames = [sorted(d.glob("frame_*.png")) for d in dirs]
    assert len(frames[0]) == len(frames[1]) == len(frames[2]) > 90
    # pixels, not files: each PNG's content credentials are its own (their ids and signatures differ)
    assert all(same_pixels(p, q) for p, q in zip(frames[0], frames[1]))
    assert not all(same_pixels(p, q) for p, q in zip(frames[0], frames[2]))


def test_the_learned_model_animates_files_and_live_where_it_makes_the_frame_rate(tmp_path, speech_dir):
    audio = str(speech_dir / "fr_commonvoice_17299458.wav")
    dirs = {engine: tmp_path / engine for engine in ("default", "diffusion", "dsp")}
    for engine, d in dirs.items():
        chosen = [] if engine == "default" else ["--engine", engine]
        assert run("render", "--audio", audio, "--frames", str(d), "--size", "256x256", "-q", *chosen) == 0
    frames = {engine: sorted(d.glob("frame_*.png")) for engine, d in dirs.items()}
    assert all(same_pixels(p, q) for p, q in zip(frames["default"], frames["diffusion"]))
    assert not all(same_pixels(p, q) for p, q in zip(frames["default"], frames["dsp"]))
    live = {fps: cli._live_options(cli.build_parser().parse_args(["live", "--fps", fps]), cli.load_settings())
            for fps in ("30", "60", "25")}
    assert live["30"].engine == live["60"].engine == "diffusion"
    assert live["25"].engine == "dsp"  # the model makes 30 fps or a multiple


def test_ogg_stereo_input_renders(tmp_path, speech_dir):
    out = tmp_path / "libri.mp4"
    assert run("render", "--audio", str(speech_dir / "en_librispeech_5703-47212-0000.ogg"), "-o", str(out),
               "--size", "320x180", "-q") == 0
    assert probe(out)["frames"] > 300


def test_enroll_list_show_delete(tmp_path, portraits_dir, capsys):
    assert run("enroll", str(portraits_dir / "cartoon_boy.jpg"), "--name", "boy", "--consent", "permission",
               "--subject", "Cartoon Boy") == 0
    assert run("profiles", "list") == 0
    assert "boy" in capsys.readouterr().out.split()
    assert run("profiles", "show", "boy") == 0
    assert "Cartoon Boy" in capsys.readouterr().out
    folder = tmp_path / "xdg_data_home" / "avatarcam" / "profiles" / "boy"
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o700
    for f in folder.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    out = tmp_path / "boy.mp4"
    assert run("render", "--profile", "boy", "--audio", str(cli.demo_audio()), "-o", str(out), "--size", "256x256",
               "-q") == 0 and probe(out)["frames"] > 0
    assert run("profiles", "delete", "boy", "--yes") == 0
    assert not folder.exists()


def test_enroll_without_consent_and_without_a_terminal_refuses(portraits_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    assert run("enroll", str(portraits_dir / "cartoon_boy.jpg"), "--name", "boy") == 2
    assert "--consent" in capsys.readouterr().err
    assert run("profiles", "show", "boy") == 2


@pytest.mark.parametrize("case", ["missing audio", "corrupt audio", "no output dir", "unknown profile",
                                  "a frame rate the model cannot make"])
def test_bad_render_input_is_a_clear_error_that_writes_nothing(tmp_path, capsys, case):
    audio, out, profile, more = str(cli.demo_audio()), tmp_path / "out.mp4", "default", []
    if case == "missing audio":
        audio = str(tmp_path / "nope.wav")
    elif case == "corrupt audio":
        (tmp_path / "bad.wav").write_bytes(os.urandom(4000))
        audio = str(tmp_path / "bad.wav")
    elif case == "no output dir":
        out = tmp_path / "missing" / "out.mp4"
    elif case == "unknown profile":
        profile = "nobody"
    else:
        more = ["--fps", "45", "--engine", "diffusion"]  # auto would take the DSP driver there
    assert run("render", "--profile", profile, "--audio", audio, "-o", str(out), "-q", *more) == 2
    err = capsys.readouterr().err
    assert err.startswith("avatarcam: error:") and "Traceback" not in err
    assert list(tmp_path.rglob("*.mp4")) == []


def test_insisting_on_the_gpu_renderer_without_one_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from avatarcam.render.gpu import gpu_unavailable

    if gpu_unavailable() is None:
        pytest.skip("a GPU is present here: the GPU renderer runs")
    monkeypatch.setenv("AVATARCAM_RENDERER", "gpu")
    out = tmp_path / "out.mp4"
    assert run("render", "--demo", "-o", str(out), "--size", "512x512", "-q") == 2
    err = capsys.readouterr().err
    assert err.startswith("avatarcam: error: the GPU renderer cannot run here") and "Traceback" not in err
    assert not out.exists()
    monkeypatch.setenv("AVATARCAM_RENDERER", "cpu")  # and the setting is the way back
    assert run("render", "--demo", "-o", str(out), "--size", "256x256", "-q") == 0 and out.exists()


def test_doctor_reports_packages_encoder_and_model(capsys, face_model):
    assert run("doctor") == 0
    out = capsys.readouterr().out
    for what in ("mediapipe", "video encoder", "face landmark model", "profiles", "renderer", "motion runtime"):
        line = next(l for l in out.splitlines() if what in l)
        assert line.startswith("[ok]"), line
    if gpu.gpu_unavailable() is not None:  # this machine: it says why the CPU draws the frames
        assert f"[ok] renderer: CPU: {gpu.gpu_unavailable()}" in out


def test_doctor_says_a_gpu_renderer_setting_cannot_work_without_a_gpu(capsys, monkeypatch):
    monkeypatch.setattr(gpu, "gpu_unavailable", lambda: "no CUDA device")
    monkeypatch.setenv("AVATARCAM_RENDERER", "gpu")
    assert run("doctor") == 1
    line = next(l for l in capsys.readouterr().out.splitlines() if "renderer" in l)
    assert line.startswith("[!!]") and "no CUDA device" in line and "renders will fail" in line


def test_enroll_asks_for_consent_at_a_terminal(portraits_dir, monkeypatch, capsys):
    answers = iter(["p"])
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert run("enroll", str(portraits_dir / "cartoon_boy.jpg"), "--name", "asked", "--subject", "Cartoon Boy") == 0
    assert "someone else" in capsys.readouterr().out
    assert run("profiles", "show", "asked") == 0
    assert "(permission)" in capsys.readouterr().out
    answers = iter(["no"])
    assert run("enroll", str(portraits_dir / "cartoon_boy.jpg"), "--name", "refused") == 2
    assert "no consent given" in capsys.readouterr().err
