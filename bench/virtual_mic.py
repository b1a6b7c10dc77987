"""The virtual microphone against a real sound server: what a call hears from `avatarcam live`.

A private PulseAudio (or PipeWire with pipewire-pulse and WirePlumber) is started for the run,
in a runtime directory and home of its own, with a "speakers" null sink as the default output;
the AvatarCam sink is made by the project's installer (`installers/linux/install.sh --no-camera
--no-autostart`). `avatarcam live --audio CLIP --sink file:OUT.mp4` then plays the clip while
a reader records the sink's monitor as a call app does (parec at a 10 ms latency), each block
stamped on arrival.

Figures per clip, then again with a busy process pinned to the same core as AvatarCam:
- envelope r: 10 ms RMS of the recorded voice against the clip's (bar >= 0.99);
- level: RMS of the recorded voice against the clip's, in dB (bar within 0.5);
- gap: the longest run of silence in the recording where the clip has sound (bar <= 5 ms);
- offset: when the monitor carried each half second of voice, against when the frames'
  timeline shows it (origin + delay + t, from `--stats`), in ms (bar within +-20).

    python -m bench.virtual_mic [--server pulseaudio pipewire] [--quick]

Writes bench/results/virtual_mic.md and .json. tests/test_virtual_mic_server.py holds the same
bars with these helpers.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import correlate

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO.parent / "shared" / "assets" / "speech"
CLIPS = ("fr_commonvoice_17299458.wav", "en_ljspeech_LJ001-0001.wav", "en_codec2_speech_orig_16k.wav",
         "en_librispeech_5703-47212-0000.ogg")
RATE = 16000
SINK = "avatarcam_mic"
SPEAKERS = "speakers"  # the stand-in for the user's own output: the default sink
BARS = {"envelope_r": 0.99, "level_db": 0.5, "gap_ms": 5.0, "offset_ms": 20.0}


class ServerUnavailable(Exception):
    """The sound server could not be started here (not installed, or it refused): tests skip."""


DETACHED = str(2 ** 32 - 1)  # PA_INVALID_INDEX: a stream on no sink


class SoundServer:
    """A private sound server for this process's children: its own runtime dir, home and config,
    so it never touches the user's. `kind`: pulseaudio, or pipewire (pipewire + wireplumber +
    pipewire-pulse)."""

    PROGRAMS = {"pulseaudio": (("pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--log-target=stderr"),),
                "pipewire": (("dbus-daemon", "--session", "--nofork", "--nopidfile", "--address=unix:path={run}/bus"),
                             ("pipewire",), ("wireplumber",), ("pipewire-pulse",))}

    def __init__(self, root: Path, kind: str = "pulseaudio") -> None:
        self.root, self.kind = Path(root), kind
        self.run_dir, self.home = self.root / "run", self.root / "home"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, HOME=str(self.home), XDG_RUNTIME_DIR=str(self.run_dir),
                        XDG_CONFIG_HOME=str(self.home / ".config"), PULSE_SERVER=f"unix:{self.run_dir}/pulse/native")
        for var in ("DBUS_SESSION_BUS_ADDRESS", "PULSE_SINK", "PULSE_SOURCE", "DISPLAY"):
            self.env.pop(var, None)
        if kind == "pipewire":  # WirePlumber wants a session bus: a private one
            self.env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={self.run_dir}/bus"
        self.procs: list[subprocess.Popen] = []
        self.log = self.root / f"{kind}.log"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers; ServerUnavailable when it cannot."""
        for program in self.PROGRAMS[self.kind]:
            if shutil.which(program[0]) is None:
                raise ServerUnavailable(f"{program[0]} is not installed "
                                        "(Debian: apt install pulseaudio pulseaudio-utils, or pipewire pipewire-pulse wireplumber)")
        if shutil.which("pactl") is None or shutil.which("parec") is None:
            raise ServerUnavailable("pactl/parec are not installed (Debian: apt install pulseaudio-utils)")
        if self.kind == "pulseaudio":
            default_pa = self.home / ".config" / "pulse" / "default.pa"
            if not default_pa.exists():  # the first start: the system's set-up plus the user's speakers
                default_pa.parent.mkdir(parents=True, exist_ok=True)
                default_pa.write_text(".include /etc/pulse/default.pa\n"
                                      f"load-module module-null-sink sink_name={SPEAKERS}\n"
                                      f"set-default-sink {SPEAKERS}\n")
        log = self.log.open("a")
        for program in self.PROGRAMS[self.kind]:
            program = [arg.format(run=self.run_dir) for arg in program]
            self.procs.append(subprocess.Popen(program, env=self.env, stdout=log, stderr=log,
                                               stdin=subprocess.DEVNULL, start_new_session=True))
            time.sleep(0.3)  # pipewire first, then its session manager and the pulse server on it
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.answers():
                break
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.1)
        if not self.answers():
            self.stop()
            tail = self.log.read_text()[-800:] if self.log.exists() else ""
            raise ServerUnavailable(f"{self.kind} did not start: {tail.strip() or 'no output'}")
        if self.kind == "pipewire" and SPEAKERS not in self.sinks():
            self.pactl("load-module", "module-null-sink", f"sink_name={SPEAKERS}")
            self.pactl("set-default-sink", SPEAKERS)

    def answers(self) -> bool:
        return subprocess.run(["pactl", "info"], env=self.env, capture_output=True, timeout=5).returncode == 0

    def pactl(self, *args: str) -> str:
        result = subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)
        if result.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def _short_sinks(self) -> dict[str, str]:
        """Every sink's name by its index."""
        rows = [line.split("\t") for line in self.pactl("list", "short", "sinks").splitlines() if "\t" in line]
        return {row[0]: row[1] for row in rows}

    def sinks(self) -> list[str]:
        return list(self._short_sinks().values())

    def sink_inputs(self) -> list[tuple[str, str]]:
        """(sink name, application name) of every stream playing now. A stream detached from every
        sink (index PA_INVALID_INDEX: PipeWire lists a stream whose sink was just removed so for a
        moment while it closes) plays nowhere and is left out."""
        out, sink, app = [], None, None
        names = self._short_sinks()
        for line in self.pactl("list", "sink-inputs").splitlines():
            line = line.strip()
            if line.startswith("Sink Input #"):
                if sink is not None:
                    out.append((sink, app))
                sink, app = None, None
            elif line.startswith("Sink: "):
                index = line.split(": ", 1)[1]
                sink = None if index == DETACHED else names.get(index, index)
            elif line.startswith("application.name = "):
                app = line.split(" = ", 1)[1].strip('"')
        if sink is not None:
            out.append((sink, app))
        return out

    def install_sink(self) -> str:
        """Make the AvatarCam sink with the project's installer (as a user would); its output."""
        result = subprocess.run(["bash", str(REPO / "installers/linux/install.sh"), "--no-camera", "--no-autostart"],
                                env=self.env, capture_output=True, text=True, timeout=60)
        if result.returncode != 0 or SINK not in self.sinks():
            raise RuntimeError(f"the installer did not make the sink: {result.stdout}{result.stderr}")
        return result.stdout

    def unload_sink(self) -> None:
        """Remove the AvatarCam sink, as a user unloading its module would."""
        module = next(line.split("\t")[0] for line in self.pactl("list", "short", "modules").splitlines()
                      if f"sink_name={SINK}" in line)
        self.pactl("unload-module", module)

    def kill(self) -> None:
        """The server dies (SIGKILL): what a crash or `pulseaudio -k` does to its clients."""
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
        self.procs = []

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=5)
        self.procs = []


@dataclass
class Recording:
    samples: np.ndarray  # float32 mono at RATE
    start: float  # clock time (time.monotonic) at which samples[0] was at the monitor

    def time_of(self, index: float) -> float:
        return self.start + index / RATE


class MonitorReader:
    """Records a source as a call app does: parec at a low latency, each block stamped on arrival.

    A block can only arrive after its last sample was at the monitor, so the earliest of
    (arrival - samples so far / rate) over all blocks is when the first sample was there (the
    monitor runs on the server's clock, the system's: no drift to fit)."""

    def __init__(self, env: dict[str, str], source: str, latency_ms: int = 10) -> None:
        self.proc = subprocess.Popen(["parec", f"--device={source}", "--raw", "--format=float32le", f"--rate={RATE}",
                                      "--channels=1", f"--latency-msec={latency_ms}"],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._data = bytearray()
        self._starts: list[float] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fd = self.proc.stdout.fileno()
        while block := os.read(fd, 1 << 16):
            now = time.monotonic()
            self._data += block
            self._starts.append(now - len(self._data) // 4 / RATE)

    @property
    def seconds(self) -> float:
        return len(self._data) / 4 / RATE

    def stop(self) -> Recording:
        self.proc.terminate()
        self.proc.wait(timeout=5)
        self._thread.join(timeout=5)
        n = len(self._data) // 4
        samples = np.frombuffer(bytes(self._data[:n * 4]), np.float32).copy()
        return Recording(samples, min(self._starts) if self._starts else float("nan"))


def envelope(x: np.ndarray, frame: int = RATE // 100) -> np.ndarray:
    n = len(x) // frame
    return np.sqrt(np.mean(x[:n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))


def longest_gap_ms(voice: np.ndarray, clip: np.ndarray, floor: float = 1e-4, loud: float = 0.01) -> float:
    """The longest run of silence in `voice` (|x| < floor) over which the clip itself has sound
    (its peak over the run above `loud`): a gap the call hears that the speaker never made."""
    silent = np.concatenate([[False], np.abs(voice) < floor, [False]])
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    longest = 0
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start > longest and np.abs(clip[start:end]).max(initial=0.0) > loud:
            longest = end - start
    return 1000.0 * longest / RATE


def measure(clip: np.ndarray, recording: Recording, origin: float, delay_s: float) -> dict:
    """The bars' figures for one run (see the module's docstring)."""
    rec = recording.samples
    lag = int(np.argmax(correlate(rec, clip, mode="valid", method="fft")))  # where the clip starts in the recording
    voice = rec[lag:lag + len(clip)]
    a, b = envelope(voice), envelope(clip)
    speech = np.zeros(len(clip), bool)  # the clip's loud 10 ms frames: where the level is compared
    loud = np.repeat(b > 0.1 * b.max(), RATE // 100)
    speech[:len(loud)] = loud
    level = 20 * np.log10(np.sqrt(np.mean(voice[speech] ** 2)) / np.sqrt(np.mean(clip[speech] ** 2)))
    offsets = []
    window, search = RATE // 2, RATE // 20
    for k in range(0, len(clip) - window, window):
        piece = clip[k:k + window]
        if envelope(piece).max() < 0.1 * b.max():
            continue  # no speech to place
        lo = max(0, lag + k - search)
        local = rec[lo:lag + k + window + search]
        j = lo + int(np.argmax(correlate(local, piece, mode="valid", method="fft")))
        offsets.append(1000.0 * (recording.time_of(j) - (origin + delay_s + k / RATE)))
    return {"envelope_r": float(np.corrcoef(a, b)[0, 1]), "level_db": float(level),
            "gap_ms": longest_gap_ms(voice, clip), "offset_ms": {
                "median": float(np.median(offsets)), "min": float(np.min(offsets)), "max": float(np.max(offsets)),
                "n": len(offsets)}}


def passes(figures: dict) -> dict[str, bool]:
    return {"envelope_r": bool(figures["envelope_r"] >= BARS["envelope_r"]),
            "level_db": bool(abs(figures["level_db"]) <= BARS["level_db"]),
            "gap_ms": bool(figures["gap_ms"] <= BARS["gap_ms"]),
            "offset_ms": bool(max(abs(figures["offset_ms"]["min"]), abs(figures["offset_ms"]["max"])) <= BARS["offset_ms"])}


def avatarcam() -> list[str]:
    exe = Path(sys.executable).with_name("avatarcam")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "avatarcam.cli"]


def busy_process(core: int) -> subprocess.Popen:
    """A second busy process on `core`: it takes its fair half of the core from AvatarCam."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=lambda: os.sched_setaffinity(0, {core}))


def live(server: SoundServer, clip: Path, out_dir: Path, *extra: str, core: int | None = None,
         timeout_s: float = 180) -> tuple[dict, str]:
    """`avatarcam live --audio CLIP --sink file:OUT.mp4` to its end; (its --stats, its log)."""
    stats = out_dir / "stats.json"
    cmd = avatarcam() + ["live", "--audio", str(clip), "--sink", f"file:{out_dir / 'live.mp4'}", "--stats", str(stats),
                         "--no-control", *extra]
    pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    result = subprocess.run(cmd, env=server.env, capture_output=True, text=True, timeout=timeout_s, preexec_fn=pin)
    if result.returncode != 0:
        raise RuntimeError(f"avatarcam live failed ({result.returncode}): {result.stderr[-2000:]}")
    return json.loads(stats.read_text()), result.stderr


def run_clip(server: SoundServer, clip_path: Path, out_dir: Path, busy: bool) -> dict:
    """One live run of a clip with the monitor recorded; its figures and the session's."""
    from avatarcam.audio.io import load_audio

    clip = load_audio(clip_path, RATE)
    out_dir.mkdir(parents=True, exist_ok=True)
    reader = MonitorReader(server.env, f"{SINK}.monitor")
    speakers = MonitorReader(server.env, f"{SPEAKERS}.monitor")
    hog = busy_process(0) if busy else None
    try:
        time.sleep(0.3)
        summary, log = live(server, clip_path, out_dir, core=0 if busy else None)
        time.sleep(0.3)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        recording, elsewhere = reader.stop(), speakers.stop()
    timeline = summary["timeline"]
    figures = measure(clip, recording, timeline["origin"], timeline["delay_s"])
    figures["speakers_peak"] = float(np.abs(elsewhere.samples).max(initial=0.0))
    figures["session"] = {"frames": summary["frames"], "skipped_renders": summary["skipped_renders"],
                          "audio": summary["audio"], "delay_ms": 1000 * timeline["delay_s"],
                          "virtual_mic": summary["virtual_mic"]}
    figures["log"] = [line for line in log.splitlines() if "virtual microphone" in line]
    waits = [re.search(r"longest wait between writes (\d+) ms", line) for line in figures["log"]]
    figures["longest_wait_ms"] = max((int(m.group(1)) for m in waits if m), default=None)
    return figures


def server_name(server: SoundServer) -> str:
    from avatarcam.audio.output import pulse_server

    found = pulse_server(functools.partial(subprocess.run, env=server.env))  # as `avatarcam doctor` names it
    return found[0] if isinstance(found, tuple) else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", nargs="+", choices=("pulseaudio", "pipewire"), default=["pulseaudio", "pipewire"])
    parser.add_argument("--quick", action="store_true", help="the first clip only")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "virtual_mic")
    args = parser.parse_args(argv)
    clips = CLIPS[:1] if args.quick else CLIPS
    rows = []
    with tempfile.TemporaryDirectory(prefix="avatarcam-vmic-") as tmp:
        for kind in args.server:
            server = SoundServer(Path(tmp) / kind, kind)
            try:
                server.start()
            except ServerUnavailable as exc:
                print(f"{kind}: {exc}", file=sys.stderr)
                continue
            try:
                name = server_name(server)
                server.install_sink()
                for clip in clips:
                    for busy in (False, True):
                        print(f"{name}: {clip} {'busy core' if busy else 'idle'}", file=sys.stderr, flush=True)
                        figures = run_clip(server, SPEECH / clip, Path(tmp) / f"{kind}-{clip}-{busy}", busy)
                        rows.append({"server": name, "clip": clip, "busy": busy, **figures, "pass": passes(figures)})
            finally:
                server.stop()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    report = {"commit": commit, "cpus": os.cpu_count(), "load_average": load, "bars": BARS, "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# Virtual microphone on real sound servers (commit {commit})", "",
             "`python -m bench.virtual_mic` (see its docstring): the monitor of the AvatarCam sink read with parec "
             "at 10 ms while `avatarcam live --audio CLIP --sink file:OUT.mp4` runs; 'busy' pins AvatarCam and a busy "
             f"loop to core 0. {os.cpu_count()} CPUs, load average at the end {load[0]:.1f} / {load[1]:.1f} / "
             f"{load[2]:.1f} (other work shared the machine).", "",
             "| server | clip | core | envelope r (>= 0.99) | level dB (+-0.5) | longest gap ms (<= 5) "
             "| offset ms median [min, max] (+-20) | frames shown / repeated | skipped renders | peak on speakers "
             "| voice's longest wait ms | pass |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        o, f = r["offset_ms"], r["session"]["frames"]
        lines.append(f"| {r['server']} | {r['clip']} | {'busy' if r['busy'] else 'idle'} | {r['envelope_r']:.4f} | "
                     f"{r['level_db']:+.2f} | {r['gap_ms']:.1f} | {o['median']:+.1f} [{o['min']:+.1f}, {o['max']:+.1f}] | "
                     f"{f.get('shown', 0)} / {f.get('repeats', 0)} | {r['session']['skipped_renders']} | "
                     f"{r['speakers_peak']:.1e} | {r['longest_wait_ms']} | {'yes' if all(r['pass'].values()) else 'NO'} |")
    passed = sum(all(r["pass"].values()) for r in rows)
    lines += ["", f"{passed} of {len(rows)} runs within every bar. 'voice's longest wait': the longest time the "
              "virtual microphone's process went between two writes to the server (it asks for 60 ms of buffer): "
              "past that the sink runs dry, and the gaps come with it. The .json's `log` has the voice's own "
              "diagnostics (samples due before the ring had them, resyncs)."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if rows and passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
