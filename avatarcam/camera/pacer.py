"""The frame pacer: frames to the sink on a fixed clock, repeating or dropping, never stalling.

Video apps expect a camera to deliver frames at a steady rate whatever the renderer is doing.
Frame i of the stream is due at `start + i / fps` (the daemon puts `start` one latency budget
after the audio timeline's origin). At each tick k the pacer hands the sink the newest frame
whose index is at most k:
- frame k is there: shown on time (the normal case);
- it is not (the renderer fell behind): the newest earlier frame is shown again or late
  (a *repeat* when it was already shown), and the camera keeps its rate;
- frames were skipped over (they came too late for their tick): they are *dropped*.
Frames that arrive early wait in a small buffer. If the pacer itself wakes more than a frame
late (the machine stalled), it jumps to the current tick instead of bursting out the missed
ones (*missed* ticks), unless it `keeps_time`: a recording's every tick is a frame of the file,
so there the missed ticks are handed over at once, each the frame it would have shown (a file
as long as the stream, its voice whole). All times come from the injected clock, so tests can
run it on a fake clock, tick by tick.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from avatarcam.camera.sinks import Sink


def request_realtime(priority: int = 10) -> str:
    """Ask for real-time scheduling (SCHED_FIFO) for the calling thread, as audio servers do.

    A pacer that sleeps 30 ms and works 1-2 ms per tick wakes within a fraction of a millisecond
    at real-time priority, where at normal priority a busy machine can make it several ms late.
    Linux grants it to root and to users with an RLIMIT_RTPRIO (limits.conf, e.g. an audio
    group); elsewhere the pacer runs at normal priority. Returns what it got, for the status.
    """
    if not hasattr(os, "sched_setscheduler"):
        return "normal priority (no real-time scheduling on this system)"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread, on Linux
    except OSError as exc:
        return f"normal priority (real-time refused: {exc.strerror or exc}; an rtprio limit would allow it)"
    return f"real-time priority (SCHED_FIFO {priority})"


def request_priority(nice: int = -5) -> str:
    """Ask for a higher (lower `nice`) CPU priority for the calling thread (Linux; privileged).

    The renderer's thread gets it so that other busy programs on the machine delay its frames
    less; unlike real-time scheduling it can never starve them.
    """
    if not (hasattr(os, "setpriority") and hasattr(threading, "get_native_id")) or not os.uname().sysname == "Linux":
        return "normal priority"
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)  # a thread id: this thread only
    except OSError as exc:
        return f"normal priority (nice {nice} refused: {exc.strerror or exc})"
    return f"nice {nice}"


class Ring:
    """The last `size` values of a series in memory allocated (and touched) up front, so a daemon
    that runs for days keeps a flat memory footprint. `width` > 1 stores rows of that many."""

    def __init__(self, size: int, width: int = 1) -> None:
        self._data = np.full((size, width), np.nan)
        self._count = 0

    def append(self, *values: float) -> None:
        self._data[self._count % len(self._data)] = values
        self._count += 1

    def __len__(self) -> int:
        return min(self._count, len(self._data))

    def values(self) -> np.ndarray:
        """Oldest first; 1-D when width is 1."""
        n, size = len(self), len(self._data)
        start = self._count % size if self._count > size else 0
        out = np.roll(self._data, -start, axis=0)[:n]
        return out[:, 0] if out.shape[1] == 1 else out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        values = self.values()
        return values if dtype is None else values.astype(dtype)


@dataclass
class PacerStats:
    ticks: int = 0  # frames handed to the sink (one per tick)
    shown: int = 0  # distinct stream frames shown
    repeats: int = 0  # ticks that showed the same frame again
    late: int = 0  # ticks whose own frame was not ready (a repeat or a late frame shown)
    drops: int = 0  # stream frames never shown
    missed: int = 0  # ticks skipped because the pacer woke more than a frame late
    waiting: int = 0  # ticks before the first frame existed (placeholder shown)
    intervals: Ring = field(default_factory=lambda: Ring(36000))  # s between hand-overs (the last 20 min)

    def summary(self) -> dict:
        intervals = self.intervals.values() * 1000
        out = {k: getattr(self, k) for k in ("ticks", "shown", "repeats", "late", "drops", "missed", "waiting")}
        if intervals.size:
            out["interval_ms"] = {q: float(np.percentile(intervals, p)) for q, p in
                                  (("p1", 1), ("p50", 50), ("p99", 99))} | {"min": float(intervals.min()),
                                                                            "max": float(intervals.max())}
        return out


class Pacer:
    """Hands one frame per tick to `sink`; `offer` frames from any thread, `run` on its own.

    `on_show(index, handed_at, new)` is called after each hand-over (index -1 for the placeholder).
    """

    def __init__(self, sink: Sink, fps: float, start: float, clock: Callable[[], float] = time.monotonic,
                 placeholder: np.ndarray | None = None, buffer_s: float = 2.0,
                 on_show: Callable[[int, float, bool], None] | None = None, keeps_time: bool = False) -> None:
        self.sink, self.fps, self.start = sink, float(fps), start
        self.keeps_time = keeps_time
        self._clock = clock
        self._placeholder = placeholder
        self._buffer: dict[int, np.ndarray] = {}
        self._limit = max(2, int(buffer_s * fps))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._current: tuple[int, np.ndarray] | None = None
        self._last_index: int | None = None  # the stream's final frame, once known
        self._last_handed: float | None = None
        self.on_show = on_show
        self.stats = PacerStats()
        self.next_tick = 0
        self.written = 0  # frames `write` has offered: the stream's next index

    def due(self, index: int) -> float:
        """Clock time of tick `index`."""
        return self.start + index / self.fps

    # -- producer side ----------------------------------------------------------------------

    def offer(self, index: int, frame: np.ndarray) -> None:
        with self._lock:
            shown = self._current[0] if self._current is not None else -1
            if index <= shown:  # too late: a newer frame is on screen (counted as dropped there)
                return
            self._buffer[index] = frame
            while len(self._buffer) > self._limit:  # only if nobody is ticking: bound the memory
                del self._buffer[min(self._buffer)]

    def write(self, frame: np.ndarray) -> None:
        """The stream's next frame (the pacer as the frame chain's sink): offered as index `written`."""
        self.offer(self.written, frame)
        self.written += 1

    def finish(self, last_index: int | None = None) -> None:
        """No frame after `last_index` (default: the last one written) will come: `run` returns
        once it has been shown."""
        self._last_index = self.written - 1 if last_index is None else last_index
        self._wake.set()

    # -- the clock side ---------------------------------------------------------------------

    def tick(self, k: int) -> int:
        """Hand the sink the frame for tick k; returns the stream index shown (-1: placeholder, none)."""
        with self._lock:
            ready = [i for i in self._buffer if i <= k]
            new = bool(ready)
            if new:
                index = max(ready)
                frame = self._buffer[index]
                for i in ready:
                    del self._buffer[i]
                previous = self._current[0] if self._current is not None else -1
                self.stats.drops += index - previous - 1 if previous >= 0 else index
                self._current = (index, frame)
                self.stats.shown += 1
                if index < k:
                    self.stats.late += 1
            elif self._current is not None:
                index, frame = self._current
                self.stats.repeats += 1
                self.stats.late += 1
            else:
                index, frame = -1, self._placeholder
                self.stats.waiting += 1
        if frame is not None:
            handed = self._clock()
            self.sink.write(frame)
            self.stats.ticks += 1
            if self._last_handed is not None:
                self.stats.intervals.append(handed - self._last_handed)
            self._last_handed = handed
            if self.on_show is not None:
                self.on_show(index, handed, new)
        return index

    def run(self, stop: threading.Event, sleep: Callable[[float], None] | None = None) -> None:
        """Tick until `stop` is set or the final frame has been shown."""
        wait = sleep or (lambda s: stop.wait(s))
        while not stop.is_set():
            k = self.next_tick
            delay = self.due(k) - self._clock()
            if delay > 0:
                wait(delay)
                continue  # re-check: a stop may have woken us
            behind = int(-delay * self.fps)
            if behind >= 1:  # woke more than a whole frame late: skip to the current tick
                self.stats.missed += behind
                if self.keeps_time:
                    for missed in range(k, k + behind):
                        self.tick(missed)
                k += behind
            index = self.tick(k)
            self.next_tick = k + 1
            if self._last_index is not None and index >= self._last_index:
                return
