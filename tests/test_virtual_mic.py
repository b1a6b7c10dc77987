"""The virtual microphone without a sound server: PulseOutput's reconnection, status and log
lines with the stream replaced at libpulse's edge, the daemon feeding it from the audio ring on
its own clock, and one device name everywhere. tests/test_virtual_mic_server.py runs the same
against a real PulseAudio."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import numpy as np

from avatarcam.audio import libpulse
from avatarcam.audio.capture import FileCapture
from avatarcam.audio.output import PULSE_DESCRIPTION, PULSE_LOAD, PULSE_SINK, DelayedOutput
from avatarcam.audio.pulse import PulseOutput
from avatarcam.audio.stream import AudioRing
from avatarcam.chain import Shot
from avatarcam.daemon import Daemon, LiveOptions
from test_live_audio import wait_for

REPO = Path(__file__).resolve().parents[1]
RATE = 16000


class Server:
    """A sound server as libpulse shows it to PulseOutput: up or down, with or without the sink.
    Streams it opens play at the real clock's pace (the server asks for what was heard)."""

    def __init__(self) -> None:
        self.running, self.has_sink = True, False
        self.streams: list[FakeStream] = []
        self.lock = threading.Lock()

    def open(self, sink: str, rate: int, latency_s: float) -> FakeStream:
        if not self.running:
            raise libpulse.PulseError("cannot reach the sound server: Connection refused", libpulse.ERR_CONNECTIONREFUSED)
        if not self.has_sink:
            raise libpulse.PulseError(f"cannot play into {sink}: No such entity", libpulse.ERR_NOENTITY)
        stream = FakeStream(self, sink, rate, latency_s)
        with self.lock:
            self.streams.append(stream)
        return stream


class FakeStream:
    def __init__(self, server: Server, sink: str, rate: int, latency_s: float) -> None:
        self.server, self.sink, self.rate, self.latency_s = server, sink, rate, latency_s
        self.opened = time.monotonic()
        self.written = 0
        self.closed = False
        self.blocks: list[np.ndarray] = []

    def wait(self, timeout_s: float) -> None:
        time.sleep(min(timeout_s, 0.005))

    def check(self) -> None:
        if not self.server.running:
            raise libpulse.PulseError("the sound server went away: Connection terminated", 11)
        if not self.server.has_sink:
            raise libpulse.PulseError(f"the stream into {self.sink} ended: Entity killed", libpulse.ERR_KILLED)

    def writable(self) -> int:
        heard = int((time.monotonic() - self.opened) * self.rate)
        return max(0, heard + int(self.latency_s * self.rate) - self.written)

    def ahead_s(self) -> float | None:
        return (self.written - (time.monotonic() - self.opened) * self.rate) / self.rate

    def write(self, samples: np.ndarray) -> None:
        self.blocks.append(np.array(samples))
        self.written += len(samples)

    def close(self) -> None:
        self.closed = True


def test_pulse_output_waits_for_the_sink_plays_and_comes_back_after_each_fault(caplog):
    server = Server()
    ring = AudioRing()
    output = PulseOutput(retry_s=0.05, open_stream=server.open)
    caplog.set_level(logging.DEBUG, logger="avatarcam.audio.pulse")
    output.start(DelayedOutput(ring, time.monotonic(), 0.1))
    try:
        assert wait_for(lambda: "stopped" in output.status)
        assert PULSE_LOAD in output.status and "install.sh" in output.status  # says how to create it
        time.sleep(0.2)  # it keeps retrying without saying so again
        server.has_sink = True  # created after start
        assert wait_for(lambda: output.playing, timeout=1.0)
        assert output.status == f"ok: {PULSE_DESCRIPTION}"
        assert wait_for(lambda: server.streams[-1].written > RATE // 10)
        server.has_sink = False  # unloaded: the stream ends (pinned, never moved) and the output says so
        assert wait_for(lambda: not output.playing, timeout=1.0)
        assert "was removed" in output.status and "nothing plays elsewhere" in output.status
        assert server.streams[-1].closed
        server.has_sink = True
        assert wait_for(lambda: output.playing, timeout=1.0)
        server.running = False  # the server killed
        assert wait_for(lambda: not output.playing, timeout=1.0)
        time.sleep(0.2)
        server.running = True  # restarted (with its sink)
        assert wait_for(lambda: output.playing, timeout=1.0)
    finally:
        output.stop()
    assert output.opens == 3 and output.status == "stopped"
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO
            and ("playing into" in r.getMessage() or "stopped:" in r.getMessage())]
    # one line each way: waiting at start, back, removed, back, server gone, back
    assert [level for level, _ in said] == [logging.WARNING, logging.INFO] * 3
    assert "no 'AvatarCam Microphone' sink" in said[0][1] and "was removed" in said[2][1]
    assert "no sound server" in said[4][1] or "went away" in said[4][1]


def test_pulse_output_pulls_each_block_for_the_moment_it_will_be_heard():
    """The stream's own clock decides what plays: samples written now are heard `ahead_s` from now,
    so they are the ring's samples for that moment minus the delay, without a gap between blocks."""
    server = Server()
    server.has_sink = True
    ring = AudioRing(seconds=4)
    ring.write(np.arange(4 * RATE, dtype=np.float32))  # sample k holds k: what was read is readable
    origin = time.monotonic()
    output = PulseOutput(open_stream=server.open)
    output.start(DelayedOutput(ring, origin, 0.1))
    try:
        assert wait_for(lambda: server.streams and server.streams[0].written > RATE // 2)
    finally:
        output.stop()
    stream = server.streams[0]
    played = np.concatenate(stream.blocks)
    steps = np.diff(played[played > 0])
    assert np.all(steps == 1), "blocks must follow each other sample for sample"
    # the first block's first sample is heard latency_s after the stream opened: its stream time
    # is that moment minus the delay
    heard = stream.opened + stream.latency_s
    expected = (heard - 0.1 - origin) * RATE
    assert abs(played[np.argmax(played > 0)] - max(expected, 1)) < 0.01 * RATE


def test_a_capture_held_up_on_a_busy_core_delays_the_voice_but_never_cuts_it():
    """The capture stalls 60 ms mid-stream (a busy core), longer than the 40 ms the voice reads
    behind it (delay 100 ms less the server's 60 ms buffer) but shorter than the delay: the server's
    buffer plays on meanwhile, and every sample reaches the sink once, in order, with no silence
    written in their place."""
    server = Server()
    server.has_sink = True
    ring = AudioRing(seconds=4)
    origin = time.monotonic()
    block = RATE // 100
    stop = threading.Event()

    def capture() -> None:  # sample k holds k + 1 (never 0), written as it is due, 10 ms at a time
        k = 0
        while not stop.is_set() and k < 3 * RATE:
            if k == RATE // 2:
                time.sleep(0.06)
            time.sleep(max(0.0, origin + (k + block) / RATE - time.monotonic()))
            ring.write(np.arange(k + 1, k + block + 1, dtype=np.float32))
            k += block

    feeder = threading.Thread(target=capture, daemon=True)
    output = PulseOutput(open_stream=server.open)
    feeder.start()
    output.start(DelayedOutput(ring, origin, 0.1))
    try:
        assert wait_for(lambda: server.streams and server.streams[0].written > RATE, timeout=5.0)
    finally:
        output.stop()
        stop.set()
        feeder.join()
    played = np.concatenate(server.streams[0].blocks)
    voice = played[np.argmax(played > 0):]
    assert voice.size > RATE // 2 + RATE // 10  # well past the stall
    assert np.all(np.diff(voice) == 1), f"{np.sum(voice == 0)} samples of silence inside the voice"


class ClockedRecorder:
    """A sound card at the machine's edge: pulls 10 ms blocks on the real clock and keeps them."""

    name = "recorder"
    status = "ok: recorder"

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        pass

    def start(self, source: DelayedOutput) -> None:
        def run() -> None:
            start, k, n = time.monotonic(), 0, RATE // 100
            while not self._stop.wait(max(0.0, start + k * 0.01 - time.monotonic())):
                self.blocks.append(source.pull(n, start + k * 0.01))
                k += 1
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def test_the_voice_has_no_gap_however_late_the_render_loop_is(monkeypatch):
    """Frames that take 250 ms each (well past the 100 ms delay) leave the voice whole: the ring
    is written as the audio arrives, not between frames."""
    slow = Shot.frame

    def late(self, motion):
        time.sleep(0.25)
        return slow(self, motion)

    monkeypatch.setattr(Shot, "frame", late)
    t = np.arange(int(2.0 * RATE)) / RATE
    clip = (0.3 * np.cos(2 * np.pi * 300 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    recorder = ClockedRecorder()
    daemon = Daemon(LiveOptions(size=(320, 180), sink="null", engine="dsp", delay_s=0.1, control=False),
                    capture=FileCapture(clip), output=recorder)
    summary = daemon.run()
    assert not summary["errors"] and daemon.status()["virtual_mic"] == "ok: recorder"
    played = np.concatenate(recorder.blocks)
    start = int(np.argmax(np.abs(played) > 1e-4))
    voice = played[start:start + len(clip) - RATE // 5]  # the run may end before the last samples play
    assert len(voice) > 1.5 * RATE
    np.testing.assert_allclose(voice, clip[:len(voice)], atol=1e-6)


def test_one_device_name_everywhere():
    """The sink is `avatarcam_mic`, shown as "AvatarCam Microphone": the installer, doctor's hint,
    the README and every message name it so, and nothing names it otherwise."""
    install = (REPO / "installers/linux/install.sh").read_text()
    assert f"SINK_NAME={PULSE_SINK}\n" in install and f'SINK_DESCRIPTION="{PULSE_DESCRIPTION}"\n' in install
    sources = [p for p in (REPO / "avatarcam").rglob("*.py")] + [REPO / "README.md", REPO / "installers/linux/install.sh"]
    variants = re.compile(r"AvatarCam[ _-]?Microphone", re.IGNORECASE)
    for path in sources:
        for match in variants.finditer(path.read_text()):
            assert match.group(0) == PULSE_DESCRIPTION, f"{path.relative_to(REPO)} names the device {match.group(0)!r}"
    readme = (REPO / "README.md").read_text()
    assert f"Monitor of {PULSE_DESCRIPTION}" in readme
