"""The live audio timeline: capture chunks in, one gap-free stream locked to the clock out.

Sample k of the stream stands for the instant `origin + k / rate` on the daemon's clock. Video
frame i stands for `origin + i / fps` and is due on the camera at that instant plus the delay,
and the delayed audio plays sample k at `origin + k / rate` plus the same delay: that shared
timeline is what keeps lips and voice together for hours.

Sources do not keep that timeline by themselves. A microphone starts late, stops when it is
unplugged, comes back, and its crystal runs a little fast or slow against the system clock.
`LiveAudio` compares each chunk's capture stamp with where the stream says it belongs:
- the chunk is later than its place (a gap, a slow clock): silence is inserted first, once the
  lateness holds over a whole second of chunks (scheduling jitter only ever adds lateness, so
  the second's minimum is the honest figure) or at once when it is a real gap;
- it is earlier (the stream ran ahead on silence while the source was down, a fast clock):
  its overlapping start is cut;
- nothing arrives while the source is down (or for `stall_s` whatever it claims): silence is
  inserted up to now, so motion carries on (the idle face) and frames keep coming.
"""

from __future__ import annotations

import bisect
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory

import numpy as np

from avatarcam.audio.capture import BLOCK_S, RATE, Chunk

_END = object()


@dataclass
class StreamStats:
    chunks: int = 0  # chunks taken from the source
    padded_samples: int = 0  # silence inserted for lateness or gaps
    trimmed_samples: int = 0  # source samples cut because they overlapped the stream
    filled_samples: int = 0  # silence inserted while the source delivered nothing


class AudioRing:
    """The last `seconds` of the stream by absolute sample index (thread-safe).

    `shared`: in shared memory, which another process opens by `name` (`AudioRing.open`) and
    reads without a lock: the virtual microphone's process. The writer stores the samples before
    it moves `end` on, and readers read well behind `end`, so they never see a half-written block.
    """

    def __init__(self, seconds: float = 4.0, rate: int = RATE, shared: bool = False, name: str | None = None) -> None:
        self.size = size = round(seconds * rate)  # exact again for the reader's size / rate
        self._shm: shared_memory.SharedMemory | None = None
        if shared or name is not None:
            self._shm = shared_memory.SharedMemory(name=name, create=name is None, size=8 + 4 * size)
            buffer = self._shm.buf
        else:
            buffer = bytearray(8 + 4 * size)
        self._owner = name is None
        self._end = np.ndarray((1,), np.int64, buffer, 0)  # absolute index one past the newest sample
        self._data = np.ndarray((size,), np.float32, buffer, 8)
        if self._owner:
            self._end[0] = 0
            self._data[:] = 0.0
        self.name = self._shm.name if self._shm is not None else None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, name: str, seconds: float = 4.0, rate: int = RATE) -> AudioRing:
        """Another process's shared ring, to read."""
        ring = cls(seconds, rate, name=name)
        # Python < 3.13 registers an opened segment for removal when this process ends; it is the
        # creator's to remove
        resource_tracker.unregister(ring._shm._name, "shared_memory")
        return ring

    def unlink(self) -> None:
        """Remove a shared ring's name (the creator, once no other process will open it)."""
        if self._shm is not None and self._owner:
            self._shm.unlink()

    @property
    def end(self) -> int:
        return int(self._end[0])

    @end.setter
    def end(self, value: int) -> None:
        self._end[0] = value

    def write(self, samples: np.ndarray) -> None:
        n, size = len(samples), len(self._data)
        with self._lock:
            if n >= size:
                samples, self.end = samples[-size:], self.end + n - size
                n = size
            start = self.end % size
            first = min(n, size - start)
            self._data[start:start + first] = samples[:first]
            self._data[:n - first] = samples[first:]
            self.end += n

    def read(self, start: int, n: int) -> np.ndarray:
        """Samples [start, start + n): zeros where the stream has not reached or has forgotten."""
        out = np.zeros(n, np.float32)
        size = len(self._data)
        with self._lock:
            lo, hi = max(start, self.end - size, 0), min(start + n, self.end)
            if hi > lo:
                idx = np.arange(lo, hi) % size
                out[lo - start:hi - start] = self._data[idx]
        return out


class LiveAudio:
    """Capture chunks in (`put`, any thread); the aligned stream out (`chunks`, one consumer)."""

    def __init__(self, origin: float, rate: int = RATE, block_s: float = BLOCK_S,
                 clock: Callable[[], float] = time.monotonic, tolerance_s: float = 0.03, gap_s: float = 0.1,
                 window_s: float = 1.0, stall_s: float = 0.5, history_s: float = 10.0,
                 ring: AudioRing | None = None) -> None:
        self.origin, self.rate = origin, rate
        self.block = max(1, int(round(block_s * rate)))
        self._clock = clock
        self.tolerance, self.gap, self.window, self.stall = (int(round(v * rate)) for v in
                                                              (tolerance_s, gap_s, window_s, stall_s))
        self._queue: queue.Queue = queue.Queue(maxsize=int(10 / block_s))  # 10 s: never grows without bound
        self.position = 0  # samples in the stream so far
        self.ring = ring if ring is not None else AudioRing(rate=rate)  # what the delayed outputs read
        self.stats = StreamStats()
        self._lateness: deque[tuple[int, int]] = deque()  # (stream position, lateness in samples)
        # where each stretch of the stream came from: (start, end, capture stamp of end or None for silence)
        self._spans: deque[tuple[int, int, float | None]] = deque(maxlen=int(history_s / block_s) * 2)
        self._span_starts: deque[int] = deque(maxlen=self._spans.maxlen)
        self._last_arrival = clock()
        self._lock = threading.Lock()
        self.ended = False

    # -- producer side ----------------------------------------------------------------------

    def put(self, chunk: Chunk | None) -> None:
        """Called by the capture; None ends the stream. Never blocks the audio callback."""
        try:
            self._queue.put_nowait(_END if chunk is None else chunk)
        except queue.Full:  # the consumer is gone or stuck: dropping is all a callback may do
            pass

    # -- consumer side ----------------------------------------------------------------------

    def chunks(self, stop: threading.Event, healthy: Callable[[], bool] = lambda: True,
               muted: Callable[[], bool] = lambda: False) -> Iterator[np.ndarray]:
        """The aligned stream in chunks, until `stop` is set or the source ends.

        `healthy` says whether the source claims to be delivering; when it does not, silence
        fills in after two blocks instead of `stall_s`. While `muted()` the chunks (and the ring
        the delayed output plays from) are silence of the same length: the pause control.
        """
        while not stop.is_set():
            try:
                item = self._queue.get(timeout=self.block / self.rate)
            except queue.Empty:
                item = None
            if item is _END:
                self.ended = True
                return
            if item is None:
                pieces = self._fill(healthy())
            else:
                self._last_arrival = self._clock()
                pieces = self._align(item)
            for samples, stamp in pieces:
                if not len(samples):
                    continue
                if muted():
                    samples = np.zeros_like(samples)
                self._record(samples, stamp)
                yield samples

    def _fill(self, healthy: bool) -> list[tuple[np.ndarray, None]]:
        now = self._clock()
        quiet = now - self._last_arrival
        if quiet * self.rate < (self.stall if healthy else 2 * self.block):
            return []
        target = int((now - self.origin) * self.rate)
        missing = target - self.position
        if missing < self.block:
            return []
        self.stats.filled_samples += missing
        return [(np.zeros(self.block, np.float32), None) for _ in range(missing // self.block)]

    def _align(self, chunk: Chunk) -> list[tuple[np.ndarray, float | None]]:
        self.stats.chunks += 1
        samples = np.asarray(chunk.samples, np.float32).reshape(-1)
        n = len(samples)
        expected_end = self.position + n
        actual_end = int(round((chunk.captured - self.origin) * self.rate))
        late = actual_end - expected_end
        out: list[tuple[np.ndarray, float | None]] = []
        if late < -self.tolerance:  # the stream is ahead of this chunk: cut its overlapping start
            cut = min(n, -late)
            self.stats.trimmed_samples += cut
            samples = samples[cut:]
            self._lateness.clear()
        elif late > self.gap:  # a real gap (a late start, a stalled source): close it at once
            self.stats.padded_samples += late
            out.append((np.zeros(late, np.float32), None))
            self._lateness.clear()
        elif late > self.tolerance:  # a slow clock or jitter: act only on a whole window of lateness
            self._lateness.append((self.position, late))
            while self._lateness[0][0] < self.position - self.window:
                self._lateness.popleft()
            if self._lateness[-1][0] - self._lateness[0][0] >= self.window - self.block:
                pad = min(v for _, v in self._lateness)
                self.stats.padded_samples += pad
                out.append((np.zeros(pad, np.float32), None))
                self._lateness.clear()
        else:
            self._lateness.clear()
        out.append((samples, chunk.captured))
        return out

    def _record(self, samples: np.ndarray, stamp: float | None) -> None:
        start = self.position
        self.ring.write(samples)
        with self._lock:
            self.position += len(samples)
            self._spans.append((start, self.position, stamp))
            self._span_starts.append(start)

    # -- timing ---------------------------------------------------------------------------

    def capture_time(self, sample: int) -> float | None:
        """When stream sample `sample` was captured, from its chunk's stamp (None: inserted silence
        or forgotten)."""
        with self._lock:
            i = bisect.bisect_right(self._span_starts, sample) - 1
            if i < 0:
                return None
            start, end, stamp = self._spans[i]
        if stamp is None or not start <= sample < end:
            return None
        return stamp - (end - sample) / self.rate

    def time_of(self, sample: float) -> float:
        """The instant stream sample `sample` stands for on the clock."""
        return self.origin + sample / self.rate
