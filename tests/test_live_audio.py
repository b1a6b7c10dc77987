"""Live audio: the timeline (alignment, gaps, capture times), the delayed output, the capture
sources with sounddevice replaced at its edge, VAD."""

from __future__ import annotations

import threading
import time
import types

import numpy as np
import pytest

from avatarcam.audio.capture import Chunk, FileCapture, MicCapture, Resampler
from avatarcam.audio.output import DelayedOutput
from avatarcam.audio.virtual_mic import find_virtual_mic
from avatarcam.audio.stream import AudioRing, LiveAudio

RATE, BLOCK = 16000, 320


class FakeClock:
    def __init__(self, t: float = 50.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class _StopWhenIdle:
    """A stop flag that lets the stream make one pass with an empty queue (a fill), then stops."""

    def __init__(self, audio: LiveAudio) -> None:
        self.audio, self.idle = audio, 0

    def is_set(self) -> bool:
        if self.audio._queue.empty():
            self.idle += 1
        return self.idle > 1


def drain(audio: LiveAudio, healthy=lambda: True, muted=lambda: False) -> list[np.ndarray]:
    """Everything the stream yields for what is queued now, plus one pass with nothing queued."""
    return list(audio.chunks(_StopWhenIdle(audio), healthy, muted))


def test_on_time_chunks_pass_unchanged_with_their_capture_times():
    clock = FakeClock()
    audio = LiveAudio(origin=clock.t, clock=clock)
    data = np.random.default_rng(0).normal(0, 0.1, BLOCK * 5).astype(np.float32)
    for n in range(5):
        audio.put(Chunk(data[n * BLOCK:(n + 1) * BLOCK], captured=clock.t + (n + 1) * BLOCK / RATE))
    out = np.concatenate(drain(audio))
    assert np.array_equal(out, data)
    assert audio.capture_time(0) == pytest.approx(clock.t)
    assert audio.capture_time(1000) == pytest.approx(clock.t + 1000 / RATE)
    assert np.array_equal(audio.ring.read(0, len(data)), data)
    assert vars(audio.stats) == {"chunks": 5, "padded_samples": 0, "trimmed_samples": 0, "filled_samples": 0}


def test_a_late_start_is_padded_with_silence_at_once():
    clock = FakeClock()
    audio = LiveAudio(origin=clock.t, clock=clock)
    chunk = np.ones(BLOCK, np.float32)
    audio.put(Chunk(chunk, captured=clock.t + 0.5 + BLOCK / RATE))  # the mic took half a second to open
    out = np.concatenate(drain(audio))
    assert len(out) == 8000 + BLOCK and not out[:8000].any() and out[8000:].all()
    assert audio.capture_time(100) is None  # inserted silence was never captured
    assert audio.capture_time(8000) == pytest.approx(clock.t + 0.5)


def test_small_jitter_is_left_alone():
    clock = FakeClock()
    audio = LiveAudio(origin=clock.t, clock=clock)
    jitter = [0.0, 0.012, 0.004, 0.025, 0.0, 0.018]
    for n, j in enumerate(jitter):
        audio.put(Chunk(np.ones(BLOCK, np.float32), captured=clock.t + (n + 1) * BLOCK / RATE + j))
    assert sum(len(c) for c in drain(audio)) == BLOCK * len(jitter)
    assert audio.stats.padded_samples == audio.stats.trimmed_samples == 0


def test_a_slow_source_clock_is_padded_once_lateness_holds_for_a_window():
    clock = FakeClock()
    audio = LiveAudio(origin=clock.t, clock=clock, window_s=0.2)
    for n in range(20):  # every chunk 40 ms late: more than the 30 ms tolerance, less than a gap
        audio.put(Chunk(np.ones(BLOCK, np.float32), captured=clock.t + (n + 1) * BLOCK / RATE + 0.04))
    drain(audio)
    assert audio.stats.padded_samples == int(0.04 * RATE)


def test_silence_fills_in_while_the_source_is_down_and_its_return_is_trimmed():
    clock = FakeClock()
    audio = LiveAudio(origin=clock.t, clock=clock)
    clock.t += 0.2  # 200 ms without a chunk from a source that says it is failing
    filled = drain(audio, healthy=lambda: False)
    assert sum(map(len, filled)) == 3200 - 3200 % BLOCK and not np.concatenate(filled).any()
    # the microphone comes back with 2000 samples ending 50 ms from now: their first 1200
    # overlap the silence already streamed and are cut; the stream ends where the chunk does
    audio.put(Chunk(np.ones(2000, np.float32), captured=clock.t + 0.05))
    out = drain(audio)
    assert audio.stats.trimmed_samples == 1200 and len(out[0]) == 800
    assert audio.position == 4000 == round((clock.t + 0.05 - audio.origin) * RATE)


def test_a_healthy_source_gets_time_before_silence_fills_in():
    clock = FakeClock()
    audio = LiveAudio(origin=clock.t, clock=clock, stall_s=0.5)
    clock.t += 0.2
    assert drain(audio, healthy=lambda: True) == []


def test_muted_stream_is_silence_of_the_same_length():
    clock = FakeClock()
    audio = LiveAudio(origin=clock.t, clock=clock)
    audio.put(Chunk(np.ones(BLOCK, np.float32), captured=clock.t + BLOCK / RATE))
    out = drain(audio, muted=lambda: True)
    assert len(out[0]) == BLOCK and not out[0].any()


def test_ring_wraps_and_forgets():
    ring = AudioRing(seconds=0.1, rate=RATE)  # 1600 samples
    data = np.arange(4000, dtype=np.float32)
    for start in range(0, 4000, 300):
        ring.write(data[start:start + 300])
    assert np.array_equal(ring.read(3000, 1000), data[3000:4000])
    assert not ring.read(0, 100).any()  # forgotten
    assert not ring.read(4000, 10).any()  # not yet


def test_delayed_output_plays_the_timeline_late_by_the_delay_and_resyncs_on_drift():
    ring = AudioRing(rate=RATE)
    ring.write(np.arange(RATE, dtype=np.float32))
    out = DelayedOutput(ring, origin=10.0, delay_s=0.1)
    block = out.pull(160, play_time=10.1 + 0.5)  # 0.5 s into the stream
    assert block[0] == 8000 and out.offset_s() == pytest.approx(0.0)
    block = out.pull(160, play_time=10.6 + 0.004)  # callback jitter: keeps reading on, no click
    assert block[0] == 8160 and out.resyncs == 0
    block = out.pull(160, play_time=10.6 + 0.05)  # a device clock 40 ms off: jump back to the timeline
    assert block[0] == 8800 and out.resyncs == 1


# -- capture sources --------------------------------------------------------------------------

def test_file_capture_delivers_real_time_chunks_stamped_at_their_end():
    clock = FakeClock(0.0)
    chunks = []
    src = FileCapture(np.arange(1000, dtype=np.float32), block_s=0.02, clock=clock,
                      sleep=lambda s: setattr(clock, "t", clock.t + s))
    src.start(chunks.append)
    src._thread.join(5)
    assert chunks[-1] is None
    assert [len(c.samples) for c in chunks[:-1]] == [320, 320, 320, 40]
    assert [c.captured for c in chunks[:-1]] == pytest.approx([0.02, 0.04, 0.06, 1000 / RATE])
    assert np.array_equal(np.concatenate([c.samples for c in chunks[:-1]]), np.arange(1000))


def test_resampler_48k_to_16k_keeps_a_tone_and_its_timing():
    rate_in = 48000
    t = np.arange(rate_in) / rate_in
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    resample = Resampler(rate_in, RATE)
    out = np.concatenate([resample(tone[i:i + 960]) for i in range(0, rate_in, 960)])
    assert abs(len(out) - RATE) <= 2
    ref = np.sin(2 * np.pi * 440 * np.arange(len(out)) / RATE)
    lag = 50  # the low-pass delays a little; compare after it settles, allowing a few samples of lag
    best = max(np.corrcoef(out[lag + s:RATE - 100 + s], ref[lag:RATE - 100])[0, 1] for s in range(0, 6))
    assert best > 0.99


class FakeSoundDevice(types.ModuleType):
    """sounddevice as seen by MicCapture: InputStream, PortAudioError, PortAudio re-initialisations.

    While `plugged` the stream's thread calls back every 20 ms with a tone; unplugging stops the
    callbacks (the stream goes quiet and inactive, as PortAudio does when a USB mic goes away)
    and makes opening fail."""

    class PortAudioError(Exception):
        pass

    def __init__(self, plugged: bool) -> None:
        super().__init__("sounddevice")
        self.plugged = plugged
        self.opened = 0
        self.terminations = 0  # PortAudio re-initialisations: each would close every stream in the process
        fake = self

        class InputStream:
            def __init__(self, device, channels, samplerate, dtype, blocksize, callback):
                if not fake.plugged:
                    raise fake.PortAudioError("Error querying device -1")
                self.blocksize, self.callback, self.active, self.device = blocksize, callback, False, device
                self._stop = threading.Event()
                fake.opened += 1

            def start(self):
                self.active = True
                threading.Thread(target=self._run, daemon=True).start()

            def _run(self):
                info = types.SimpleNamespace(inputBufferAdcTime=0.0, currentTime=0.0)
                phase = 0
                while not self._stop.wait(0.02) and fake.plugged:
                    block = np.sin(np.arange(phase, phase + self.blocksize) * 0.1).astype(np.float32)[:, None]
                    phase += self.blocksize
                    self.callback(block, self.blocksize, info, None)
                self.active = False

            def abort(self):
                self._stop.set()

            def close(self):
                self._stop.set()

        self.InputStream = InputStream

    def query_devices(self, device=None, kind=None):
        if not self.plugged:
            raise self.PortAudioError("no devices")
        return {"name": "fake mic", "default_samplerate": 16000.0, "max_input_channels": 1}

    def _terminate(self):
        self.terminations += 1


def wait_for(condition, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()  # one last look at the deadline


def test_microphone_failure_is_reported_and_it_is_reopened_when_it_returns():
    sd = FakeSoundDevice(plugged=False)
    chunks = []
    mic = MicCapture(retry_s=0.05, stall_s=0.2, backend=sd)
    mic.start(chunks.append)
    try:
        assert not mic.healthy and mic.status.startswith("no microphone")
        assert wait_for(lambda: mic.attempts >= 3)  # it keeps trying
        sd.plugged = True
        assert wait_for(lambda: mic.healthy and len(chunks) >= 3)
        assert mic.status == "ok"
        assert all(len(c.samples) == BLOCK for c in chunks)
        sd.plugged = False  # unplugged mid-stream: callbacks stop
        assert wait_for(lambda: not mic.healthy)
        assert "no microphone" in mic.status
        sd.plugged = True
        assert wait_for(lambda: mic.opens >= 2 and mic.healthy)
        # only the microphone's own stream was reopened: PortAudio was never re-initialised, which
        # would have closed every other PortAudio stream in the process
        assert sd.terminations == 0
    finally:
        mic.stop()


def test_virtual_mic_on_linux_is_the_sound_server_output_even_before_its_sink_exists():
    from avatarcam.audio.voice import VoiceProcess

    found = find_virtual_mic(platform="linux")
    assert isinstance(found, VoiceProcess) and found.status == "not started"  # nothing runs until opened


def test_voice_activity_on_speech_and_silence(speech_dir):
    from avatarcam.audio.io import load_audio
    from avatarcam.audio.vad import VoiceActivity

    clip = load_audio(sorted(speech_dir.glob("*.flac"))[0] if list(speech_dir.glob("*.flac"))
                      else sorted(speech_dir.iterdir())[0])[:RATE * 4]
    vad = VoiceActivity()
    flags = [vad.push(clip[i:i + BLOCK]) for i in range(0, len(clip), BLOCK)]
    assert any(flags)
    quiet = VoiceActivity()
    assert not any(quiet.push(np.zeros(BLOCK, np.float32)) for _ in range(50))


def test_speech_gate_passes_speech_and_shuts_out_steady_noise(speech_dir):
    from avatarcam.audio.features import loudness_envelope
    from avatarcam.audio.io import load_audio
    from avatarcam.audio.vad import SpeechGate

    clip = load_audio(speech_dir / "en_ljspeech_LJ001-0001.wav")[:RATE * 6]
    gate = SpeechGate()
    decisions = np.concatenate([gate.push(clip[i:i + 1234]) for i in range(0, len(clip), 1234)] + [gate.flush()])
    assert len(decisions) == -(-len(clip) // 160)  # one per 10 ms, the last partial one included
    whole = SpeechGate()
    np.testing.assert_array_equal(np.concatenate([whole.push(clip), whole.flush()]), decisions)  # causal, chunk-free
    # the loud tenth of the clip (syllable nuclei) all passes
    level = loudness_envelope(clip, RATE, 100)[:len(decisions)]
    assert decisions[level > np.percentile(level, 90)].all()
    rng = np.random.default_rng(0)
    for amplitude in (1e-4, 1e-3, 1e-2, 1e-1):  # steady hiss at -80 .. -20 dBFS
        shut = SpeechGate().push((amplitude * rng.standard_normal(RATE * 20)).astype(np.float32))
        assert not shut.any(), f"steady hiss at {amplitude} passed as speech"
    # the voice over a loud room still passes where it is loud
    noisy = clip + 1e-2 * rng.standard_normal(len(clip)).astype(np.float32)
    heard = SpeechGate().push(noisy)
    assert heard[level[:len(heard)] > np.percentile(level, 90)].mean() > 0.95


def test_gated_mel_is_the_mel_where_there_is_speech_and_silence_elsewhere(speech_dir):
    from avatarcam.audio import mel
    from avatarcam.audio.io import load_audio
    from avatarcam.audio.vad import GatedMelStream

    voice = load_audio(speech_dir / "en_ljspeech_LJ001-0001.wav")[:RATE * 4]
    # a room with steady hiss at -40 dBFS: under the voice, then alone
    clip = np.concatenate([voice, np.zeros(RATE * 2, np.float32)])
    clip += 1e-2 * np.random.default_rng(0).standard_normal(len(clip)).astype(np.float32)
    gated = GatedMelStream()
    rows = np.concatenate([gated.push(clip[i:i + 999]) for i in range(0, len(clip), 999)] + [gated.flush()])
    plain = mel.log_mel(clip)
    assert rows.shape == plain.shape
    kept = (rows != mel.FLOOR_DB).any(axis=1)
    np.testing.assert_allclose(rows[kept], plain[kept], atol=1e-3)
    assert kept[:400].mean() > 0.8  # the sentence
    assert kept[-100:].mean() < 0.05  # the hiss alone, a second after the voice stopped
