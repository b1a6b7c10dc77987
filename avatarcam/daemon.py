"""The live daemon: the frame chain driven by the microphone and paced by the clock.

Threads, and what each owns:
- capture (PortAudio's callback, or a file played at real-time pace): stamps and queues chunks;
- audio: aligns them into the stream (`LiveAudio.chunks`) and its ring as they arrive, whatever
  the render loop is doing, and queues them for the worker;
- worker: `chain.stream`, the chain `avatarcam render` runs (`chain.run`), fed by the aligned
  audio stream, asking the profile slot for the shot on air each frame and writing each frame
  into the pacer's buffer;
- pacer: hands one frame per tick to the sink (virtual camera, file, preview, null) and owns
  the sink from the first frame to its close;
- output (optional): the delayed voice into the virtual microphone, played from the ring on its
  own clock (on Linux by a process of its own, the ring in shared memory: no GIL to wait for);
- control: the socket `avatarcam ctl` and the tray talk to.

Timeline: sample k of the stream stands for `origin + k/16000`, frame i for `origin + i/fps`;
frame i is due on the camera at `origin + delay + i/fps`, and the virtual microphone plays
sample k at `origin + delay + k/16000`. `delay` is the latency budget (lookahead + one chunk +
render + margin); a frame not ready by its tick is replaced by a repeat, never waited for.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avatarcam import chain, latent
from avatarcam.arkit.vmc import Address, VmcSink, parse_address, sink_address
from avatarcam.audio.capture import RATE, Capture, FileCapture, MicCapture
from avatarcam.audio.features import frame_centres
from avatarcam.audio.output import ClockedOutput, DelayedOutput
from avatarcam.audio.stream import AudioRing, LiveAudio
from avatarcam.audio.virtual_mic import find_virtual_mic
from avatarcam.camera import is_file_spec, open_sink
from avatarcam.camera.pacer import Pacer, Ring, request_priority, request_realtime
from avatarcam.camera.preview import WithPreview
from avatarcam.camera.sinks import Sink
from avatarcam.config import Settings, load_settings
from avatarcam.errors import AvatarCamError
from avatarcam.motion.controls import EMOTIONS, ControlledEngine
from avatarcam.provenance.stamp import Provenance

if TYPE_CHECKING:
    from avatarcam.profiles import Profile

log = logging.getLogger(__name__)

# x264's preset for live recordings: the pacer encodes each frame on its tick, so encoding must
# take a small share of a core (ultrafast ~8 ms a 720p frame where veryfast takes ~14)
LIVE_PRESET = "ultrafast"
DELAY_MARGIN_S = 0.06  # on top of the engine's own latency: a 20 ms capture block, motion, render and a busy core


@dataclass
class LiveOptions:
    profile: str = "default"
    size: tuple[int, int] = (1280, 720)
    fps: int = 30
    engine: str = "diffusion"  # the learned model; "dsp" where its frame rate is not 30 fps or a multiple
    seed: int = 0
    delay_s: float | None = None  # None: the engine's latency + DELAY_MARGIN_S
    sink: str = "camera"  # camera | preview | null | file:OUT.mp4 | OUT.mp4 | vmc | vmc:HOST:PORT (3D avatars, no pictures)
    vmc: str | None = None  # HOST:PORT: VMC output beside the sink, on the same clock
    camera: str | None = None  # device path (Linux) or name; default: found by the label AvatarCam
    mic: int | str | None = None  # sounddevice device; default: the system's
    audio: Path | None = None  # drive from this file at real-time pace instead of the microphone
    loop: bool = False  # repeat --audio until stopped
    virtual_mic: str = "auto"  # auto (if the device exists) | off | null (clocked, no device: benchmarks)
    emotion: str = "neutral"
    realtime: bool = True  # ask for real-time scheduling for the pacer thread (steadier frame timing)
    control: bool = True  # serve the control socket
    socket: Path | None = None  # its path (default: the user's runtime dir)


@dataclass
class Timing:
    """Per-frame figures the benchmark and `ctl status` read (bounded: memory stays flat)."""

    latency: Ring = field(default_factory=lambda: Ring(36000))  # capture -> handed to the sink (s)
    ready: Ring = field(default_factory=lambda: Ring(36000))  # capture -> frame rendered (s)
    av_offset: Ring = field(default_factory=lambda: Ring(36000, 2))  # (clock, video - audio) (s)
    vmc_latency: Ring = field(default_factory=lambda: Ring(36000))  # capture -> VMC bundle sent (s)

    @staticmethod
    def percentiles(values, scale: float = 1000.0) -> dict[str, float]:
        a = np.array(values, np.float64) * scale
        if a.size == 0:
            return {}
        return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
                "p99": float(np.percentile(a, 99)), "max": float(a.max()), "n": int(a.size)}


@dataclass(frozen=True)
class Showing:
    """A profile on air and its shot (renderer, provenance stage, rest): swapped as one."""

    profile: Profile
    shot: chain.Shot

    @classmethod
    def of(cls, profile: Profile, renderer: chain.FrameRenderer, settings: Settings) -> Showing:
        """`profile` shown by `renderer`, marked by `settings` (the label's look, the installation)."""
        stamp = Provenance.for_profile(profile, renderer.size, settings)
        return cls(profile, chain.Shot(renderer, stamp, renderer.scene.rig.rest))


class ProfileSlot:
    """The profile on air, swapped whole between two frames.

    `load` builds the next one on the caller's thread (never the worker's, so frames keep coming);
    the worker puts it on air with `take`, once per frame.
    """

    def __init__(self, showing: Showing) -> None:
        self.showing = showing
        self._pending: Showing | None = None
        self._lock = threading.Lock()
        self.swaps = 0
        self.on_air: Callable[[Profile], None] | None = None  # told each profile put on air (a recording's credentials)

    def take(self) -> chain.Shot:
        """The shot for the next frame; a profile loaded since the last frame goes on air here."""
        if self._pending is not None:
            with self._lock:
                self.showing, self._pending = self._pending, None
                self.swaps += 1
            log.info("now showing profile %r", self.showing.profile.name)
            if self.on_air is not None:
                self.on_air(self.showing.profile)
            threading.Thread(target=_release_memory, name="avatarcam-trim", daemon=True).start()
        return self.showing.shot

    def load(self, name: str, settings: Settings, opener: Callable | None = None) -> None:
        """Prepare profile `name` at the size on air; raises AvatarCamError (the old profile stays)
        when it cannot.

        The work (decoding images, checking consent, building the renderer: a few hundred ms of
        Python and numpy) runs in a helper process, so this process's GIL is never held long
        enough to make a frame late. `opener(profile, size)` (tests) builds in this thread instead.
        """
        size, current = self.showing.shot.renderer.size, self.showing.profile.name
        try:
            if opener is None:
                profile, renderer = _build_elsewhere(name, settings, size)
            else:
                from avatarcam.profiles import load_profile
                profile = load_profile(name, settings)
                renderer = opener(profile, size)
            showing = Showing.of(profile, renderer, settings)
        except AvatarCamError as exc:
            raise AvatarCamError(f"profile {name!r} failed to load: {exc}; still showing {current!r}") from None
        except Exception as exc:  # a corrupt rig, a renderer bug: the stream goes on regardless
            raise AvatarCamError(f"profile {name!r} failed to load ({type(exc).__name__}: {exc}); "
                                 f"still showing {current!r}") from None
        with self._lock:
            self._pending = showing


def _release_memory() -> None:
    """Hand the old renderer's freed memory back to the system (glibc keeps it otherwise, and
    every profile switch would leave the daemon ~10 MB bigger). ctypes calls drop the GIL; the
    old arrays are already freed (no cycles hold them), so no garbage collection is needed."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _build(name: str, settings_data: dict, size: tuple[int, int]):
    """Load profile `name` and build its renderer (runs in a helper process)."""
    from avatarcam.profiles import load_profile
    from avatarcam.render import open_renderer

    settings = Settings(**settings_data)
    profile = load_profile(name, settings)
    return profile, open_renderer(profile, size, settings.renderer, settings.framing, settings.backdrop)


def _build_elsewhere(name: str, settings: Settings, size: tuple[int, int], timeout_s: float = 120.0):
    """`_build` in a fresh process; the result comes back pickled (~20 MB at 720p, ~10 ms to unpickle)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: forking a process with running threads (audio, pacer) is unsafe; niced, so
    # on a machine with few cores the live frames win every contest for the CPU
    nice = {"initializer": os.nice, "initargs": (5,)} if hasattr(os, "nice") else {}
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"), **nice) as pool:
        return pool.submit(_build, name, settings.model_dump(), size).result(timeout=timeout_s)


class _Tap:
    """The motion engine as the worker runs it when VMC goes out: each motion frame it makes is also
    written to the VMC output's pacer. These are the engine's own frames, not placed on a
    portrait: a 3D avatar takes no photo's pose."""

    def __init__(self, engine: ControlledEngine, sink: Sink) -> None:
        self.engine, self.sink = engine, sink

    def push(self, samples: np.ndarray) -> np.ndarray:
        return self._offer(self.engine.push(samples))

    def flush(self) -> np.ndarray:
        return self._offer(self.engine.flush())

    def _offer(self, frames: np.ndarray) -> np.ndarray:
        for frame in frames:
            self.sink.write(frame)
        return frames


class Daemon:
    """One live session. `run()` blocks until `stop()` (any thread), `ctl quit`, or the end of an
    --audio file; it returns a summary of the session's timing.

    Everything that touches a device can be handed in (capture, sink, output), which is how the
    tests and the benchmark run it without a microphone or a camera.
    """

    def __init__(self, options: LiveOptions, settings: Settings | None = None, *, capture: Capture | None = None,
                 sink: Sink | None = None, output=None, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.settings = settings if settings is not None else load_settings()  # read at the top, as the CLI does
        self.clock = clock
        self._capture, self._sink, self._output = capture, sink, output
        self._stop = threading.Event()
        self._paused = False
        self._errors: list[str] = []
        self.message = ""  # the last thing worth telling the user (a failed profile switch, ...)
        self.timing = Timing()
        self.started: float | None = None
        # what `run` opens; None until then
        self.slot: ProfileSlot | None = None  # the profile on air (none with VMC alone)
        self.engine: ControlledEngine | None = None
        self.capture: Capture | None = None
        self.audio: LiveAudio | None = None
        self.delayed: DelayedOutput | None = None
        self.pacer: Pacer | None = None  # the session's output: the picture's, or the VMC output's when it is alone
        self.skipped = 0  # frames too late for their tick, not rendered (the previous picture stood in)
        self.vmc: VmcSink | None = None
        self.vmc_pacer: Pacer | None = None
        self.vad = None
        self.output_status = "off"  # why there is no virtual microphone (while `output` is None)
        self.output = None  # the virtual microphone's output, opened first thing in `run`: its status is live
        self.pacer_priority = ""
        self.worker_priority = "normal priority"
        self.preview_wanted = False
        self.exit_code = 0

    # -- control --------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Idle face, silent virtual microphone; the camera keeps its frames coming."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def show_preview(self, on: bool = True) -> None:
        """Show (or hide) a preview window beside the camera."""
        self.preview_wanted = on

    def set_emotion(self, name: str) -> None:
        self.engine.emotion = name

    @property
    def vmc_only(self) -> bool:
        """VMC output alone (`--sink vmc`): motion for a 3D avatar, no portrait and no pictures."""
        return sink_address(self.options.sink) is not None

    def _need_portrait(self) -> None:
        if self.vmc_only:
            raise AvatarCamError("VMC output only (--sink vmc): there is no portrait on air to change; "
                                 "run with --sink camera --vmc HOST:PORT to show one beside it")

    def set_profile(self, name: str) -> None:
        """Switch profiles without closing the camera; AvatarCamError (old one kept) on failure."""
        self._need_portrait()
        try:
            self.slot.load(name, self.settings)
        except AvatarCamError as exc:
            self.message = str(exc)
            log.warning("%s", exc)
            raise
        self.message = f"switched to profile {name!r}"

    def set_look(self, framing: str | None = None, backdrop: str | None = None) -> None:
        """Reframe the picture or change its backdrop without closing the camera: both are built into
        the renderer's still layers, so the profile on air is rebuilt with them, as a profile switch
        is; AvatarCamError (the old picture kept) on a bad value or a failure."""
        from avatarcam.config import with_look

        self._need_portrait()
        settings = with_look(self.settings, framing, backdrop)
        try:
            self.slot.load(self.slot.showing.profile.name, settings)
        except AvatarCamError as exc:
            self.message = str(exc)
            log.warning("%s", exc)
            raise
        self.settings = settings
        self.message = f"framing {settings.framing}, backdrop {settings.backdrop}"

    def handle(self, req: dict) -> dict:
        """A control request (see avatarcam.control) -> its reply."""
        command = req["command"]
        if command == "profile":
            self.set_profile(str(req.get("name", "")))
        elif command == "emotion":
            self.set_emotion(str(req.get("name", "")))
        elif command == "framing":
            self.set_look(framing=str(req.get("name", "")))
        elif command == "backdrop":
            self.set_look(backdrop=str(req.get("name", "")))
        elif command == "pause":
            self.pause()
        elif command == "resume":
            self.resume()
        elif command == "quit":
            self.stop()
        done = {"status": "", "profile": f"profile {req.get('name')!r} is live", "emotion": f"emotion {req.get('name')}",
                "framing": f"framing {req.get('name')}", "backdrop": f"backdrop {req.get('name')}",
                "pause": "paused", "resume": "live", "quit": "stopping"}[command]
        return {"ok": True, "message": done, "status": self.status()}

    @property
    def virtual_mic_status(self) -> str:
        """The virtual microphone's state, or why there is none."""
        return self.output.status if self.output is not None else self.output_status

    @property
    def profile_name(self) -> str | None:
        """The profile on air (None before `run` loads it, and with VMC alone)."""
        return self.slot.showing.profile.name if self.slot is not None else None

    def status(self) -> dict:
        stats = self.pacer.stats if self.pacer is not None else None
        return {
            "pid": os.getpid(),
            "state": "stopping" if self._stop.is_set() else "paused" if self._paused else "live",
            "profile": self.profile_name,
            "emotion": self.engine.emotion if self.engine is not None else None,
            "emotions": list(EMOTIONS),
            "framing": self.settings.framing,
            "backdrop": self.settings.backdrop,
            "sink": self.options.sink,
            "vmc": self.vmc.status() if self.vmc is not None else None,
            "size": list(self.options.size),
            "fps": self.options.fps,
            "delay_ms": self.options.delay_s * 1000,
            "microphone": self.capture.status if self.capture is not None else None,
            "speaking": bool(self.vad.speaking) if self.vad is not None else None,
            "virtual_mic": self.virtual_mic_status,
            "pacer": self.pacer_priority,
            "uptime_s": self.clock() - self.started if self.started is not None else 0.0,
            "frames": stats.summary() if stats is not None else {},
            "latency_ms": Timing.percentiles(self.timing.latency.values()[-300:]),
            "message": self.message,
            "errors": self._errors[-5:],
        }

    # -- the session ----------------------------------------------------------------------

    def frame_sample(self, index: int) -> int:
        """The stream sample frame `index` stands for."""
        return int(frame_centres(np.array([index]), RATE, self.options.fps)[0])

    def run(self) -> dict:
        """Open everything, stream until stopped, release everything; returns `summary()`."""
        opts = self.options
        from avatarcam.profiles import load_profile
        from avatarcam.render import open_renderer

        vmc_address = self._vmc_address()  # a malformed address fails before anything is opened
        self.output = self._open_output()
        if self.output is not None:  # first: the voice's process is ready by the time the first word is due
            self.output.open()
        s = self.settings
        if not self.vmc_only:  # VMC alone shows no portrait: none is loaded, and no consent record is needed
            profile = load_profile(opts.profile, s)  # fail before opening any device
            renderer = open_renderer(profile, opts.size, s.renderer, s.framing, s.backdrop)
            self.slot = ProfileSlot(Showing.of(profile, renderer, s))
        self.engine = ControlledEngine(chain.motion_engine(opts.engine, seed=opts.seed, fps=opts.fps, rate=RATE,
                                                           chunk=s.chunk_frames, lookahead_s=s.lookahead_ms / 1000,
                                                           steps=s.diffusion_steps,
                                                           guidance=(s.audio_guidance, s.control_guidance), settings=s),
                                       emotion=opts.emotion, fps=opts.fps)
        if opts.delay_s is None:  # what the engine must hear before a frame, plus the chain's margin
            opts.delay_s = self.engine.latency_s + DELAY_MARGIN_S
        elif opts.delay_s < self.engine.latency_s:
            log.warning("delay %.0f ms is shorter than the %s engine's %.0f ms lookahead: frames will repeat",
                        opts.delay_s * 1000, opts.engine, self.engine.latency_s * 1000)
        if vmc_address is not None:
            self.vmc = VmcSink(vmc_address, clock=self.clock)  # an unresolvable or unroutable address fails here
        self.capture = self._capture or self._open_capture()
        server = None
        if opts.control:
            from avatarcam.control import ControlServer
            server = ControlServer(self.handle, opts.socket)
            server.start()  # refuses when another AvatarCam is running: before the camera is taken
        # the stream's recent audio, for the virtual microphone (in shared memory: it plays in a process of its own)
        # and a file sink
        self.ring = AudioRing(rate=RATE, shared=True)
        signer = None
        if self._sink is None and is_file_spec(opts.sink):
            from avatarcam.provenance.credentials import content_signer
            signer = content_signer(profile, s)  # a recording's credentials name every profile it showed
            self.slot.on_air = signer.show
        try:
            sink = self.vmc if self.vmc_only else self._sink or self._open_sink(signer)
        except BaseException:
            if server is not None:
                server.stop()
            if self.output is not None:
                self.output.stop()
            self.ring.unlink()
            if self.vmc is not None:
                self.vmc.close()
            raise
        switch = sys.getswitchinterval()
        sys.setswitchinterval(0.001)  # the pacer must not wait 5 ms for the GIL behind the renderer
        try:
            self._stream(sink)
        finally:
            sys.setswitchinterval(switch)
            self.ring.unlink()
            if server is not None:
                server.stop()
        return self.summary()

    def _vmc_address(self) -> Address | None:
        """Where VMC output goes (`--sink vmc[:HOST:PORT]` or `--vmc HOST:PORT`), if anywhere."""
        alone, beside = sink_address(self.options.sink), self.options.vmc
        if alone is not None and beside is not None:
            raise AvatarCamError(f"--sink {self.options.sink} already sends VMC: leave out --vmc {beside}, "
                                 "or choose another sink (camera, preview, null, a file) to go with it")
        return alone if beside is None else parse_address(beside)

    def _open_capture(self) -> Capture:
        if self.options.audio is not None:
            from avatarcam.audio.io import load_audio
            return FileCapture(load_audio(self.options.audio, RATE), RATE, loop=self.options.loop, clock=self.clock,
                               prioritise=self._realtime)
        return MicCapture(self.options.mic, RATE, clock=self.clock, prioritise=self._realtime)

    def _realtime(self) -> str:
        """Real-time scheduling for the calling thread, unless the options say not: the threads the
        voice's samples pass through (capture, alignment) and the pacers, which on a busy core must
        not wait behind the renderer or another program."""
        return request_realtime() if self.options.realtime else "normal priority"

    def _open_sink(self, signer) -> Sink:
        """The sink `--sink` names; a file records the stream's audio (from the ring) beside the
        frames, as the call hears it."""
        opts = self.options
        try:
            return open_sink(opts.sink, opts.size, opts.fps, audio=self.ring, audio_rate=RATE, signer=signer,
                             preset=LIVE_PRESET, camera=opts.camera, on_close=self.stop)
        except ValueError as exc:
            raise AvatarCamError(str(exc)) from None

    def _preview_failed(self, why: str) -> None:
        self.message = why
        self.preview_wanted = False

    def _open_output(self):
        mode = self.options.virtual_mic
        if self._output is not None:
            return self._output
        if mode == "off":
            return None
        if mode == "null":
            return ClockedOutput(clock=self.clock)
        # above the pacer's: a late frame repeats the last one, a late voice is a gap the call hears
        found = find_virtual_mic(prioritise=partial(request_realtime, 20) if self.options.realtime else None)
        if isinstance(found, str):
            self.output_status = found
            log.info("%s", found)
            return None
        return found

    def _stream(self, sink: Sink) -> None:
        opts = self.options
        if not self.vmc_only:  # the frame shown before the first rendered one: the portrait at rest, marked like every other
            placeholder = self.slot.take().frame(latent.zeros()[0])
        try:
            from avatarcam.audio.vad import VoiceActivity
            self.vad = VoiceActivity()
        except ImportError:
            self.vad = None
        output = self.output
        # the timeline starts as the capture does: a file's first chunk belongs exactly there
        self.started = origin = self.clock()
        self.audio = LiveAudio(origin, RATE, clock=self.clock, ring=self.ring)
        if self.vmc is not None:  # the same clock, start and delay as the picture: the avatar moves with the voice
            self.vmc_pacer = Pacer(self.vmc, opts.fps, start=origin + opts.delay_s, clock=self.clock,
                                   placeholder=latent.zeros()[0], on_show=self._vmc_shown)
        if self.vmc_only:
            self.pacer = self.vmc_pacer
        else:
            sink = WithPreview(sink, opts.size, wanted=lambda: self.preview_wanted,
                               on_close=lambda: self.show_preview(False), on_error=self._preview_failed)
            self.pacer = Pacer(sink, opts.fps, start=origin + opts.delay_s, clock=self.clock,
                               placeholder=placeholder, on_show=self._shown, keeps_time=is_file_spec(opts.sink))
        self.delayed = delayed = DelayedOutput(self.audio.ring, origin, opts.delay_s, RATE)
        pacers = [self.pacer] + ([self.vmc_pacer] if self.vmc_pacer not in (None, self.pacer) else [])
        workers = [threading.Thread(target=self._work, name="avatarcam-worker", daemon=True)]
        workers += [threading.Thread(target=self._pace, args=(p,), name=f"avatarcam-pacer-{i}", daemon=True)
                    for i, p in enumerate(pacers)]
        self._aligned: queue.SimpleQueue = queue.SimpleQueue()
        aligner = threading.Thread(target=self._align, name="avatarcam-audio", daemon=True)
        self.capture.start(self.audio.put)
        aligner.start()
        try:
            if output is not None:
                try:
                    output.start(delayed)
                except Exception as exc:  # no virtual microphone is no reason to stop the camera
                    self.output_status = f"virtual microphone failed: {exc}"
                    log.warning("%s", self.output_status)
                    output.stop()
                    output = self.output = None
            for t in workers:
                t.start()
            if self.vmc_only:
                log.info("live: VMC to %s at %d fps, delay %.0f ms", self.vmc.address, opts.fps, opts.delay_s * 1000)
            else:
                log.info("live: profile %r, %dx%d at %d fps into %s, delay %.0f ms", self.profile_name,
                         *opts.size, opts.fps, opts.sink, opts.delay_s * 1000)
            while not self._stop.wait(0.1):
                if not any(t.is_alive() for t in workers[1:]):  # pacers end after the last frame of a file
                    break
        finally:
            self._stop.set()
            self.capture.stop()
            aligner.join(timeout=2)
            if output is not None:
                output.stop()
            for t in workers:
                t.join(timeout=5)
        if self._errors:
            self.exit_code = 1

    def _align(self) -> None:
        """The aligned stream into the ring as each chunk arrives, on a thread of its own: the virtual
        microphone plays from the ring on its own clock, so however late the render loop takes its
        chunks (from `_aligned`), the voice has its samples in time."""
        log.debug("audio thread: %s", self._realtime())
        try:
            for chunk in self.audio.chunks(self._stop, healthy=lambda: self.capture.healthy,
                                           muted=lambda: self._paused):
                self._aligned.put(chunk)
        finally:
            self._aligned.put(None)

    def _chunks(self):
        """The aligned chunks for the render loop; those that queued up while it was busy come as
        one, so the motion engine can make their frames together and catch up."""
        ended = False
        while not ended and (chunk := self._aligned.get()) is not None:
            pieces = [chunk]
            while True:
                try:
                    more = self._aligned.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    ended = True
                    break
                pieces.append(more)
            chunk = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
            if self.vad is not None:
                self.vad.push(chunk)
            yield chunk

    def _work(self) -> None:
        """The frame chain, from the aligned audio to the pacer: `chain.stream`, with the profile on
        air asked for every frame and frames already too late for their tick left unrendered."""
        engine = self.engine if self.vmc_pacer is None else _Tap(self.engine, self.vmc_pacer)
        if self.options.realtime:
            self.worker_priority = request_priority()
        try:
            if self.vmc_only:  # motion alone: no pictures to render
                for _ in chain.frames(self._chunks(), engine):
                    pass
            else:
                chain.stream(self._chunks(), engine, self.slot.take, self.pacer, late=self._late, on_frame=self._ready)
        except Exception as exc:
            log.exception("the frame chain failed")
            self._errors.append(f"frame chain: {type(exc).__name__}: {exc}")
            self._stop.set()
        finally:
            for pacer in {self.pacer, self.vmc_pacer} - {None}:  # one pacer where VMC goes out alone
                pacer.finish()

    def _late(self, index: int) -> bool:
        """Whether frame `index` is already more than a frame behind its tick: not worth rendering
        (a machine too slow for the frame rate shows fewer frames rather than growing latency)."""
        late = self.clock() - self.pacer.due(index) > 1.0 / self.options.fps
        self.skipped += late
        return late

    def _ready(self, index: int) -> None:
        captured = self.audio.capture_time(self.frame_sample(index))
        if captured is not None:
            self.timing.ready.append(self.clock() - captured)

    def _pace(self, pacer: Pacer) -> None:
        try:
            self.pacer_priority = self._realtime()
            log.info("frame pacer: %s", self.pacer_priority)
            pacer.run(self._stop)
        except Exception as exc:
            log.exception("the sink failed")
            self._errors.append(f"sink: {type(exc).__name__}: {exc}")
            self._stop.set()
        finally:
            # a pacer that showed its last frame stops nothing: one beside it (VMC and the picture) may
            # still have that frame's tick to go; the session ends when every pacer has (`_stream`)
            try:
                pacer.sink.close()  # on this thread: a preview window must be closed where it was opened
            except Exception as exc:
                self._errors.append(f"closing the sink: {exc}")

    def _shown(self, index: int, handed: float, new: bool) -> None:
        if index < 0:
            return
        if new:
            captured = self.audio.capture_time(self.frame_sample(index))
            if captured is not None:
                self.timing.latency.append(handed - captured)
        # A/V: when the frame showing stream time t is handed over, the virtual microphone should
        # be playing stream time t too; record how far apart they are (video minus audio)
        offset = self.delayed.offset_s() if self.delayed is not None else None
        if offset is not None:
            video_offset = handed - (self.audio.origin + self.options.delay_s + index / self.options.fps)
            self.timing.av_offset.append(handed, video_offset - offset)

    def _vmc_shown(self, index: int, handed: float, new: bool) -> None:
        """As `_shown`, for the VMC output's latency (and the session's figures when it is the only output)."""
        if self.pacer is self.vmc_pacer:
            self._shown(index, handed, new)
        if index >= 0 and new:
            captured = self.audio.capture_time(self.frame_sample(index))
            if captured is not None:
                self.timing.vmc_latency.append(handed - captured)

    def summary(self) -> dict:
        stats = self.pacer.stats.summary() if self.pacer is not None else {}
        return {
            "frames": stats,
            "latency_ms": Timing.percentiles(self.timing.latency),
            "ready_ms": Timing.percentiles(self.timing.ready),
            "audio": vars(self.audio.stats) if self.audio is not None else {},
            "audio_resyncs": self.delayed.resyncs if self.delayed is not None else 0,
            # where the frames' timeline lies on the clock (time.monotonic: one per machine), for measuring the voice
            "timeline": {"origin": self.audio.origin, "delay_s": self.options.delay_s} if self.audio is not None else {},
            "virtual_mic": self.virtual_mic_status,
            "profile_swaps": self.slot.swaps if self.slot is not None else 0,
            "skipped_renders": self.skipped,
            "vmc": None if self.vmc is None else {
                "address": str(self.vmc.address), "sent": self.vmc.frames, "failed": self.vmc.failures,
                "frames": self.vmc_pacer.stats.summary() if self.vmc_pacer is not None else {},
                "latency_ms": Timing.percentiles(self.timing.vmc_latency)},
            "pacer": self.pacer_priority,
            "worker": self.worker_priority,
            "errors": list(self._errors),
        }


def run_live(options: LiveOptions, settings: Settings, stats_path: Path | None = None) -> int:
    """`avatarcam live`: run a daemon until SIGINT/SIGTERM, `ctl quit` or the end of --audio."""
    import json
    import signal

    daemon = Daemon(options, settings)
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: daemon.stop()) for sig in handled}
    try:
        summary = daemon.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    frames, latency = summary["frames"], summary["latency_ms"]
    print(f"avatarcam live: {frames.get('ticks', 0)} frames sent, {frames.get('repeats', 0)} repeated, "
          f"{frames.get('drops', 0)} dropped; latency p50 {latency.get('p50', float('nan')):.0f} ms, "
          f"p95 {latency.get('p95', float('nan')):.0f} ms", file=sys.stderr)
    for error in summary["errors"]:
        print(f"avatarcam live: error: {error}", file=sys.stderr)
    if stats_path is not None:
        Path(stats_path).write_text(json.dumps(summary, indent=1) + "\n")
    return daemon.exit_code
