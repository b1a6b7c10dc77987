"""One playback stream to a named PulseAudio/PipeWire sink, through libpulse (ctypes): the machine's edge.

PulseAudio and PipeWire (pipewire-pulse) both speak libpulse's protocol, and libpulse0 is on
every Linux desktop that has either. The stream is opened here rather than through PortAudio
because only libpulse can:
- pin it to the sink (PA_STREAM_DONT_MOVE): when the sink goes away the server ends the stream
  instead of moving it to the default output, the speakers;
- ask for a low latency (PA_STREAM_ADJUST_LATENCY): with the server's default buffer (2 s) the
  stream waits to fill it and the first words never reach the monitor;
- open and close it on its own: PortAudio sees a new server or sink only after re-initialising,
  which closes every PortAudio stream in the process (the microphone's).

Everything here runs on the one thread that calls it: the main loop is iterated by hand
(`wait`), so libpulse's one callback (the server's name) runs on that thread and no lock is needed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import numpy as np

_p = ctypes.c_void_p
_FLOAT32LE = 5  # pa_sample_format_t PA_SAMPLE_FLOAT32LE
_NOAUTOSPAWN = 0x0001  # pa_context_flags_t: never start a server of our own
# pa_stream_flags_t: INTERPOLATE_TIMING | AUTO_TIMING_UPDATE | DONT_MOVE | ADJUST_LATENCY
_PLAYBACK_FLAGS = 0x0002 | 0x0008 | 0x0200 | 0x2000
_CONTEXT_READY, _CONTEXT_FAILED, _CONTEXT_TERMINATED = 4, 5, 6
_STREAM_READY, _STREAM_FAILED, _STREAM_TERMINATED = 2, 3, 4
ERR_NOENTITY, ERR_CONNECTIONREFUSED, ERR_KILLED = 5, 6, 12
_DEFAULT = 0xFFFFFFFF  # (uint32_t) -1: let the server choose


class PulseError(Exception):
    """The server or the stream failed; `code` is libpulse's error number (PA_ERR_*)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("maxlength", "tlength", "prebuf", "minreq", "fragsize")]


class _TimingInfo(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long), ("synchronized_clocks", ctypes.c_int),
                ("sink_usec", ctypes.c_uint64), ("source_usec", ctypes.c_uint64), ("transport_usec", ctypes.c_uint64),
                ("playing", ctypes.c_int), ("write_index_corrupt", ctypes.c_int), ("write_index", ctypes.c_int64),
                ("read_index_corrupt", ctypes.c_int), ("read_index", ctypes.c_int64),
                ("configured_sink_usec", ctypes.c_uint64), ("configured_source_usec", ctypes.c_uint64),
                ("since_underrun", ctypes.c_int64)]


class _ServerInfo(ctypes.Structure):  # the leading fields of pa_server_info: all that is read
    _fields_ = [("user_name", ctypes.c_char_p), ("host_name", ctypes.c_char_p), ("server_version", ctypes.c_char_p),
                ("server_name", ctypes.c_char_p)]


_SERVER_INFO_CB = ctypes.CFUNCTYPE(None, _p, ctypes.POINTER(_ServerInfo), _p)


@cache
def library() -> ctypes.CDLL:
    """libpulse with the signatures used here; OSError when it is not installed."""
    lib = ctypes.CDLL(ctypes.util.find_library("pulse") or "libpulse.so.0")
    signatures = {
        "pa_mainloop_new": (_p, []), "pa_mainloop_get_api": (_p, [_p]), "pa_mainloop_free": (None, [_p]),
        "pa_mainloop_prepare": (ctypes.c_int, [_p, ctypes.c_int]), "pa_mainloop_poll": (ctypes.c_int, [_p]),
        "pa_mainloop_dispatch": (ctypes.c_int, [_p]),
        "pa_context_new": (_p, [_p, ctypes.c_char_p]),
        "pa_context_connect": (ctypes.c_int, [_p, ctypes.c_char_p, ctypes.c_int, _p]),
        "pa_context_get_state": (ctypes.c_int, [_p]), "pa_context_errno": (ctypes.c_int, [_p]),
        "pa_context_disconnect": (None, [_p]), "pa_context_unref": (None, [_p]),
        "pa_strerror": (ctypes.c_char_p, [ctypes.c_int]),
        "pa_stream_new": (_p, [_p, ctypes.c_char_p, ctypes.POINTER(_SampleSpec), _p]),
        "pa_stream_connect_playback": (ctypes.c_int, [_p, ctypes.c_char_p, ctypes.POINTER(_BufferAttr),
                                                      ctypes.c_int, _p, _p]),
        "pa_stream_get_state": (ctypes.c_int, [_p]), "pa_stream_writable_size": (ctypes.c_size_t, [_p]),
        "pa_stream_write": (ctypes.c_int, [_p, _p, ctypes.c_size_t, _p, ctypes.c_int64, ctypes.c_int]),
        "pa_stream_get_latency": (ctypes.c_int, [_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_int)]),
        "pa_stream_get_timing_info": (ctypes.POINTER(_TimingInfo), [_p]),
        "pa_stream_get_device_name": (ctypes.c_char_p, [_p]),
        "pa_stream_disconnect": (ctypes.c_int, [_p]), "pa_stream_unref": (None, [_p]),
        "pa_context_suspend_sink_by_name": (_p, [_p, ctypes.c_char_p, ctypes.c_int, _p, _p]),
        "pa_operation_unref": (None, [_p]),
        "pa_context_get_server_info": (_p, [_p, _SERVER_INFO_CB, _p]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


class PlaybackStream:
    """A mono float32 playback stream pinned to sink `sink` (raises PulseError when it cannot be).

    `latency_s` is the buffer asked of the server (tlength): how far ahead of the ear the
    written samples are, and how long this thread may be late before the sink runs dry.
    """

    def __init__(self, sink: str, rate: int, latency_s: float, name: str = "AvatarCam voice",
                 connect_timeout_s: float = 2.0) -> None:
        self._lib = lib = library()
        self._loop = lib.pa_mainloop_new()
        self._context = lib.pa_context_new(lib.pa_mainloop_get_api(self._loop), b"AvatarCam")
        self._stream = None
        try:
            if lib.pa_context_connect(self._context, None, _NOAUTOSPAWN, None) < 0:
                self._raise("cannot reach the sound server")
            self._until(lambda: lib.pa_context_get_state(self._context), _CONTEXT_READY,
                        (_CONTEXT_FAILED, _CONTEXT_TERMINATED), connect_timeout_s, "cannot reach the sound server")
            spec = _SampleSpec(_FLOAT32LE, rate, 1)
            self._stream = lib.pa_stream_new(self._context, name.encode(), ctypes.byref(spec), None)
            if not self._stream:
                self._raise("cannot create a stream")
            target = int(round(latency_s * rate)) * 4
            attr = _BufferAttr(_DEFAULT, target, _DEFAULT, _DEFAULT, _DEFAULT)
            if lib.pa_stream_connect_playback(self._stream, sink.encode(), ctypes.byref(attr), _PLAYBACK_FLAGS,
                                              None, None) < 0:
                self._raise(f"cannot play into {sink}")
            self._until(lambda: lib.pa_stream_get_state(self._stream), _STREAM_READY,
                        (_STREAM_FAILED, _STREAM_TERMINATED), connect_timeout_s, f"cannot play into {sink}")
            if self._server_name(connect_timeout_s) == "pulseaudio":
                self._restart_sink(sink)
        except BaseException:
            self.close()
            raise
        self.sink = (lib.pa_stream_get_device_name(self._stream) or b"").decode()

    def _server_name(self, timeout_s: float) -> str:
        """The server's name: "pulseaudio", or "PulseAudio (on PipeWire 0.3.65)" and the like."""
        found: list[str] = []
        callback = _SERVER_INFO_CB(lambda _c, info, _u: found.append((info.contents.server_name or b"").decode()))
        operation = self._lib.pa_context_get_server_info(self._context, callback, None)
        if operation:
            self._lib.pa_operation_unref(operation)
        for _ in range(int(timeout_s / 0.05)):
            if found:
                return found[0]
            self.wait(0.05)
        return "unknown"

    def _restart_sink(self, sink: str) -> None:
        """Suspend and resume the sink (PulseAudio only): its null sink, run without a low-latency
        client, renders 2 s blocks and adopts our latency only at its next wake-up, so the first
        0.3-1.5 s of voice would never reach the monitor; resuming restarts its clock now. A
        reader of the monitor sees a pause of a few ms, once per connection, before any voice.
        PipeWire's null sink follows the latency at once, and a suspend there cuts its readers off."""
        for suspend in (1, 0):
            operation = self._lib.pa_context_suspend_sink_by_name(self._context, sink.encode(), suspend, None, None)
            if operation:
                self._lib.pa_operation_unref(operation)

    def _raise(self, what: str) -> None:
        code = self._lib.pa_context_errno(self._context)
        raise PulseError(f"{what}: {self._lib.pa_strerror(code).decode()}", code)

    def _until(self, state, ready: int, failed: tuple[int, ...], timeout_s: float, what: str) -> None:
        for _ in range(int(timeout_s / 0.05)):
            now = state()
            if now == ready:
                return
            if now in failed:
                self._raise(what)
            self.wait(0.05)
        raise PulseError(f"{what}: no answer in {timeout_s:.0f} s", 8)  # PA_ERR_TIMEOUT

    def wait(self, timeout_s: float) -> None:
        """Handle what the server sent, waiting up to `timeout_s` for it."""
        lib = self._lib
        if lib.pa_mainloop_prepare(self._loop, int(timeout_s * 1e6)) >= 0 and lib.pa_mainloop_poll(self._loop) >= 0:
            lib.pa_mainloop_dispatch(self._loop)

    def check(self) -> None:
        """Raises PulseError once the server or the sink is gone (the stream was ended, never moved)."""
        lib = self._lib
        if lib.pa_context_get_state(self._context) != _CONTEXT_READY:
            self._raise("the sound server went away")
        if lib.pa_stream_get_state(self._stream) != _STREAM_READY:
            self._raise(f"the stream into {self.sink} ended")

    def writable(self) -> int:
        """Samples the server asks for now."""
        n = self._lib.pa_stream_writable_size(self._stream)
        if n == ctypes.c_size_t(-1).value:
            self._raise("the stream failed")
        return n // 4

    def ahead_s(self) -> float | None:
        """How long until a sample written now reaches the sink's monitor (None until the server has said).

        That is the stream's latency less the sink's own: a sink hands what it mixes to its monitor
        as it mixes it, `sink_usec` before it would reach a loudspeaker, and the monitor is what a
        call records from a virtual microphone."""
        usec, negative = ctypes.c_uint64(), ctypes.c_int()
        if self._lib.pa_stream_get_latency(self._stream, ctypes.byref(usec), ctypes.byref(negative)) < 0:
            return None
        timing = self._lib.pa_stream_get_timing_info(self._stream)
        sink = timing.contents.sink_usec if timing else 0
        return (-usec.value if negative.value else usec.value - sink) / 1e6

    def write(self, samples: np.ndarray) -> None:
        data = np.ascontiguousarray(samples, np.float32)
        if self._lib.pa_stream_write(self._stream, data.ctypes.data, data.nbytes, None, 0, 0) < 0:
            self._raise("writing failed")

    def close(self) -> None:
        lib = self._lib
        if self._stream:
            lib.pa_stream_disconnect(self._stream)
            lib.pa_stream_unref(self._stream)
            self._stream = None
        if self._context:
            lib.pa_context_disconnect(self._context)
            lib.pa_context_unref(self._context)
            self._context = None
        if self._loop:
            lib.pa_mainloop_free(self._loop)
            self._loop = None
