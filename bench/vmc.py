"""VMC output latency: from a sound at the microphone to its VMC message at a receiver, beside the camera's.

Two live sessions of the product's daemon (`avatarcam.daemon.Daemon`, what `avatarcam live` runs) with the
default engine, each driven by a speech clip at real-time pace through `FileCapture` (the microphone's
interface), the delayed voice into a clocked null output, pinned to --cores:
- **vmc**: `--sink vmc` alone (no portrait, no pictures) to a python-osc server on loopback, in a
  process of its own on any core, as a marionette would be;
- **camera + vmc**: the camera's per-frame work (render 1280x720, RGB -> I420 as pyvirtualcam does for
  v4l2loopback, dropped) with `--vmc` beside it to the same kind of receiver.

For each frame: from the capture stamp of the sound it shows to (a) the moment the pacer hands it to
the sink (the daemon's own figure; bench.latency reports the camera's so) and (b) the arrival of its
bundle at the receiver (parsed by python-osc). Both outputs run on one clock with one delay budget, so
the avatar and the portrait move together with the delayed voice: VMC's figure is the camera's plus
what building and sending one UDP bundle costs, less the picture's conversion.

    python -m bench.vmc [--seconds 30] [--engine ENGINE] [--cores 1] [--clip NAME]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import judge  # noqa: E402
from bench.latency import DEFAULT_CLIP, I420Sink, pin  # noqa: E402

from avatarcam.audio.features import loudness_envelope  # noqa: E402
from avatarcam.camera.pacer import Pacer  # noqa: E402


def _serve(ports, arrivals, stop) -> None:
    """The receiver's process: python-osc's UDP server on loopback, noting each bundle's arrival."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import BlockingOSCUDPServer

    # a marionette is a program of its own: any core, normal priority (not the bench's, which may be niced)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except (OSError, AttributeError):  # lowering niceness needs privileges: it stays as it is
        pass
    seen: list[tuple[float, float]] = []  # per bundle: arrival, JawOpen
    dispatcher = Dispatcher()
    dispatcher.map("/VMC/Ext/OK", lambda *_: seen.append((time.monotonic(), float("nan"))))  # a bundle's first message
    dispatcher.map("/VMC/Ext/Blend/Val",
                   lambda _, name, value: seen.__setitem__(-1, (seen[-1][0], value)) if name == "JawOpen" else None)
    server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    server.timeout = 0.05
    ports.put(server.server_address[1])
    while not stop.is_set():
        server.handle_request()
    server.server_close()
    arrivals.put(seen)


class Receiver:
    """A VMC receiver in a process of its own (as VSeeFace would be): the arrival time of each bundle
    on the system's monotonic clock, the one the daemon stamps with."""

    def __init__(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        ports, self._arrivals, self._stop = context.Queue(), context.Queue(), context.Event()
        self.process = context.Process(target=_serve, args=(ports, self._arrivals, self._stop), daemon=True)
        self.process.start()
        self.port = ports.get(timeout=60)
        self.arrivals: list[float] = []
        self.jaw: list[float] = []

    def close(self) -> None:
        self._stop.set()
        seen = self._arrivals.get(timeout=60)
        self.arrivals, self.jaw = [a for a, _ in seen], [j for _, j in seen]
        self.process.join(timeout=10)


def session(samples: np.ndarray, seconds: float, engine: str | None, camera: bool) -> dict:
    """One live session; per VMC tick: (frame index, handed, sent, new frame?, capture stamp of its sound)."""
    from avatarcam.audio.capture import FileCapture
    from avatarcam.daemon import Daemon, LiveOptions

    receiver = Receiver()
    address = f"127.0.0.1:{receiver.port}"
    options = LiveOptions(sink="i420" if camera else f"vmc:{address}", vmc=address if camera else None,
                          virtual_mic="null", control=False)
    if engine is not None:
        options.engine = engine
    daemon = Daemon(options, capture=FileCapture(samples, loop=True), sink=I420Sink() if camera else None)
    ticks: list[tuple[int, float, float, bool, float | None]] = []
    camera_ticks: list[tuple[int, float, float, bool, float | None]] = []

    def record(pacer: Callable[[], Pacer | None], into: list) -> None:  # wrap a pacer's callback once it exists
        while pacer() is None:
            time.sleep(0.005)
        shown = pacer().on_show

        def on_show(index: int, handed: float, new: bool) -> None:  # called once the sink has taken the frame
            written = time.monotonic()
            captured = daemon.audio.capture_time(daemon.frame_sample(index)) if index >= 0 else None
            into.append((index, handed, written, new, captured))
            shown(index, handed, new)
        pacer().on_show = on_show

    threading.Thread(target=record, args=(lambda: daemon.vmc_pacer, ticks), daemon=True).start()
    if camera:
        # the picture's pacer: the daemon makes it just after the VMC one
        threading.Thread(target=record, args=(lambda: daemon.pacer, camera_ticks), daemon=True).start()
    threading.Timer(seconds, daemon.stop).start()
    summary = daemon.run()
    time.sleep(0.2)  # the last bundles
    receiver.close()
    written = [w - c for _, _, w, new, c in camera_ticks if new and c is not None]
    return {"summary": summary, "ticks": ticks, "arrivals": receiver.arrivals, "jaw": receiver.jaw,
            "samples": samples, "fps": daemon.options.fps, "engine": daemon.options.engine,
            "delay_ms": daemon.options.delay_s * 1000, "camera_written_ms": percentiles(written)}


def figures(run: dict) -> dict:
    ticks, arrivals = run["ticks"], run["arrivals"]
    # the wrapper may miss the first tick or two while it waits for the pacer: align on the end
    # (the receiver gets every bundle on loopback; the counts say so)
    n = min(len(ticks), len(arrivals))
    ticks, arrivals = ticks[len(ticks) - n:], arrivals[len(arrivals) - n:]
    handed = [h - c for _, h, _, new, c in ticks if new and c is not None]
    sent = [s - c for _, _, s, new, c in ticks if new and c is not None]
    received = [a - c for (_, _, _, new, c), a in zip(ticks, arrivals) if new and c is not None]
    building = [s - h for _, h, s, _, _ in ticks]
    transport = [a - s for (_, _, s, _, _), a in zip(ticks, arrivals)]
    # the received JawOpen of each new frame against the loudness of the (looped) clip at that frame
    jaw = run["jaw"][len(run["jaw"]) - n:]
    shown = [(index, j) for (index, _, _, new, _), j in zip(ticks, jaw) if new and index >= 0]
    fps, clip = run["fps"], run["samples"]
    loop = np.tile(clip, shown[-1][0] * 16000 // (fps * len(clip)) + 2) if shown else clip
    loudness = loudness_envelope(loop, 16000, fps)
    r = float(np.corrcoef([j for _, j in shown], loudness[[i for i, _ in shown]])[0, 1]) if len(shown) > 2 else None
    summary = run["summary"]
    out = {"engine": run["engine"], "delay_ms": run["delay_ms"], "bundles_received": len(run["arrivals"]),
           "vmc_ticks": summary["vmc"]["frames"].get("ticks"), "vmc_frames": summary["vmc"]["frames"],
           "vmc_handed_ms": percentiles(handed), "vmc_sent_ms": percentiles(sent),
           "vmc_received_ms": percentiles(received), "build_and_send_ms": percentiles(building),
           "sent_to_received_ms": percentiles(transport), "jaw_loudness_r": r, "errors": summary["errors"]}
    return out


def percentiles(values: list[float]) -> dict:
    a = np.array(values) * 1000
    if a.size == 0:
        return {}
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "n": int(a.size)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each session")
    parser.add_argument("--engine", default=None, help="motion engine (default: the daemon's)")
    parser.add_argument("--cores", type=int, default=1, help="CPU cores to pin to")
    parser.add_argument("--clip", default=DEFAULT_CLIP, help="speech clip file stem in ../shared/assets/speech")
    parser.add_argument("--name", default="vmc", help="results file stem")
    args = parser.parse_args(argv)
    cores = pin(args.cores)

    from avatarcam.audio.io import load_audio

    clip = next((p for p in judge.SPEECH.iterdir() if p.stem == args.clip), None) if judge.SPEECH.is_dir() else None
    if clip is None:
        from avatarcam.cli import demo_audio
        clip = demo_audio()
    samples = load_audio(clip)
    load_start = os.getloadavg()
    print(f"{clip.name} looped, {args.seconds:.0f} s per session, pinned to cores {cores}; load {load_start[0]:.1f}",
          flush=True)
    alone = session(samples, args.seconds, args.engine, camera=False)
    beside = session(samples, args.seconds, args.engine, camera=True)
    results = {"clip": clip.name, "seconds": args.seconds, "cores": cores,
               "load_average_start": [round(v, 2) for v in load_start],
               "load_average_end": [round(v, 2) for v in os.getloadavg()],
               "vmc_alone": figures(alone), "camera_and_vmc": figures(beside)}
    results["camera_and_vmc"]["camera_handed_ms"] = beside["summary"]["latency_ms"]
    results["camera_and_vmc"]["camera_written_ms"] = beside["camera_written_ms"]
    results["camera_and_vmc"]["camera_frames"] = beside["summary"]["frames"]
    markdown = report(results)
    judge.write_results(args.name, results, markdown)
    print(markdown)
    return 0


def report(r: dict) -> str:
    a, b = r["vmc_alone"], r["camera_and_vmc"]

    def row(name: str, f: dict) -> list:
        return [name, f.get("p50"), f.get("p95"), f.get("p99"), f.get("max"), f.get("n")]

    return "\n".join([
        "# VMC output latency", "",
        f"`avatarcam.daemon.Daemon` driven by {r['clip']} at real-time pace (looped), {r['seconds']:.0f} s per "
        f"session, {a['engine']} engine (the default), delay budget {a['delay_ms']:.0f} ms, pinned to core(s) "
        f"{r['cores']}; load average {r['load_average_start'][0]:.1f} at the start, {r['load_average_end'][0]:.1f} "
        "at the end (a shared 2-core machine). Receiver: python-osc's UDP server on loopback, a process of its "
        "own on any core.", "",
        "## Capture stamp of the sound -> its frame (ms)", "",
        judge.table(["session: measured at", "p50", "p95", "p99", "max", "frames"], [
            row("vmc alone: handed to the VMC sink", a["vmc_handed_ms"]),
            row("vmc alone: VMC bundle sent", a["vmc_sent_ms"]),
            row("vmc alone: VMC bundle received", a["vmc_received_ms"]),
            row("camera + vmc: picture handed to the camera sink", b["camera_handed_ms"]),
            row("camera + vmc: picture converted to I420 (the camera's write)", b["camera_written_ms"]),
            row("camera + vmc: VMC bundle sent", b["vmc_sent_ms"]),
            row("camera + vmc: VMC bundle received", b["vmc_received_ms"])], 1), "",
        judge.table(["VMC bundle (ms)", "p50", "p95", "p99", "max", "bundles"], [
            row("vmc alone: built and sent", a["build_and_send_ms"]),
            row("vmc alone: sent -> received", a["sent_to_received_ms"]),
            row("camera + vmc: built and sent", b["build_and_send_ms"]),
            row("camera + vmc: sent -> received", b["sent_to_received_ms"])], 2), "",
        f"Received JawOpen against the clip's loudness (audio.features.loudness_envelope), per frame: r = "
        f"{judge.fmt(a['jaw_loudness_r'], 3)} alone, {judge.fmt(b['jaw_loudness_r'], 3)} beside the camera.", "",
        f"VMC pacer, alone: {a['vmc_frames']}; beside the camera: {b['vmc_frames']}. Camera pacer: "
        f"{b['camera_frames']}.", "",
        "Both outputs are due on one clock, `delay` after the sound, and the virtual microphone plays the "
        "voice at that offset too: the VMC latency is the camera's by design, reached a little sooner "
        "(a UDP bundle instead of a picture's conversion). 'Sent' is when the sink's sendto returned; "
        "'received' when the receiver's python-osc had parsed the bundle, so it includes how soon the "
        "receiving process got a core.",
        *(["", "Errors: " + "; ".join(a["errors"] + b["errors"])] if a["errors"] or b["errors"] else [])])


if __name__ == "__main__":
    raise SystemExit(main())
