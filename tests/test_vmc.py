"""VMC output, end to end: a live run driven by a speech file at real-time pace, sending to a real
python-osc server on loopback and, through a plain UDP relay that forwards the very same
datagrams, to liblo's `oscdump` (a second OSC implementation, in C). Plus the address checks."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from avatarcam import cli, control, latent
from avatarcam.arkit import shapes
from avatarcam.arkit.vmc import DEFAULT, VmcSink, parse_address, sink_address
from avatarcam.audio.capture import FileCapture
from avatarcam.audio.features import loudness_envelope
from avatarcam.audio.io import load_audio
from avatarcam.camera.sinks import NullSink
from avatarcam.daemon import Daemon, LiveOptions
from avatarcam.errors import AvatarCamError, SettingsError
from avatarcam.tray import state_of

CLIP = "en_librispeech_5703-47212-0000"
CLIP_S = 8.0
FPS = 30
NAMES = shapes.PERFECT_SYNC + shapes.PRESETS
# each bundle, in order: availability, time, two bones, 58 values, apply
LAYOUT = ["/VMC/Ext/OK", "/VMC/Ext/T", "/VMC/Ext/Bone/Pos", "/VMC/Ext/Bone/Pos"] + \
    ["/VMC/Ext/Blend/Val"] * len(NAMES) + ["/VMC/Ext/Blend/Apply"]


class Receiver:
    """python-osc's own UDP server on loopback, recording (arrival, address, args) of every message."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, str, tuple]] = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.messages.append((time.monotonic(), address, args)))
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)  # one thread: messages stay in order
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bundles(self) -> list[tuple[float, list[tuple[str, tuple]]]]:
        """Messages grouped per bundle (each opens with /VMC/Ext/OK), with the first one's arrival time."""
        out = []
        for arrived, address, args in self.messages:
            if address == "/VMC/Ext/OK":
                out.append((arrived, []))
            out[-1][1].append((address, args))
        return out


class Relay:
    """A plain UDP socket forwarding each datagram, unparsed, to several ports: two readers see one stream."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            for port in self.ports:
                self.sock.sendto(data, ("127.0.0.1", port))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_oscdump(port: int, out: Path) -> subprocess.Popen:
    """oscdump listening on `port`, its lines in `out`; returns once it has printed a probe message."""
    dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=out.open("w"), stderr=subprocess.STDOUT)
    probe = SimpleUDPClient("127.0.0.1", port)
    deadline = time.monotonic() + 10
    while "/probe" not in out.read_text():
        assert time.monotonic() < deadline and dump.poll() is None, f"oscdump did not start: {out.read_text()}"
        probe.send_message("/probe", 1)
        time.sleep(0.05)
    return dump


def parse_oscdump(text: str) -> list[tuple[str, tuple]]:
    """oscdump's lines ('<timetag> <address> <types> <args...>') as (address, args) in python-osc's types."""
    messages = []
    for line in text.splitlines():
        fields = shlex.split(line)
        if len(fields) < 2 or fields[1] == "/probe":
            continue
        address, types, values = fields[1], fields[2] if len(fields) > 2 else "", fields[3:]
        convert = {"i": int, "f": float, "s": str}
        messages.append((address, tuple(convert[t](v) for t, v in zip(types, values))))
    return messages


@pytest.fixture(scope="module")
def clip(speech_dir) -> np.ndarray:
    path = next(p for p in speech_dir.iterdir() if p.stem == CLIP)
    return load_audio(path)[: int(CLIP_S * 16000)]


@pytest.fixture(scope="module")
def live_run(clip, tmp_path_factory):
    """One live session, --sink vmc, driven by the clip at real-time pace."""
    if shutil.which("oscdump") is None:
        pytest.skip("oscdump (Debian's liblo-tools) is not installed: .ci/run installs it")
    receiver = Receiver()
    dump_port = free_udp_port()
    dump_out = tmp_path_factory.mktemp("vmc") / "oscdump.txt"
    dump = start_oscdump(dump_port, dump_out)
    relay = Relay([receiver.port, dump_port])
    sent: list[np.ndarray] = []  # the motion frame of every bundle, as the pacer hands them to the sink
    original = VmcSink.write

    def recording(self, frame):
        sent.append(np.array(frame, np.float32))
        original(self, frame)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(VmcSink, "write", recording)
            # the DSP engine: a shared 2-core test machine keeps its pace; bench.vmc measures the default engine
            options = LiveOptions(fps=FPS, engine="dsp", sink=f"vmc:127.0.0.1:{relay.port}", virtual_mic="off",
                                  control=False)
            daemon = Daemon(options, capture=FileCapture(clip))
            summary = daemon.run()
            time.sleep(0.3)  # the last datagrams through the relay
    finally:
        relay.close()
        receiver.close()
        dump.terminate()
        dump.wait(timeout=5)
    return receiver, parse_oscdump(dump_out.read_text()), sent, summary, daemon


def test_every_frame_arrives_as_one_bundle_at_the_frame_rate(live_run, clip):
    receiver, _, sent, summary, daemon = live_run
    bundles = receiver.bundles()
    frames = summary["frames"]
    assert summary["errors"] == [] and summary["vmc"]["failed"] == 0
    assert len(bundles) == len(sent) == frames["ticks"] == summary["vmc"]["sent"]
    print(f"VMC pacer: {frames}")
    # every tick's bundle arrived (above); the clip's motion frames went out but for what a busy machine
    # makes the pacer drop (a frame too late for its tick: the camera's rule, not VMC's)
    assert frames["shown"] >= 0.99 * (-(-len(clip) * FPS // 16000))
    for _, messages in bundles:
        assert [address for address, _ in messages] == LAYOUT
    arrived = np.array([t for t, _ in bundles])
    rate = (len(arrived) - 1) / (arrived[-1] - arrived[0])
    print(f"VMC bundles received: {len(bundles)} at {rate:.3f} per s (frame rate {FPS})")
    assert abs(rate / FPS - 1) <= 0.01
    times = np.array([messages[1][1][0] for _, messages in bundles])  # /VMC/Ext/T
    assert np.all(np.diff(times) > 0)


def test_blendshapes_are_all_52_arkit_names_in_range_and_the_engines_values(live_run):
    receiver, _, sent, _, _ = live_run
    for (_, messages), frame in zip(receiver.bundles(), sent):
        values = dict(args for address, args in messages if address == "/VMC/Ext/Blend/Val")
        assert list(values) == list(NAMES)
        got = np.array([values[n] for n in NAMES], np.float32)
        assert np.all((got >= 0) & (got <= 1))
        want = np.concatenate([shapes.blendshapes(frame), shapes.presets(frame)])
        assert np.array_equal(got, want)  # float32 on the wire: exactly the engine's


def test_jaw_follows_the_voice(live_run, clip):
    receiver, _, _, summary, _ = live_run
    frames = summary["frames"]
    assert frames["repeats"] + frames["drops"] + frames["missed"] <= 0.02 * frames["ticks"]
    # tick k shows frame k - waiting (the placeholder's ticks come first); a rare repeat or drop
    # shifts a few frames by one, which the correlation tolerates
    jaw = np.array([dict(a for addr, a in m if addr == "/VMC/Ext/Blend/Val")["JawOpen"]
                    for _, m in receiver.bundles()])[frames["waiting"]:]
    loudness = loudness_envelope(clip, 16000, FPS)
    n = min(len(jaw), len(loudness))
    r = float(np.corrcoef(jaw[:n], loudness[:n])[0, 1])
    print(f"received JawOpen vs the clip's loudness: r = {r:.3f} over {n} frames")
    assert r >= 0.6


def test_head_turns_are_unit_quaternions_matching_the_latent(live_run):
    receiver, _, sent, _, _ = live_run
    worst = 0.0
    turned = 0
    for (_, messages), frame in zip(receiver.bundles(), sent):
        bones = {args[0]: np.array(args[4:8], np.float64) for address, args in messages if address == "/VMC/Ext/Bone/Pos"}
        assert set(bones) == {"Neck", "Head"}
        for q in bones.values():
            assert abs(np.linalg.norm(q) - 1) < 1e-6
        # the head's rotation in the body's axes: the neck's, then the head's on it
        yaw, pitch, roll = latent.angles(shapes.matrix(bones["Neck"]) @ shapes.matrix(bones["Head"]))
        want = frame[[latent.index("headYaw"), latent.index("headPitch"), latent.index("headRoll")]]
        worst = max(worst, float(np.degrees(np.abs(np.array([yaw, pitch, roll]) - want)).max()))
        turned += bool(np.abs(want).max() > np.radians(1))
    print(f"head angles from the received quaternions: worst difference {worst:.5f} degrees")
    assert turned > 0  # the head did move
    assert worst < 0.1


def test_oscdump_reads_the_same_messages_and_values(live_run):
    receiver, dumped, _, _, _ = live_run
    received = [(address, args) for _, address, args in receiver.messages]
    assert len(dumped) == len(received) > 0
    for (a, args), (b, dumped_args) in zip(received, dumped):
        assert a == b and len(args) == len(dumped_args)
        for x, y in zip(args, dumped_args):
            if isinstance(x, float):
                assert abs(x - y) <= 5.1e-7  # oscdump prints floats with 6 decimals
            else:
                assert x == y


def test_the_emotion_and_pause_reach_the_vmc_output(clip):
    """`ctl emotion` and `ctl pause` steer the daemon's engine and audio, which the VMC output shows."""
    receiver = Receiver()
    try:
        options = LiveOptions(fps=FPS, engine="dsp", sink=f"vmc:127.0.0.1:{receiver.port}", virtual_mic="off",
                              control=False, realtime=False, loop=True)
        daemon = Daemon(options, capture=FileCapture(clip, loop=True))
        runner = threading.Thread(target=daemon.run)
        runner.start()
        try:
            while daemon.started is None or len(receiver.bundles()) < 30:
                time.sleep(0.05)
            assert daemon.handle({"command": "emotion", "name": "happy"})["ok"]
            time.sleep(1.5)
            smile = receiver.bundles()[-1][1]
            assert daemon.handle({"command": "pause"})["status"]["state"] == "paused"
            time.sleep(1.5)
            paused = [dict(a for addr, a in m if addr == "/VMC/Ext/Blend/Val") for _, m in receiver.bundles()[-10:]]
            with pytest.raises(AvatarCamError, match="no portrait"):
                daemon.handle({"command": "profile", "name": "default"})
            # the tray and `ctl status` say where the motion goes
            state, tooltip = state_of(daemon)
            assert state == "paused" and "3D avatar over VMC" in tooltip and f"sending to 127.0.0.1:{receiver.port}" in tooltip
            assert f"vmc          sending to 127.0.0.1:{receiver.port}" in control.describe(daemon.status())
        finally:
            daemon.stop()
            runner.join(timeout=10)
    finally:
        receiver.close()
    assert dict(a for addr, a in smile if addr == "/VMC/Ext/Blend/Val")["MouthSmileLeft"] > 0.4
    assert max(v["JawOpen"] for v in paused) < 0.05  # paused: the idle face, mouth at rest


# --- addresses ----------------------------------------------------------------------------------

def test_addresses() -> None:
    assert sink_address("vmc") == DEFAULT and str(DEFAULT) == "127.0.0.1:39539"
    assert sink_address("vmc:10.0.0.5:9000") == parse_address("10.0.0.5:9000")
    assert sink_address("camera") is None
    assert str(parse_address("[::1]:9000")) == "[::1]:9000" and parse_address(":9000").host == "127.0.0.1"
    for bad in ("host:0", "host:65536", "host:port", "a:1:2", "[::1", "", "my host:1"):
        with pytest.raises(SettingsError):
            parse_address(bad)


def test_nobody_listening_is_no_error() -> None:
    """UDP cannot tell, and a marionette may start later: the stream goes on."""
    sink = VmcSink(parse_address(f"127.0.0.1:{free_udp_port()}"))
    for _ in range(5):
        sink.write(latent.zeros()[0])
    sink.close()
    assert sink.frames == 5


@pytest.mark.parametrize("spec, message", [
    ("vmc:127.0.0.1:99999", "port must be a number from 1 to 65535"),
    ("vmc:1.2.3.4:5:6", "malformed"),
    ("vmc:no-such-host.invalid:39539", "cannot resolve"),
    ("vmc:255.255.255.255:39539", "unreachable"),  # broadcast: no VMC receiver answers there
])
def test_bad_vmc_addresses_fail_in_one_line_with_exit_2(spec, message, clip, tmp_path, capsys) -> None:
    audio = tmp_path / "voice.wav"
    soundfile.write(audio, clip[:16000], 16000)
    code = cli.main(["live", "--sink", spec, "--audio", str(audio), "--virtual-mic", "off", "--no-control"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("avatarcam: error:") and message in err
    assert os.listdir(tmp_path) == ["voice.wav"]


def test_vmc_beside_vmc_is_refused(clip, tmp_path, capsys) -> None:
    audio = tmp_path / "voice.wav"
    soundfile.write(audio, clip[:16000], 16000)
    code = cli.main(["live", "--sink", "vmc", "--vmc", "127.0.0.1:39540", "--audio", str(audio),
                     "--virtual-mic", "off", "--no-control"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "already sends VMC" in err


def test_vmc_beside_the_picture_runs_on_its_clock(clip):
    """--vmc beside a picture sink: one clock, one start, one delay, a bundle at every tick the picture has."""
    receiver = Receiver()
    picture = NullSink()
    try:
        options = LiveOptions(size=(320, 180), fps=FPS, engine="dsp", sink="null", vmc=f"127.0.0.1:{receiver.port}",
                              virtual_mic="off", control=False)
        daemon = Daemon(options, capture=FileCapture(clip[:4 * 16000]), sink=picture)
        summary = daemon.run()
        time.sleep(0.3)
    finally:
        receiver.close()
    assert summary["errors"] == []
    assert daemon.vmc_pacer is not daemon.pacer and daemon.vmc_pacer.start == daemon.pacer.start
    vmc, frames = summary["vmc"]["frames"], summary["frames"]
    print(f"picture pacer {frames}; VMC pacer {vmc}")
    assert len(receiver.bundles()) == vmc["ticks"] == summary["vmc"]["sent"]
    # a tick apart at the end; a pacer that wakes late on a busy machine skips a tick or two (missed)
    assert abs(vmc["ticks"] - frames["ticks"]) <= 1 + vmc["missed"] + frames["missed"]
    assert picture.frames == frames["ticks"]
    assert vmc["shown"] >= 0.9 * 4 * FPS  # a busy machine drops a few, as the picture does
    # both are due `delay` after the sound: the same latency but for the pacers' jitter
    assert summary["vmc"]["latency_ms"]["p50"] == pytest.approx(summary["latency_ms"]["p50"], abs=10)
