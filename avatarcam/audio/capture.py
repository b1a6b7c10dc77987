"""Live audio sources: the microphone (sounddevice) and a file played at real-time pace.

Both deliver the same thing through the same interface: `Chunk`s of 16 kHz mono float32
samples, each stamped with the moment its last sample was captured on the caller's clock
(`time.monotonic` unless a test injects another). The live daemon cannot tell them apart,
which is what lets a benchmark measure the microphone path with a file.

A microphone fails in ordinary use: it is unplugged, another program grabs it, the sound
server restarts. `MicCapture` never raises for that: it reports the failure in `status`,
keeps the stream closed and tries to reopen it every `retry_s`. While it is down the daemon
animates silence (idle motion). Only its own stream is reopened, never PortAudio itself:
re-initialising PortAudio closes every PortAudio stream in the process. A microphone plugged
back in is found through the sound server (PortAudio's "pulse" or "default" device, which
follows the server's devices); PortAudio's own device list stays as it was at start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

RATE = 16000  # Hz: what every audio feature and motion engine works at
BLOCK_S = 0.02  # one callback's worth: chain.CHUNK_S, what a microphone delivers at a time

PORTAUDIO_FIX = ("sounddevice cannot load the PortAudio library; install it "
                 "(Debian/Ubuntu: sudo apt install libportaudio2; Fedora: sudo dnf install portaudio)")


@dataclass
class Chunk:
    samples: np.ndarray  # float32 mono at RATE
    captured: float  # clock time at which the last sample was captured


class Capture(Protocol):
    """A live audio source: `start(on_chunk)` then chunks arrive on another thread until `stop()`."""

    def start(self, on_chunk: Callable[[Chunk | None], None]) -> None:
        """Begin delivering; `on_chunk(None)` means the source has ended (files only)."""

    def stop(self) -> None: ...

    @property
    def healthy(self) -> bool:
        """True while audio is flowing (a failing microphone is not)."""

    @property
    def status(self) -> str:
        """One line for `avatarcam ctl status` and the tray: 'ok' or what is wrong."""


class FileCapture:
    """Plays samples at real-time pace as chunks, as a microphone would deliver them.

    Chunk n (samples [n*B, (n+1)*B)) is delivered once its last sample's time has come,
    start + (n+1)*B/rate, and stamped with exactly that time. With `loop` the clip repeats
    without a gap until `stop()`; otherwise `on_chunk(None)` follows the last chunk.
    """

    def __init__(self, samples: np.ndarray, rate: int = RATE, block_s: float = BLOCK_S, loop: bool = False,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 prioritise: Callable[[], str] | None = None) -> None:
        self.prioritise = prioritise  # run first on the delivering thread (real-time, as a sound card's)
        self.samples = np.asarray(samples, np.float32).reshape(-1)
        if self.samples.size == 0:
            raise ValueError("FileCapture needs at least one sample")
        self.rate, self.loop = rate, loop
        self.block = max(1, int(round(block_s * rate)))
        self._clock, self._sleep = clock, sleep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0  # samples handed out so far

    def start(self, on_chunk: Callable[[Chunk | None], None]) -> None:
        self._thread = threading.Thread(target=self._run, args=(on_chunk,), name="avatarcam-file-audio", daemon=True)
        self._thread.start()

    def _run(self, on_chunk: Callable[[Chunk | None], None]) -> None:
        if self.prioritise is not None:
            log.debug("file audio thread: %s", self.prioritise())
        start = self._clock()
        n = len(self.samples)
        while not self._stop.is_set():
            if not self.loop and self.delivered >= n:
                on_chunk(None)
                return
            if self.loop:
                piece = self.samples[(self.delivered + np.arange(self.block)) % n]
            else:
                piece = self.samples[self.delivered:self.delivered + self.block]
            end = self.delivered + len(piece)
            wait = start + end / self.rate - self._clock()
            if wait > 0:
                self._sleep(wait)
            if self._stop.is_set():
                return
            self.delivered = end
            on_chunk(Chunk(piece.copy(), captured=start + end / self.rate))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    @property
    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def status(self) -> str:
        return "ok (file)" if self.healthy else "file ended"


class Resampler:
    """Streaming sample-rate conversion for microphones that will not open at 16 kHz.

    A low-pass at 0.45 of the lower rate (8th-order Butterworth, state carried across blocks)
    then linear interpolation at a carried fractional position: no block-edge clicks, and quality
    plenty for speech features and a call's voice.
    """

    def __init__(self, rate_in: float, rate_out: int = RATE) -> None:
        from scipy.signal import butter, sosfilt, sosfilt_zi  # here: SciPy takes a second to import, and only
        # a microphone that refuses 16 kHz needs it (the virtual microphone's process imports this module)

        self._sosfilt = sosfilt
        self.step = rate_in / rate_out
        cutoff = 0.45 * min(rate_in, rate_out)
        self._sos = butter(8, cutoff, fs=rate_in, output="sos")
        self._zi = sosfilt_zi(self._sos) * 0.0
        self._pos = 0.0  # position of the next output sample, in input samples after self._last
        self._last = np.zeros(1, np.float32)  # the previous block's last filtered sample

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        filtered, self._zi = self._sosfilt(self._sos, np.asarray(samples, np.float64), zi=self._zi)
        x = np.concatenate([self._last, filtered.astype(np.float32)])  # x[0] is the previous block's last
        positions = np.arange(self._pos, len(x) - 1, self.step)
        out = np.interp(positions, np.arange(len(x)), x).astype(np.float32)
        self._pos = (positions[-1] + self.step - (len(x) - 1)) if len(positions) else self._pos - (len(x) - 1)
        self._last = x[-1:]
        return out


class MicCapture:
    """The microphone through sounddevice (PortAudio), reopened whenever it fails.

    `device` is anything sounddevice accepts (an index or part of a name; None for the system
    default). The callback only stamps and copies the block; everything else happens on the
    daemon's threads. A supervisor thread opens the stream, notices when callbacks stop
    (unplugged, suspended, taken) or the stream dies, and retries every `retry_s`.
    `backend` is the sounddevice module; tests hand in a stand-in.
    """

    def __init__(self, device: int | str | None = None, rate: int = RATE, block_s: float = BLOCK_S,
                 retry_s: float = 1.0, stall_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 backend: ModuleType | None = None, prioritise: Callable[[], str] | None = None) -> None:
        self.device, self.rate = device, rate
        # run first on each stream's callback thread: real-time, so a busy machine does not hold the
        # voice's samples back (the virtual microphone plays them 100 ms later)
        self.prioritise = prioritise
        self._prioritised = False
        self.block_s = block_s
        self.retry_s, self.stall_s = retry_s, stall_s
        self._clock = clock
        self._sd = backend
        self._stream = None
        self._resample: Resampler | None = None
        self._on_chunk: Callable[[Chunk | None], None] | None = None
        self._last_callback = -np.inf
        self._opened_at = -np.inf
        self._error = "not started"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.opens = 0  # successful opens (1 + reopens)
        self.attempts = 0  # open attempts

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, on_chunk: Callable[[Chunk | None], None]) -> None:
        self._on_chunk = on_chunk
        self._error = "opening"
        self._try_open()
        self._thread = threading.Thread(target=self._supervise, name="avatarcam-mic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._close()
        self._error = "stopped"

    def _supervise(self) -> None:
        last_try = self._clock()
        while not self._stop.wait(0.05):
            now = self._clock()
            with self._lock:
                stream = self._stream
            if stream is not None:
                dead = not getattr(stream, "active", True)
                quiet = now - max(self._last_callback, self._opened_at) > self.stall_s
                if dead or quiet:
                    self._error = ("the microphone stream stopped" if dead else
                                   f"no audio from the microphone for {self.stall_s:.1f} s (unplugged?)")
                    log.warning("%s; reopening it", self._error)
                    self._close()
                    last_try = now
            elif now - last_try >= self.retry_s:
                last_try = now
                self._try_open()

    # -- the sounddevice edge ----------------------------------------------------------------

    def _backend(self) -> ModuleType:
        if self._sd is None:
            try:
                import sounddevice
            except OSError as exc:  # the module imports, PortAudio itself is missing
                raise OSError(PORTAUDIO_FIX) from exc
            self._sd = sounddevice
        return self._sd

    def _try_open(self) -> bool:
        self.attempts += 1
        try:
            sd = self._backend()
            self._prioritised = False  # a new stream: a new callback thread, which may start at once
            stream = self._open_stream(sd)
        except Exception as exc:  # PortAudioError, OSError, ValueError (no such device), ...
            message = f"microphone {self.device if self.device is not None else '(default)'} unavailable: {exc}"
            if message != self._error:
                log.warning("%s; retrying every %.0f s", message, self.retry_s)
            self._error = message
            return False
        with self._lock:
            self._stream = stream
        self._opened_at = self._clock()
        self._error = ""
        self.opens += 1
        log.info("microphone open: %s", getattr(stream, "device", self.device))
        return True

    def _open_stream(self, sd: ModuleType):
        """An InputStream at 16 kHz, or at the device's own rate with resampling if it refuses 16 kHz."""
        try:
            return self._start_stream(sd, self.rate)
        except Exception as first:
            try:
                native = float(sd.query_devices(self.device, "input")["default_samplerate"])
            except Exception:
                raise first from None
            if native == self.rate:
                raise
            log.info("the microphone refuses %d Hz (%s); capturing at %.0f Hz and resampling", self.rate, first, native)
            return self._start_stream(sd, native)

    def _start_stream(self, sd: ModuleType, rate: float):
        self._resample = None if rate == self.rate else Resampler(rate, self.rate)
        stream = sd.InputStream(device=self.device, channels=1, samplerate=rate, dtype="float32",
                                blocksize=int(round(self.block_s * rate)), callback=self._callback)
        try:
            stream.start()
        except Exception:
            stream.close()
            raise
        return stream

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        if not self._prioritised and self.prioritise is not None:
            self._prioritised = True
            log.debug("microphone thread: %s", self.prioritise())
        now = self._clock()
        self._last_callback = now
        # PortAudio stamps the buffer's first sample (ADC time) on its own clock; only the
        # difference to its current time is used, so our clock needs no relation to PortAudio's.
        age = 0.0
        adc, current = getattr(time_info, "inputBufferAdcTime", 0.0), getattr(time_info, "currentTime", 0.0)
        if adc and current:
            age = max(0.0, current - adc - frames / (self.rate if self._resample is None else
                                                     self._resample.step * self.rate))
        samples = np.array(indata[:, 0], np.float32)
        if self._resample is not None:
            samples = self._resample(samples)
        if self._on_chunk is not None and samples.size:
            self._on_chunk(Chunk(samples, captured=now - age))

    def _close(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            for step in ("abort", "close"):
                try:
                    getattr(stream, step)()
                except Exception as exc:  # a dead device may fail to close; it is gone either way
                    log.debug("closing the microphone stream (%s): %s", step, exc)

    # -- state -----------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self._stream is not None and self._clock() - max(self._last_callback, self._opened_at) <= self.stall_s

    @property
    def status(self) -> str:
        if self._stream is not None and self.healthy:
            return "ok"
        return f"no microphone: {self._error or 'no audio'}"
