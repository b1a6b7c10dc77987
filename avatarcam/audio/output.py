"""The delayed voice: the captured audio played into a virtual microphone, as late as the video.

A call hears the voice through the virtual microphone and sees the lips on the virtual camera;
both must be late by the same amount. The stream timeline (`avatarcam.audio.stream`) says
sample k stands for `origin + k / rate`; the camera shows frame i at `origin + i / fps + delay`,
so the output plays sample k at `origin + k / rate + delay`. Each output callback asks "which
sample should the first one I fill be heard at?" from the device's own playback time and keeps
reading on from there; only when the answer drifts more than `resync_s` from where it is
reading (a sound card clock running apart from the system clock, an underrun) does it jump, so
the voice has no clicks from scheduling jitter and the drift stays bounded.

Linux: the virtual microphone is a PulseAudio/PipeWire null sink, `avatarcam_mic`, shown to
apps as "AvatarCam Microphone" (its monitor, "Monitor of AvatarCam Microphone", is what they
record); `avatarcam.audio.pulse` plays into it through libpulse. Windows: a VB-Cable style device
("CABLE Input"), macOS: BlackHole, both through sounddevice.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Protocol

import numpy as np

from avatarcam.audio.capture import PORTAUDIO_FIX, RATE
from avatarcam.audio.stream import AudioRing

log = logging.getLogger(__name__)

PULSE_SINK = "avatarcam_mic"
PULSE_DESCRIPTION = "AvatarCam Microphone"
DEVICE_HINTS = {"win32": ("AvatarCam", "CABLE Input"), "darwin": ("AvatarCam", "BlackHole")}
# The one command that makes the sink (the installer and doctor use it too; a test holds them to it).
# Mono, as a microphone is: a call that records it in mono hears the voice at its own level (PipeWire
# mixes a stereo monitor down 3 dB louder). The description has a space, so it is quoted twice:
# once for the module's arguments, once for its property list.
PULSE_LOAD = ("pactl load-module module-null-sink sink_name=" + PULSE_SINK + " channels=1 channel_map=mono" +
              f" \"sink_properties=\\\"device.description='{PULSE_DESCRIPTION}'\\\"\"")
NO_SERVER = "no sound server (PulseAudio or PipeWire) is running"
SETUP_FIX = {
    "linux": f"create it with `installers/linux/install.sh` (or for this session: {PULSE_LOAD})",
    "win32": "install VB-Cable (https://vb-audio.com/Cable/) and run installers/windows/install.ps1",
    "darwin": "install BlackHole 2ch (brew install blackhole-2ch) and run installers/macos/install.sh",
}


class DelayedOutput:
    """Reads the stream ring for an output device: `pull(n, play_time)` gives the n samples to be
    heard from `play_time` on (clock time), delayed by `delay_s` from the stream timeline."""

    def __init__(self, ring: AudioRing, origin: float, delay_s: float, rate: int = RATE, resync_s: float = 0.01) -> None:
        self.ring, self.origin, self.delay, self.rate = ring, origin, delay_s, rate
        self.resync = int(round(resync_s * rate))
        self.position: int | None = None  # next stream sample to play
        self.resyncs = 0
        self.unready = 0  # samples asked for before the ring had them (played as silence): a diagnostic
        self.last: tuple[float, int] | None = None  # (play time, stream sample) of the latest pull

    def pull(self, n: int, play_time: float, captured_only: bool = False) -> np.ndarray:
        """`captured_only`: stop where the ring does (fewer than n samples, maybe none) instead of
        filling what is not captured yet with silence, for an output whose own buffer plays on
        meanwhile: a capture held up on a busy core then delays the voice a little, never cuts it."""
        wanted = int(round((play_time - self.delay - self.origin) * self.rate))
        if self.position is None or abs(wanted - self.position) > self.resync:
            if self.position is not None:
                self.resyncs += 1
                log.debug("voice resync: %+d samples", wanted - self.position)
            self.position = wanted
        start = self.position
        if captured_only:
            n = max(0, min(n, self.ring.end - start))
        self.position += n
        self.last = (play_time, start)
        if 0 <= start < self.ring.end:  # the ring stops inside this pull: behind (or the stream's end)
            self.unready += max(0, start + n - self.ring.end)
        return self.ring.read(start, n) if start + n > 0 else np.zeros(n, np.float32)

    def offset_s(self) -> float | None:
        """How far the audio heard now is from the timeline (s; positive = audio late); None before any pull."""
        if self.last is None:
            return None
        play_time, sample = self.last
        return play_time - (self.origin + self.delay + sample / self.rate)


class VoiceOutput(Protocol):
    """Where the delayed voice goes: `start(source)` plays `source.pull` on the output's own clock."""

    name: str

    def open(self) -> None:
        """Get ready (the daemon calls it first thing, so the output is ready for the first word)."""

    def start(self, source: DelayedOutput) -> None: ...
    def stop(self) -> None: ...

    @property
    def status(self) -> str:
        """'ok: NAME' while it plays, else what is wrong (for `ctl status` and the tray)."""


class ClockedOutput:
    """An output device that plays into nothing at the clock's pace: for --sink null runs and the
    benchmark, where there is no sound card but the delayed audio's timing is still measured."""

    name = "null (clocked)"

    def __init__(self, block_s: float = 0.01, clock: Callable[[], float] = time.monotonic) -> None:
        self.block_s, self._clock = block_s, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0

    def open(self) -> None:
        pass

    def start(self, source: DelayedOutput) -> None:
        def run() -> None:
            n = int(round(self.block_s * source.rate))
            start = self._clock()
            k = 0
            while not self._stop.is_set():
                due = start + k * self.block_s
                wait = due - self._clock()
                if wait > 0 and self._stop.wait(wait):
                    return
                source.pull(n, due)
                self.samples += n
                k += 1
        self._thread = threading.Thread(target=run, name="avatarcam-audio-out", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    status = "ok (no device)"


class DeviceOutput:
    """The delayed voice into a sounddevice output (the virtual microphone on Windows and macOS)."""

    def __init__(self, device: int | str | None, name: str = "",
                 block_s: float = 0.01, clock: Callable[[], float] = time.monotonic,
                 backend: ModuleType | None = None) -> None:
        self.device, self.name = device, name or str(device)
        self.block_s, self._clock, self._sd = block_s, clock, backend
        self._stream = None
        self.status = "not started"

    def open(self) -> None:
        pass

    def start(self, source: DelayedOutput) -> None:
        sd = self._sd or sounddevice_module()

        def callback(outdata: np.ndarray, frames: int, time_info, status) -> None:
            now = self._clock()
            dac, current = getattr(time_info, "outputBufferDacTime", 0.0), getattr(time_info, "currentTime", 0.0)
            ahead = dac - current if dac and current else getattr(self._stream, "latency", 0.0)
            outdata[:, 0] = source.pull(frames, now + max(0.0, ahead))

        self._stream = sd.OutputStream(device=self.device, channels=1, samplerate=source.rate, dtype="float32",
                                       blocksize=int(round(self.block_s * source.rate)), callback=callback)
        self._stream.start()
        self.status = f"ok: {self.name}"

    def stop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except Exception as exc:
                log.debug("closing the virtual microphone: %s", exc)
            self._stream = None
        self.status = "stopped"


def sounddevice_module() -> ModuleType:
    try:
        import sounddevice
    except OSError as exc:
        raise OSError(PORTAUDIO_FIX) from exc
    return sounddevice


def pulse_server(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> tuple[str, bool] | str:
    """(the sound server's name and version, whether it has the `avatarcam_mic` sink) from pactl,
    or a line saying why there is no answer."""
    if shutil.which("pactl") is None:
        return "pactl not found: install pipewire-pulse (or pulseaudio-utils)"
    try:
        info = run(["pactl", "info"], capture_output=True, text=True, timeout=3)
        if info.returncode != 0:
            return NO_SERVER
        sinks = run(["pactl", "list", "short", "sinks"], capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"pactl failed: {exc}"
    fields = dict(line.split(": ", 1) for line in info.stdout.splitlines() if ": " in line)
    server = f"{fields.get('Server Name', 'sound server')} {fields.get('Server Version', '')}".strip()
    return server, any(line.split("\t")[1:2] == [PULSE_SINK] for line in sinks.stdout.splitlines())
