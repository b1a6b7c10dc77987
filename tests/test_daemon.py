"""The live daemon end to end: the same chain as offline, faults, control channel, shutdown.

Runs use a short clip at real-time pace and small frames; assertions are about content (which
frames, in which order, what the mouth does), never about how fast anything was.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from avatarcam import chain, control
from avatarcam.audio.capture import FileCapture, MicCapture
from avatarcam.audio.features import loudness_envelope
from avatarcam.audio.io import load_audio
from avatarcam.cli import demo_audio
from avatarcam.config import Settings
from avatarcam.daemon import Daemon, LiveOptions, ProfileSlot, Showing
from avatarcam.errors import AvatarCamError
from avatarcam.motion.controls import ControlledEngine
from avatarcam.profiles import load_profile
from avatarcam.render import facemesh as fm
from avatarcam.render import open_renderer
from test_live_audio import FakeSoundDevice, wait_for

SIZE = (320, 180)
CLIP_S = 3.0


class RecordingSink:
    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.closed = False

    def write(self, frame: np.ndarray) -> None:
        self.frames.append(frame)

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return load_audio(demo_audio())[: int(CLIP_S * 16000)]


@pytest.fixture  # per test: after conftest has isolated the user dirs (the watermark names this
def offline(clip):  # installation's key, which lives there)
    """The chain's frames for the clip as fast as it goes, marked as `avatarcam render` marks
    them. The DSP driver: its frames do not depend on how the audio was cut, where the learned
    model, live on a busy machine, makes late frames together (motion.diffusion.CATCH_UP)."""
    from avatarcam.provenance.stamp import Provenance

    settings = Settings()
    profile = load_profile("default", settings)
    renderer = open_renderer(profile, SIZE)
    sink = RecordingSink()
    chain.run(chain.file_chunks(clip), chain.motion_engine("dsp", seed=0), renderer, renderer.scene.rig.rest, sink,
              provenance=Provenance.for_profile(profile, SIZE, settings))  # as `avatarcam render` marks them
    return sink.frames, renderer


def match_offline(offline: list[np.ndarray], shown: list[np.ndarray]) -> list[int | None]:
    """For each shown frame, the offline frame it is (None if none is).

    The invisible watermark carries state from frame to frame (its texture map is refreshed in
    turns), so a live stream that starts with a few extra frames is marked a little differently
    from the offline render. Everything else must be identical: frames are compared on their
    full-resolution difference with the watermark's amplitude as the only tolerance.
    """
    stack = np.stack(offline).astype(np.int16)
    out: list[int | None] = []
    for frame in shown:
        diff = np.abs(stack - frame.astype(np.int16))
        worst = diff.reshape(len(stack), -1).mean(axis=1)
        best = int(worst.argmin())
        out.append(best if worst[best] < 0.5 and diff[best].max() <= 8 else None)
    return out


def start(daemon: Daemon) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(daemon.run()), daemon=True)
    thread.start()
    return thread, result


def options(**kw) -> LiveOptions:
    return LiveOptions(**({"size": SIZE, "sink": "null", "virtual_mic": "off", "control": False} | kw))


def mouth_darkness(frames: list[np.ndarray], renderer) -> np.ndarray:
    """How much darker the mouth box is than at rest: an open mouth shows its cavity."""
    rest = renderer.scene.rig.rest
    points = renderer.scene.points(rest)
    lips = points[list(fm.LIPS_UPPER_OUTER + fm.LIPS_LOWER_OUTER), :2]
    (x0, y0), (x1, y1) = np.floor(lips.min(0)).astype(int), np.ceil(lips.max(0)).astype(int)
    y1 += (y1 - y0) // 2  # room for the jaw to drop
    reference = renderer.render(rest)[y0:y1, x0:x1].mean()
    return np.array([reference - f[y0:y1, x0:x1].mean() for f in frames])


def test_file_driven_live_run_shows_the_offline_frames_in_order_and_the_mouth_follows(clip, offline):
    frames, renderer = offline
    sink = RecordingSink()
    # a generous budget: on a busy machine frames later than their tick are skipped, by design
    daemon = Daemon(options(engine="dsp", delay_s=0.5), capture=FileCapture(clip), sink=sink)
    summary = daemon.run()  # returns once the file's last frame has been shown
    assert sink.closed and not summary["errors"]
    # the placeholder (the rest pose) may lead; every other frame is an offline frame, in order
    live = match_offline(frames, sink.frames)
    first = next(i for i, v in enumerate(live) if v is not None)
    assert all(v is not None for v in live[first:]), "a live frame differs from every offline frame"
    assert live[first:] == sorted(live[first:])
    assert live[-1] == len(frames) - 1
    distinct = sorted(set(live[first:]))
    assert len(distinct) >= 0.5 * len(frames)
    # the mouth opens with the voice: darkness of the mouth box against the loudness envelope
    envelope = loudness_envelope(clip)[distinct]
    darkness = mouth_darkness([frames[i] for i in distinct], renderer)
    assert np.corrcoef(envelope, darkness)[0, 1] > 0.5
    assert summary["frames"]["ticks"] == len(sink.frames)


def test_live_frames_carry_the_label_and_watermark_of_the_sessions_settings(clip, tmp_path):
    """The daemon's own settings mark its frames: its label corner, and the watermark naming its
    installation (its data dir's key) and the profile's consent record. (The chain used to make
    a stage of its own from the environment's settings: live frames came out labelled top-left
    and naming another installation.)"""
    from avatarcam.config import Settings
    from avatarcam.provenance.label import Label, LabelStyle
    from avatarcam.provenance.stamp import payload_for
    from avatarcam.provenance.watermark import detect_frames

    settings = Settings(label_corner="bottom-right", data_dir=tmp_path / "another installation")
    sink = RecordingSink()
    summary = Daemon(options(engine="dsp", delay_s=0.5), settings, capture=FileCapture(clip), sink=sink).run()
    assert not summary["errors"] and len(sink.frames) > 60

    def text_shown(frame: np.ndarray, corner: str) -> bool:
        """Whether the label's fully opaque text pixels are in `corner`, exactly as it draws them."""
        label = Label(SIZE, LabelStyle(corner=corner))
        x, y, w, h = label.box
        on_black, on_white = (label.draw(np.full((SIZE[1], SIZE[0], 3), v, np.uint8))[y:y + h, x:x + w]
                              for v in (0, 255))
        text = np.all(on_black == on_white, axis=-1)
        return bool(np.array_equal(frame[y:y + h, x:x + w][text], on_black[text]))

    assert all(text_shown(f, "bottom-right") for f in sink.frames)
    assert not any(text_shown(f, "top-left") for f in sink.frames)
    found = detect_frames(sink.frames[-60:])
    assert found.found and found.payload == payload_for(load_profile("default", settings).consent, settings)


@pytest.mark.parametrize("spec,codec", [("file:live.mp4", "aac"), ("live.webm", "opus")])
def test_live_file_sink_records_the_voice_in_step_with_the_frames(clip, tmp_path, spec, codec):
    from avatarcam.video import probe, read_video

    out = tmp_path / spec.removeprefix("file:")
    daemon = Daemon(options(sink=spec.replace(out.name, str(out))), capture=FileCapture(clip))
    summary = daemon.run()
    assert not summary["errors"]
    info = probe(out)
    _, _, audio, _ = read_video(out, audio_rate=16000)
    assert info["audio_codec"] == codec and abs(len(audio) / 16000 - info["duration"]) < 1 / 30
    # frame i of the file shows stream time i/fps and the stream starts with the clip: the voice
    # in the file is the clip at lag 0 (the loudness envelopes, 10 ms steps, peak within 20 ms)
    k = min(len(audio), len(clip))
    env = [np.sqrt(np.convolve(x[:k] ** 2, np.ones(160) / 160, "same"))[::160] for x in (audio, clip)]
    lags = range(-10, 11)
    r = [np.corrcoef(np.roll(env[0], lag)[10:-10], env[1][10:-10])[0, 1] for lag in lags]
    assert max(r) > 0.9, f"the recorded voice does not match the clip (r {max(r):.2f})"
    assert abs(lags[int(np.argmax(r))]) <= 2, f"voice off by {lags[int(np.argmax(r))] * 10} ms"


def test_failing_microphone_keeps_idle_frames_coming_and_is_reopened():
    sd = FakeSoundDevice(plugged=False)
    mic = MicCapture(retry_s=0.05, stall_s=0.3, backend=sd)
    sink = RecordingSink()
    daemon = Daemon(options(), capture=mic, sink=sink)
    thread, _ = start(daemon)
    try:
        assert wait_for(lambda: len(sink.frames) >= 45 and mic.attempts >= 3, timeout=30)
        status = daemon.status()
        assert status["microphone"].startswith("no microphone") and status["state"] == "live"
        idle = [f.tobytes() for f in sink.frames[-30:]]
        assert len(set(idle)) > 1  # idle motion (head, blinks, gaze), not a frozen picture
        assert daemon.audio.stats.filled_samples > 0
        sd.plugged = True  # plugged back in
        assert wait_for(lambda: mic.healthy and daemon.audio.stats.chunks >= 5, timeout=20)
        assert daemon.status()["microphone"] == "ok"
        n = len(sink.frames)
        assert wait_for(lambda: len(sink.frames) > n + 10, timeout=20)
    finally:
        daemon.stop()
        thread.join(20)
    assert not thread.is_alive() and sink.closed


def short_socket() -> Path:
    # AF_UNIX paths are limited to ~100 bytes; pytest's tmp_path can be longer
    return Path(tempfile.mkdtemp(prefix="ac-", dir="/tmp")) / "control.sock"


def test_control_round_trip_over_the_real_socket(clip):
    path = short_socket()
    daemon = Daemon(options(control=True, socket=path), capture=FileCapture(clip, loop=True), sink=RecordingSink())
    thread, _ = start(daemon)
    try:
        assert wait_for(path.exists, timeout=30)
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        reply = control.request({"command": "status"}, path)
        assert reply["ok"] and reply["status"]["profile"] == "default" and reply["status"]["pid"] == os.getpid()
        assert control.request({"command": "emotion", "name": "happy"}, path)["status"]["emotion"] == "happy"
        bad = control.request({"command": "emotion", "name": "furious"}, path)
        assert not bad["ok"] and "happy" in bad["message"]
        assert control.request({"command": "pause"}, path)["status"]["state"] == "paused"
        assert control.request({"command": "resume"}, path)["status"]["state"] == "live"
        missing = control.request({"command": "profile", "name": "nobody"}, path)
        assert not missing["ok"] and "still showing 'default'" in missing["message"]
        assert control.request({"command": "profile", "name": "default"}, path)["ok"]
        assert not control.request({"command": "reboot"}, path)["ok"]
        with pytest.raises(control.ControlError, match="already running"):
            control.ControlServer(lambda r: {}, path).start()
        assert control.request({"command": "quit"}, path)["ok"]
        thread.join(20)
        assert not thread.is_alive()
    finally:
        daemon.stop()
        thread.join(5)
    assert not path.exists()
    with pytest.raises(control.ControlError, match="not running"):
        control.request({"command": "status"}, path)


def test_profile_switch_failure_keeps_the_old_profile():
    settings = Settings()
    profile = load_profile("default", settings)
    renderer = open_renderer(profile, SIZE)
    slot = ProfileSlot(Showing.of(profile, renderer, settings))
    shot = slot.showing.shot

    def broken(profile, size):
        raise ValueError("rig has no triangles")

    with pytest.raises(AvatarCamError, match="rig has no triangles.*still showing 'default'"):
        slot.load("default", settings, opener=broken)
    with pytest.raises(AvatarCamError, match="no profile named 'ghost'"):
        slot.load("ghost", settings, opener=open_renderer)
    assert slot.take() is shot and shot.renderer is renderer and shot.rest is renderer.scene.rig.rest
    assert slot.swaps == 0
    # a good one goes on air at the start of the next frame, renderer, stamp and rest as one (the
    # helper-process build is used in the control test)
    other = Settings(label_corner="bottom-right")
    slot.load("default", other, opener=open_renderer)
    assert slot.showing.shot is shot
    new = slot.take()
    assert new.renderer is not renderer and new.rest is new.renderer.scene.rig.rest and slot.swaps == 1
    assert new.stamp is not shot.stamp and new.stamp.settings is other  # the stage made from the settings given
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.renderer = renderer  # a shot on air is never changed, only replaced


def test_emotion_lies_under_speech_and_neutral_changes_nothing(clip):
    plain = chain.motion_engine("dsp", seed=0)
    neutral = ControlledEngine(chain.motion_engine("dsp", seed=0))
    happy = ControlledEngine(chain.motion_engine("dsp", seed=0), emotion="neutral")
    happy.emotion = "happy"
    a = np.concatenate([plain.push(clip), plain.flush()])
    b = np.concatenate([neutral.push(clip), neutral.flush()])
    c = np.concatenate([happy.push(clip), happy.flush()])
    assert np.array_equal(a, b)
    from avatarcam import latent
    smile, jaw = latent.index("mouthSmileLeft"), latent.index("jawOpen")
    assert c[0, smile] < c[30, smile] < c[-1, smile] <= 0.55 + 1e-6  # eases in
    assert np.array_equal(c[:, jaw], a[:, jaw]) and np.array_equal(c[:, :8], a[:, :8])  # speech and pose untouched


def test_sigterm_shuts_down_cleanly_and_finishes_the_output(tmp_path):
    out = tmp_path / "live.mp4"
    cmd = [sys.executable, "-m", "avatarcam.cli", "live", "--audio", str(demo_audio()), "--loop",
           "--sink", f"file:{out}", "--size", "320x180", "--no-control", "--virtual-mic", "off"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "live: profile" in line:
                break
        time.sleep(1.0)  # let some frames through
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + rest
    assert "frames sent" in rest
    from avatarcam.video import probe
    info = probe(out)
    assert info["frames"] > 0 and (info["width"], info["height"]) == (320, 180)


def test_frames_already_late_are_not_rendered():
    """After a stall the chain skips rendering frames past their tick (motion still advances)."""
    from types import SimpleNamespace

    class Numbered:  # one motion frame per chunk, carrying the chunk's number
        def push(self, samples):
            return samples[None, :]

        def flush(self):
            return np.zeros((0, 1))

    clock = [0.0]
    rendered, written = [], []
    shot = SimpleNamespace(frame=lambda m: rendered.append(int(m[0])) or np.full((1,), m[0] + 100))
    sink = SimpleNamespace(write=lambda frame: written.append(int(frame[0])))

    def stall(index):
        if index == 2:
            clock[0] = 0.1 + 10 / 30  # a stall: it is now frame 10's tick

    daemon = Daemon(options(fps=30), Settings(), clock=lambda: clock[0])  # the daemon's own rule of lateness
    daemon.pacer = SimpleNamespace(due=lambda index: 0.1 + index / 30)
    count = chain.stream([np.array([i]) for i in range(12)], Numbered(), lambda: shot, sink, late=daemon._late,
                         on_frame=stall)
    assert count == 12 and rendered == [0, 1, 2, 9, 10, 11]  # 3..8 too late: not rendered
    assert written == [100, 101, 102] + [102] * 6 + [109, 110, 111]  # the last frame stands in, marked once
    assert daemon.skipped == 6
