"""The virtual microphone against a real sound server (PulseAudio; PipeWire where installed).

Each module run starts a private server (its own runtime dir and home, a "speakers" null sink as
the default output), makes the AvatarCam sink with the project's installer, and runs the real
`avatarcam live` in a subprocess while the sink's monitor is recorded as a call app records it
(parec at 10 ms). The figures are bench.virtual_mic's. Skips only where the server cannot start.
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
import types
import wave
from pathlib import Path

import numpy as np
import pytest

from avatarcam.audio.output import PULSE_DESCRIPTION, PULSE_LOAD
from avatarcam.doctor import virtual_mic_report
from avatarcam.tray import state_of
from bench import virtual_mic as vm
from test_live_audio import wait_for

CLIP = vm.SPEECH / vm.CLIPS[0]  # 3.6 s of speech
CLIP_S = 3.6


@pytest.fixture(scope="module", params=["pulseaudio", "pipewire"])
def server(request, tmp_path_factory):
    server = vm.SoundServer(tmp_path_factory.mktemp(request.param), request.param)
    try:
        server.start()
    except vm.ServerUnavailable as exc:
        pytest.skip(f"no real {request.param} here: {exc}")
    try:
        server.install_sink()
        yield server
    finally:
        server.stop()


def describe(figures: dict) -> str:
    return json.dumps({k: v for k, v in figures.items() if k != "session"}, default=str) + f" {figures['session']}"


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy-core"])
def test_the_call_hears_the_clip_whole_and_in_step_with_the_frames(server, tmp_path, busy):
    """`avatarcam live --audio CLIP --sink file:OUT.mp4`, the monitor read back: the clip's envelope
    (r >= 0.99) and level (within 0.5 dB), no silence over 5 ms inside speech, the voice within
    20 ms of the frames' timeline; busy-core: a busy loop shares AvatarCam's core (frames late)."""
    figures = vm.run_clip(server, CLIP, tmp_path, busy)
    assert figures["envelope_r"] >= vm.BARS["envelope_r"], describe(figures)
    assert abs(figures["level_db"]) <= vm.BARS["level_db"], describe(figures)
    assert figures["gap_ms"] <= vm.BARS["gap_ms"], describe(figures)
    offset = figures["offset_ms"]
    assert offset["n"] >= 4 and max(abs(offset["min"]), abs(offset["max"])) <= vm.BARS["offset_ms"], describe(figures)
    assert figures["speakers_peak"] == 0.0, "AvatarCam's voice reached the default output"
    assert sum("playing into" in line for line in figures["log"]) == 1, figures["log"]


class Live:
    """`avatarcam live` in a subprocess with its control socket, its log lines stamped as they come."""

    def __init__(self, server: vm.SoundServer, *args: str, env: dict[str, str] | None = None) -> None:
        self.server = server
        self.env = (env or server.env) | {"PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(vm.avatarcam() + ["live", *args], env=self.env, stderr=subprocess.PIPE, text=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip()))

    def wait_line(self, text: str, after: float = 0.0, timeout_s: float = 30.0) -> float:
        """When a line with `text` came after `after` (fails the test after `timeout_s`)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for t, line in list(self.lines):
                if t >= after and text in line:
                    return t
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError(f"no line with {text!r} in {timeout_s:.0f} s: " + "\n".join(l for _, l in self.lines))

    def count(self, text: str, after: float = 0.0) -> int:
        return sum(t >= after and text in line for t, line in self.lines)

    def status(self) -> dict:
        result = subprocess.run(vm.avatarcam() + ["ctl", "status", "--json"], env=self.env, capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["status"]

    def tray(self) -> str:
        """What the tray's icon would show for this status (its state is a function of the status)."""
        status = self.status()
        return state_of(types.SimpleNamespace(started=0.0, status=lambda: status))[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            subprocess.run(vm.avatarcam() + ["ctl", "quit"], env=self.env, capture_output=True, timeout=30)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)


def voice_peak(server: vm.SoundServer, seconds: float = CLIP_S + 0.2) -> float:
    """The loudest sample in the AvatarCam sink's monitor over the next `seconds` (speech peaks over
    0.1). By default a whole turn of the looped clip: a shorter window can fall in its quiet ends
    (1.5 s of it peak at 0.014 to 0.23, depending on where in the clip they start)."""
    reader = vm.MonitorReader(server.env, f"{vm.SINK}.monitor")
    time.sleep(seconds)
    return float(np.abs(reader.stop().samples).max(initial=0.0))


def avatarcam_inputs(server: vm.SoundServer) -> list[str]:
    """The sinks AvatarCam's voice plays into now."""
    return [sink for sink, app in server.sink_inputs() if app == "AvatarCam"]


def test_server_killed_and_restarted_the_voice_returns_within_two_seconds(server):
    live = Live(server, "--audio", str(CLIP), "--loop", "--sink", "null", "--size", "320x180")
    try:
        live.wait_line("playing into", timeout_s=60)
        assert wait_for(lambda: live.status()["virtual_mic"] == f"ok: {PULSE_DESCRIPTION}", 5)
        assert live.tray() == "live" and avatarcam_inputs(server) == [vm.SINK]
        assert voice_peak(server) > 0.05
        killed = time.monotonic()
        server.kill()
        down = live.wait_line("virtual microphone stopped", after=killed, timeout_s=2.0)
        status = live.status()
        assert "stopped" in status["virtual_mic"] and live.tray() == "no virtual microphone", status["virtual_mic"]
        time.sleep(1.0)
        assert live.count("virtual microphone stopped", after=killed) == 1  # said once, not at every retry
        server.start()  # its default.pa (the installer's) loads the sink again
        back = time.monotonic()  # the server answers, with its sink (AvatarCam may be back already)
        assert vm.SINK in server.sinks()
        up = live.wait_line("playing into", after=down, timeout_s=2.0)
        assert up - back <= 2.0
        assert wait_for(lambda: live.status()["virtual_mic"] == f"ok: {PULSE_DESCRIPTION}", 1)
        assert live.tray() == "live" and avatarcam_inputs(server) == [vm.SINK]
        assert voice_peak(server) > 0.05
        assert live.count("virtual microphone stopped", after=killed) == 1 and live.count("playing into", after=killed) == 1
        print(f"down logged {1000 * (down - killed):.0f} ms after the kill; back {1000 * (up - back):.0f} ms "
              "after the server and its sink were")
    finally:
        live.stop()


def test_sink_unloaded_the_voice_stops_and_plays_nowhere_else_then_returns_within_two_seconds(server):
    speakers = vm.MonitorReader(server.env, f"{vm.SPEAKERS}.monitor")
    live = Live(server, "--audio", str(CLIP), "--loop", "--sink", "null", "--size", "320x180")
    try:
        live.wait_line("playing into", timeout_s=60)
        assert wait_for(lambda: avatarcam_inputs(server) == [vm.SINK], 5)
        unloaded = time.monotonic()
        server.unload_sink()
        down = live.wait_line("virtual microphone stopped", after=unloaded, timeout_s=2.0)
        print(next(line for t, line in live.lines if t == down))
        status = live.status()["virtual_mic"]
        assert status.startswith("virtual microphone stopped") and "nothing plays elsewhere" in status, status
        assert live.tray() == "no virtual microphone"
        for _ in range(10):  # a second with the sink gone: AvatarCam plays into no other output
            assert avatarcam_inputs(server) == [], server.sink_inputs()
            time.sleep(0.1)
        # the sink again, made with the hint doctor and the messages give
        made = subprocess.run(PULSE_LOAD, shell=True, env=server.env, capture_output=True, text=True, timeout=10)
        assert made.returncode == 0, made.stderr
        back = time.monotonic()  # the sink is there (AvatarCam may be back already)
        up = live.wait_line("playing into", after=down, timeout_s=2.0)
        assert up - back <= 2.0
        assert f"Description: {PULSE_DESCRIPTION}" in server.pactl("list", "sinks")
        assert wait_for(lambda: live.status()["virtual_mic"] == f"ok: {PULSE_DESCRIPTION}", 1)
        assert avatarcam_inputs(server) == [vm.SINK] and voice_peak(server) > 0.05
    finally:
        live.stop()
        elsewhere = speakers.stop()
    assert elsewhere.samples.size > 0 and np.abs(elsewhere.samples).max() == 0.0, "the voice reached the speakers"


def test_the_microphone_reopens_mid_run_and_the_virtual_microphone_plays_on(server, tmp_path):
    """The real microphone path (PortAudio's "pulse" device) fed by a tone; the microphone stalls
    mid-run (its source suspended) and is reopened: the voice's stream is never touched."""
    if server.kind == "pipewire":
        pytest.skip("PipeWire keeps a suspended source streaming (silence), so a microphone cannot be stalled "
                    "there; the reopen is tested on PulseAudio")
    if not Path("/usr/share/alsa/alsa.conf.d/50-pulseaudio.conf").exists():
        pytest.skip("PortAudio has no 'pulse' device without the ALSA pulse plugin (apt install libasound2-plugins)")
    server.pactl("load-module", "module-null-sink", "sink_name=micfeed")
    tone = tmp_path / "tone.wav"
    t = np.arange(60 * 16000) / 16000
    with wave.open(str(tone), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((0.3 * 32767 * np.sin(2 * math.pi * 440 * t)).astype("<i2").tobytes())
    player = subprocess.Popen(["paplay", "--device=micfeed", str(tone)], env=server.env)
    live = Live(server, "--mic", "pulse", "--sink", "null", "--size", "320x180",
                env=server.env | {"PULSE_SOURCE": "micfeed.monitor"})
    try:
        live.wait_line("playing into", timeout_s=60)
        live.wait_line("microphone open", timeout_s=10)
        assert wait_for(lambda: voice_peak(server, 0.5) > 0.2, 10), "the tone never reached the virtual microphone"
        voice_stream = server.pactl("list", "short", "sink-inputs").splitlines()
        stalled = time.monotonic()
        server.pactl("suspend-sink", "micfeed", "1")  # the microphone stalls, as an unplugged one does
        live.wait_line("reopening it", after=stalled, timeout_s=5)
        assert wait_for(lambda: live.status()["microphone"].startswith("no microphone"), 2)
        time.sleep(1.5)  # it keeps trying while the microphone is gone
        server.pactl("suspend-sink", "micfeed", "0")
        live.wait_line("microphone open", after=stalled, timeout_s=5)
        assert wait_for(lambda: live.status()["microphone"] == "ok", 5)
        assert wait_for(lambda: voice_peak(server, 0.5) > 0.2, 5), "the voice did not come back after the reopen"
        assert server.pactl("list", "short", "sink-inputs").splitlines() == voice_stream  # the same stream throughout
        assert live.count("virtual microphone stopped") == 0 and live.count("playing into") == 1
        assert live.status()["virtual_mic"] == f"ok: {PULSE_DESCRIPTION}"
    finally:
        live.stop()
        player.kill()
        player.wait()


def test_doctor_names_the_server_and_the_sink_and_gives_the_hint_when_it_is_gone(server, monkeypatch):
    for var in ("PULSE_SERVER", "XDG_RUNTIME_DIR", "HOME"):
        monkeypatch.setenv(var, server.env[var])
    ok, _, detail = virtual_mic_report("linux")
    assert ok and f"'{PULSE_DESCRIPTION}' (sink {vm.SINK}) on" in detail, detail
    assert ("PipeWire" in detail) == (server.kind == "pipewire"), detail
    server.unload_sink()
    try:
        ok, _, detail = virtual_mic_report("linux")
        assert not ok and PULSE_LOAD in detail and "install.sh" in detail, detail
    finally:
        subprocess.run(PULSE_LOAD, shell=True, env=server.env, check=True, capture_output=True, timeout=10)
