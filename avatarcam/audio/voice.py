"""The virtual microphone in a process of its own (Linux): the voice never waits for the frames.

In the daemon's process the voice's thread shares the GIL with the render loop; on a busy
machine the thread holding it is descheduled and the voice waits (200 ms was seen), longer than
any buffer a call can afford. Here a small process owns the sound-server stream
(`pulse.PulseOutput`) and reads the audio ring from shared memory, on its own clock.

`open()` starts the process (about a second of imports on a busy machine), so the daemon calls
it first and the process is ready when the first word is due; `start(source)` hands it the ring
and the timeline. The process reports its status and log lines through a pipe: the daemon's
`status` and log read as if the output ran in it.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection

from avatarcam.audio.output import PULSE_DESCRIPTION, DelayedOutput

log = logging.getLogger(__name__)


class VoiceProcess:
    """The delayed voice into the `avatarcam_mic` sink, played by a child process."""

    name = PULSE_DESCRIPTION

    def __init__(self, latency_s: float = 0.06, retry_s: float = 0.5,
                 prioritise: Callable[[], str] | None = None) -> None:
        self.latency_s, self.retry_s, self.prioritise = latency_s, retry_s, prioritise
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._reader: threading.Thread | None = None
        self.status = "not started"
        self.playing = False

    def open(self) -> None:
        """Start the process; it gets ready (imports, libpulse) and waits for `start`."""
        context = multiprocessing.get_context("spawn")  # never fork a process with running threads
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve, args=(child, self.latency_s, self.retry_s, self.prioritise),
                                        name="avatarcam-voice", daemon=True)
        self._process.start()
        child.close()
        self.status = "connecting"
        self._reader = threading.Thread(target=self._listen, name="avatarcam-voice-status", daemon=True)
        self._reader.start()

    def start(self, source: DelayedOutput) -> None:
        if self._process is None:
            self.open()
        if source.ring.name is None:
            raise ValueError("the virtual microphone's process reads a shared ring (AudioRing(shared=True))")
        self._conn.send(("start", source.ring.name, source.ring.size / source.rate, source.origin,
                         source.delay, source.rate))

    def stop(self) -> None:
        if self._process is None:
            return
        try:
            self._conn.send(("stop",))
        except OSError:  # the process is gone already
            pass
        self._process.join(timeout=3)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=2)
        if self._reader is not None:
            self._reader.join(timeout=2)
        self.playing = False
        self.status = "stopped"

    def _listen(self) -> None:
        """Status and log lines from the process, until it ends."""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            if message[0] == "status":
                self.status, self.playing = message[1], message[2]
            elif message[0] == "log":
                logging.getLogger(message[1]).log(message[2], "%s", message[3])
        if self.status not in ("stopped",) and self._process is not None and self._process.exitcode not in (0, None):
            self.status = f"virtual microphone stopped: its process ended (exit {self._process.exitcode})"
            self.playing = False
            log.warning("%s", self.status)


class _ToParent(logging.Handler):
    def __init__(self, conn: Connection) -> None:
        super().__init__(logging.INFO)
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.conn.send(("log", record.name, record.levelno, record.getMessage()))
        except OSError:
            pass


def serve(conn: Connection, latency_s: float, retry_s: float, prioritise: Callable[[], str] | None) -> None:
    """The process: wait for the ring and timeline, play until told to stop (or the daemon is gone)."""
    from avatarcam.audio import libpulse
    from avatarcam.audio.pulse import PulseOutput
    from avatarcam.audio.stream import AudioRing

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the daemon says when to stop
    root = logging.getLogger()
    root.handlers[:] = [_ToParent(conn)]
    root.setLevel(logging.INFO)
    try:
        libpulse.library()  # loaded now, before the first word is due
    except OSError as exc:
        log.warning("virtual microphone: libpulse cannot be loaded (%s)", exc)
    message = conn.recv() if conn.poll(None) else ("stop",)
    if message[0] != "start":
        return
    _, name, seconds, origin, delay, rate = message
    ring = AudioRing.open(name, seconds, rate)
    output = PulseOutput(latency_s=latency_s, retry_s=retry_s, prioritise=prioritise)
    output.start(DelayedOutput(ring, origin, delay, rate))
    said = None
    try:
        while not conn.poll(0.05):  # a message (stop) or the daemon gone (EOF) ends it
            if (output.status, output.playing) != said:
                said = (output.status, output.playing)
                conn.send(("status", *said))
    except (EOFError, OSError):
        pass
    finally:
        output.stop()
