"""The frame pacer on a fake clock: on time, repeats, drops, missed ticks; no timing asserts."""

from __future__ import annotations

import threading

import numpy as np

from avatarcam.camera.pacer import Pacer

FPS = 30


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)


class RecordingSink:
    def __init__(self, clock=None, slow_at: dict[int, float] | None = None) -> None:
        self.frames: list[int] = []
        self.clock, self.slow_at = clock, slow_at or {}

    def write(self, frame: np.ndarray) -> None:
        self.frames.append(int(frame[0, 0, 0]))
        if self.clock is not None:  # a sink that sometimes takes long (a busy encoder)
            self.clock.t += self.slow_at.get(len(self.frames) - 1, 0.0)

    def close(self) -> None:
        pass


def frame(i: int) -> np.ndarray:
    return np.full((2, 2, 3), i % 256, np.uint8)


def test_frames_on_time_are_shown_once_each():
    sink = RecordingSink()
    pacer = Pacer(sink, FPS, start=0.0, clock=FakeClock())
    for k in range(10):
        pacer.offer(k, frame(k))
        assert pacer.tick(k) == k
    assert sink.frames == list(range(10))
    s = pacer.stats
    assert (s.shown, s.repeats, s.drops, s.late, s.missed) == (10, 0, 0, 0, 0)


def test_early_frames_wait_for_their_tick():
    sink = RecordingSink()
    pacer = Pacer(sink, FPS, start=0.0, clock=FakeClock())
    for k in range(5):
        pacer.offer(k, frame(k))
    assert [pacer.tick(k) for k in range(5)] == [0, 1, 2, 3, 4]


def test_slow_renderer_repeats_then_drops_the_stale_frame():
    """Frame 2 misses its tick: tick 2 repeats frame 1; frame 2 arrives with frame 3, is skipped."""
    sink = RecordingSink()
    pacer = Pacer(sink, FPS, start=0.0, clock=FakeClock())
    pacer.offer(0, frame(0))
    pacer.tick(0)
    pacer.offer(1, frame(1))
    pacer.tick(1)
    assert pacer.tick(2) == 1  # nothing new: the camera still gets a frame
    pacer.offer(2, frame(2))
    pacer.offer(3, frame(3))
    assert pacer.tick(3) == 3
    assert sink.frames == [0, 1, 1, 3]
    s = pacer.stats
    assert (s.repeats, s.drops, s.late) == (1, 1, 1)


def test_late_frame_is_shown_late_rather_than_repeating():
    sink = RecordingSink()
    pacer = Pacer(sink, FPS, start=0.0, clock=FakeClock())
    pacer.offer(0, frame(0))
    pacer.tick(0)
    pacer.offer(1, frame(1))
    assert pacer.tick(2) == 1  # frame 2 not there: the newest we have, not yet shown
    assert (pacer.stats.repeats, pacer.stats.late, pacer.stats.drops) == (0, 1, 0)


def test_placeholder_before_the_first_frame():
    sink = RecordingSink()
    pacer = Pacer(sink, FPS, start=0.0, clock=FakeClock(), placeholder=frame(200))
    assert pacer.tick(0) == -1
    assert sink.frames == [200] and pacer.stats.waiting == 1


def test_run_under_a_renderer_at_two_thirds_speed():
    """A producer that makes 2 frames per 3 ticks: the stream keeps its rate, repeats fill the gaps."""
    clock = FakeClock(0.0)
    sink = RecordingSink()
    pacer = Pacer(sink, FPS, start=1.0, clock=clock)
    produced = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        # frames come out 1.5 ticks apart, starting on time
        while len(produced) * 1.5 / FPS + pacer.start <= clock.t + 1e-9:
            i = len(produced)
            produced.append(i)
            pacer.offer(i, frame(i))
        if clock.t >= pacer.start + 90 / FPS:
            stop.set()

    stop = threading.Event()
    pacer.run(stop, sleep=sleep)
    s = pacer.stats
    assert s.ticks == 90 and s.missed == 0
    # tick k shows the newest frame produced by then: floor(k / 1.5)
    assert sink.frames == [int(k / 1.5 + 1e-9) for k in range(90)]
    assert s.repeats == 30 and s.drops == 0
    intervals = np.array(s.intervals)
    assert np.allclose(intervals, 1 / FPS)  # the fake clock: exactly one tick apart


def test_run_skips_missed_ticks_instead_of_bursting():
    clock = FakeClock(0.0)
    sink = RecordingSink(clock, slow_at={10: 2.5 / FPS})  # the 11th hand-over takes 2.5 frame times
    pacer = Pacer(sink, FPS, start=0.0, clock=clock)
    for k in range(40):
        pacer.offer(k, frame(k))
    pacer.finish(39)
    pacer.run(threading.Event(), sleep=clock.sleep)
    s = pacer.stats
    # it wakes at tick 12.5: tick 11 is gone, tick 12 is handed over half a frame late
    assert s.missed == 1
    assert sink.frames[:11] == list(range(11)) and sink.frames[11] == 12  # frame 11 skipped
    assert s.drops == 1 and s.repeats == 0
    assert sink.frames[-1] == 39  # run ends once the final frame is shown


def test_a_recording_keeps_every_tick_through_a_stall():
    clock = FakeClock(0.0)
    sink = RecordingSink(clock, slow_at={10: 3.5 / FPS})  # the 11th hand-over takes 3.5 frame times
    pacer = Pacer(sink, FPS, start=0.0, clock=clock, keeps_time=True)
    for k in range(8):
        pacer.offer(k, frame(k))
    for k in range(9, 40):  # frame 8 never came: the renderer skipped it
        pacer.offer(k, frame(k))
    pacer.finish(39)
    pacer.run(threading.Event(), sleep=clock.sleep)
    # one hand-over per tick, so the file lasts as long as the stream; each missed tick shows what
    # it would have shown (the frames were there), a tick without its frame repeats the last one
    assert sink.frames == [0, 1, 2, 3, 4, 5, 6, 7, 7] + list(range(9, 40))
    assert pacer.stats.missed == 2 and pacer.stats.ticks == 40  # woke at tick 13.5: ticks 11 and 12 late


def test_buffer_is_bounded_when_nobody_ticks():
    pacer = Pacer(RecordingSink(), FPS, start=0.0, clock=FakeClock(), buffer_s=1.0)
    for k in range(500):
        pacer.offer(k, frame(k))
    assert len(pacer._buffer) == FPS


def test_the_pacer_is_the_chains_sink():
    """`write` gives each frame the stream's next index (the frame chain writes into the pacer as into
    any sink) and `finish()` ends the stream at the last one written."""
    clock = FakeClock(0.0)
    sink = RecordingSink(clock)
    pacer = Pacer(sink, FPS, start=0.0, clock=clock)
    for k in range(12):
        pacer.write(frame(k))
    pacer.finish()
    pacer.run(threading.Event(), sleep=clock.sleep)
    assert pacer.written == 12 and sink.frames == list(range(12))  # each on its own tick, then done
    assert pacer.stats.repeats == 0 and pacer.stats.drops == 0
