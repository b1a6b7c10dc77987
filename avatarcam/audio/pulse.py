"""The virtual microphone on Linux: the delayed voice played into the AvatarCam sink, kept there.

One thread owns the playback stream (`libpulse.PlaybackStream`); the daemon runs it in a
process of its own (`voice.VoiceProcess`), away from the render loop's GIL. Each turn it waits up to
`turn_s` for the server, then writes what the server asks for, pulled from `DelayedOutput` for
the moment those samples will be heard: the output keeps its own clock, so however late the
render loop is, the sink never runs dry while the audio ring holds the samples. Samples the
capture has not delivered yet (a busy core) it writes a moment later, while the server's buffer
plays on, rather than silence in their place.

When the stream cannot be opened or ends (no server, the server restarted, the sink unloaded
or not created yet) it is closed and opened again every `retry_s`: the voice is back within
`retry_s` plus a connect (milliseconds) of the sink's return. The stream is pinned to the sink,
so while the sink is gone nothing plays anywhere. One log line when the voice stops, one when it
plays again; `status` says which, for `ctl status` and the tray.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from avatarcam.audio import libpulse
from avatarcam.audio.output import NO_SERVER, PULSE_DESCRIPTION, PULSE_SINK, SETUP_FIX, DelayedOutput

log = logging.getLogger(__name__)

HOLD_S = 0.01  # the least voice the server must still hold for the output to wait for the capture
CAPTURE_POLL_S = 0.002  # how soon to look again for samples the capture has not delivered yet


class Stream(Protocol):
    """What PulseOutput needs of a playback stream (libpulse.PlaybackStream; tests hand in others)."""

    sink: str

    def wait(self, timeout_s: float) -> None: ...
    def check(self) -> None: ...
    def writable(self) -> int: ...
    def ahead_s(self) -> float | None: ...
    def write(self, samples: np.ndarray) -> None: ...
    def close(self) -> None: ...


def why(exc: libpulse.PulseError) -> str:
    """What a failure means for the user, and what to do about it."""
    if exc.code == libpulse.ERR_CONNECTIONREFUSED:
        return NO_SERVER
    if exc.code == libpulse.ERR_NOENTITY:
        return f"no '{PULSE_DESCRIPTION}' sink; {SETUP_FIX['linux']}"
    if exc.code == libpulse.ERR_KILLED:
        return f"the '{PULSE_DESCRIPTION}' sink was removed"
    return str(exc)


class PulseOutput:
    """The delayed voice into the `avatarcam_mic` sink of a PulseAudio or PipeWire server."""

    name = PULSE_DESCRIPTION

    def __init__(self, sink: str = PULSE_SINK, latency_s: float = 0.06, retry_s: float = 0.5, turn_s: float = 0.05,
                 prioritise: Callable[[], str] | None = None, clock: Callable[[], float] = time.monotonic,
                 open_stream: Callable[[str, int, float], Stream] | None = None) -> None:
        self.sink, self.latency_s, self.retry_s, self.turn_s = sink, latency_s, retry_s, turn_s
        self.prioritise, self._clock = prioritise, clock
        self._open = open_stream or (lambda sink, rate, latency: libpulse.PlaybackStream(sink, rate, latency))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.playing = False
        self.status = "not started"
        self.opens = 0  # streams opened (1 + reconnections)
        self.samples = 0  # samples written
        self.longest_wait_s = 0.0  # the longest time between two writes while playing: near latency_s, a gap

    def open(self) -> None:
        pass

    def start(self, source: DelayedOutput) -> None:
        self.status = "connecting"
        self._thread = threading.Thread(target=self._run, args=(source,), name="avatarcam-voice", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.playing = False
        self.status = "stopped"

    def _run(self, source: DelayedOutput) -> None:
        if self.prioritise is not None:  # real-time, as audio servers run: a late turn is a gap in the voice
            log.info("virtual microphone: %s", self.prioritise())
        while not self._stop.is_set():
            try:
                stream = self._open(self.sink, source.rate, self.latency_s)
            except (libpulse.PulseError, OSError) as exc:
                self._down(why(exc) if isinstance(exc, libpulse.PulseError) else f"libpulse unavailable: {exc}")
                self._stop.wait(self.retry_s)
                continue
            try:
                self._up(stream)
                self._play(stream, source)
            except libpulse.PulseError as exc:
                self._down(why(exc))
            finally:
                stream.close()
            self._stop.wait(self.retry_s)
        log.info("virtual microphone: %.1f s played, longest wait between writes %.0f ms, %d samples not yet "
                 "captured when due, %d resyncs", self.samples / source.rate, 1000 * self.longest_wait_s,
                 source.unready, source.resyncs)

    def _play(self, stream: Stream, source: DelayedOutput) -> None:
        """Feed the stream until stopped (then let what is buffered play out) or it fails (raises)."""
        last, held = None, False
        while not self._stop.is_set():
            stream.wait(CAPTURE_POLL_S if held else self.turn_s)  # held back: look again soon
            stream.check()
            n = stream.writable()
            if n > 0:
                now = self._clock()
                # the server's figure, within what can be buffered (it asks for no more than latency_s):
                # a stale or wild timing update must not send the voice hundreds of ms off its place
                ahead = stream.ahead_s()
                ahead = self.latency_s if ahead is None else min(max(0.0, ahead), 1.5 * self.latency_s)
                # while the server still holds voice, wait for samples the capture has not delivered
                # (a busy core); with its buffer all but played out, silence keeps the sink's clock going
                samples = source.pull(n, now + ahead, captured_only=ahead > HOLD_S)
                if samples.size:
                    stream.write(samples)
                    self.samples += samples.size
                    if last is not None:
                        self.longest_wait_s = max(self.longest_wait_s, now - last)
                    last = now
                held = samples.size < n  # the rest is not captured yet: the server's buffer plays on meanwhile
        end = self._clock() + (stream.ahead_s() or self.latency_s)
        while self._clock() < end:  # the last words are in the server's buffer: let them reach the call
            stream.wait(min(self.turn_s, max(0.0, end - self._clock())))

    def _up(self, stream: Stream) -> None:
        self.opens += 1
        self.playing = True
        self.status = f"ok: {PULSE_DESCRIPTION}"
        log.info("virtual microphone: playing into '%s' (sink %s)", PULSE_DESCRIPTION, stream.sink)

    def _down(self, reason: str) -> None:
        """Say once that the voice stopped (or never started); retries with the same news stay quiet."""
        status = f"virtual microphone stopped: {reason} (nothing plays elsewhere); retrying every {self.retry_s:g} s"
        if self.playing or self.status == "connecting":
            log.warning("%s", status)
        else:
            log.debug("%s", status)
        self.playing = False
        self.status = status
