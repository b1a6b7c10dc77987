"""The control channel: `avatarcam ctl`, the tray and OBS scripts talk to a running daemon.

Only the user who started AvatarCam may steer it. Two transports, one protocol:
- a Unix socket in the user's runtime directory (directory 0700, socket 0600, and the peer's uid
  checked on every connection where the system reports it): Linux and macOS;
- a loopback TCP port with a secret token (Windows, whose Python has no Unix sockets): the
  daemon listens on 127.0.0.1 and writes the port and a fresh random token to `control.json` in
  the user's private runtime directory; a request without that token is refused, so another
  user on the machine can reach the port but not steer the daemon.
The address is the socket's path or the port file's (`.json`). One request per connection, one
JSON object per line each way:

    -> {"command": "profile", "name": "grandma"}
    <- {"ok": false, "message": "profile 'grandma' failed to load: ...; still showing 'default'", "status": {...}}

Commands: status, profile NAME, emotion NAME, framing NAME, backdrop VALUE, pause, resume, quit.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import socket
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from avatarcam.errors import AvatarCamError

log = logging.getLogger(__name__)

COMMANDS = ("status", "profile", "emotion", "framing", "backdrop", "pause", "resume", "quit")
EXAMPLES = {"profile": "default", "emotion": "happy", "framing": "shoulders", "backdrop": "blur"}  # commands that take a name
SOCKET_NAME = "control.sock"
PORT_FILE = "control.json"  # the loopback transport's address: {"port", "token", "pid"}
MAX_REQUEST = 64 * 1024


class ControlError(AvatarCamError):
    """No daemon to talk to, or it refused the request."""


def runtime_dir() -> Path:
    """A private directory for the socket: $XDG_RUNTIME_DIR/avatarcam, else one in the temp dir."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and Path(base).is_dir():
        return Path(base) / "avatarcam"
    # macOS's temp dir is per-user already; elsewhere the uid keeps users apart (and the
    # directory is checked to be ours and private before use)
    return Path(tempfile.gettempdir()) / f"avatarcam-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def socket_path() -> Path:
    """The default address: the Unix socket where the system has them, else the port file."""
    return runtime_dir() / (SOCKET_NAME if hasattr(socket, "AF_UNIX") else PORT_FILE)


def _is_loopback(path: Path) -> bool:
    return path.suffix == ".json"


def _read_port_file(path: Path) -> tuple[int, str]:
    try:
        data = json.loads(path.read_text())
        return int(data["port"]), str(data["token"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ControlError(f"AvatarCam's port file {path} is unreadable ({exc}); if AvatarCam is not running, "
                           "delete it") from None


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ControlError(f"{path} belongs to another user; remove it or set XDG_RUNTIME_DIR to a directory of yours")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)


def _peer_uid(conn: socket.socket) -> int | None:
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class ControlServer:
    """Serves `handler(request) -> reply` on the socket at `path`, one thread per connection."""

    def __init__(self, handler: Callable[[dict], dict], path: Path | None = None) -> None:
        self.handler = handler
        self.path = Path(path) if path is not None else socket_path()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._token: str | None = None  # the loopback transport's secret

    def start(self) -> None:
        _private_dir(self.path.parent)
        if self.path.exists():
            try:
                reply = request({"command": "status"}, self.path, timeout=2)
            except ControlError:
                self.path.unlink(missing_ok=True)  # left by a daemon that died: nobody answers
            else:
                pid = reply.get("status", {}).get("pid", "?")
                raise ControlError(f"AvatarCam is already running (pid {pid}, control socket {self.path}); "
                                   "`avatarcam ctl quit` stops it")
        sock = self._listen_loopback() if _is_loopback(self.path) else self._listen_unix()
        sock.listen(8)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="avatarcam-control", daemon=True)
        self._thread.start()

    def _listen_unix(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is created 0600: no window where others could connect
        try:
            sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot create the control socket {self.path}: {exc}") from None
        finally:
            os.umask(old)
        return sock

    def _listen_loopback(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: no other process may bind the port too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        sock.bind(("127.0.0.1", 0))
        self._token = secrets.token_hex(16)
        data = json.dumps({"port": sock.getsockname()[1], "token": self._token, "pid": os.getpid()})
        tmp = self.path.with_suffix(".tmp")
        try:  # written private and renamed: a client never reads half a file or another user's token
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(data)
            os.replace(tmp, self.path)
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot write the control port file {self.path}: {exc}") from None
        return sock

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), name="avatarcam-control-request", daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                line = _read_line(conn)
                try:
                    req = json.loads(line)
                except ValueError as exc:
                    req = exc
                if self._allowed(conn, req):
                    reply = self._reply(req)
                else:
                    reply = {"ok": False, "message": "refused: not the user running AvatarCam"}
                conn.sendall((json.dumps(reply) + "\n").encode())
            except (OSError, ValueError) as exc:
                log.debug("control connection failed: %s", exc)

    def _allowed(self, conn: socket.socket, req: object) -> bool:
        if self._token is None:  # Unix socket: the file's mode, and the peer's uid where known
            uid = _peer_uid(conn)
            return uid is None or not hasattr(os, "getuid") or uid in (os.getuid(), 0)
        token = req.get("token", "") if isinstance(req, dict) else ""
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self._token.encode())  # any text

    def _reply(self, req: object) -> dict:
        """The handler's answer to a parsed request (or the ValueError that parsing raised)."""
        if isinstance(req, dict):
            req.pop("token", None)  # the handler never sees (nor could echo) the secret
        if isinstance(req, ValueError):
            return {"ok": False, "message": f"bad request: {req}"}
        if not isinstance(req, dict) or req.get("command") not in COMMANDS:
            return {"ok": False, "message": f"bad request: expected {{'command': one of {', '.join(COMMANDS)}}}"}
        try:
            return self.handler(req)
        except AvatarCamError as exc:
            return {"ok": False, "message": str(exc)}
        except Exception as exc:  # the daemon must survive a bad request
            log.exception("control request %s failed", req)
            return {"ok": False, "message": f"internal error: {exc}"}

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.path.unlink(missing_ok=True)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        part = conn.recv(4096)
        if not part:
            break
        data += part
        if len(data) > MAX_REQUEST:
            raise ValueError("request too long")
    return data


def request(req: dict, path: Path | None = None, timeout: float = 30) -> dict:
    """Send one request to the daemon and return its reply (ControlError when none is running)."""
    path = Path(path) if path is not None else socket_path()
    if not path.exists():
        raise ControlError(f"AvatarCam is not running (no control {'port file' if _is_loopback(path) else 'socket'} "
                           f"at {path}); start it with `avatarcam live`")
    if _is_loopback(path):
        port, token = _read_port_file(path)
        family, address, req = socket.AF_INET, ("127.0.0.1", port), req | {"token": token}
    else:
        family, address = socket.AF_UNIX, str(path)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall((json.dumps(req) + "\n").encode())
            line = _read_line(sock)
    except OSError as exc:
        raise ControlError(f"AvatarCam is not answering on {path} ({exc}); is it running? "
                           "(`avatarcam live` starts it)") from None
    try:
        return json.loads(line)
    except ValueError:
        raise ControlError(f"AvatarCam sent an unreadable reply on {path}") from None


def main(action: str, name: str | None = None, as_json: bool = False, path: Path | None = None) -> int:
    """`avatarcam ctl ACTION [NAME]`: print the daemon's answer; 0 when it did what was asked."""
    if action in EXAMPLES and not name:
        raise ControlError(f"`avatarcam ctl {action}` needs a name, e.g. `avatarcam ctl {action} {EXAMPLES[action]}`")
    req = {"command": action} | ({"name": name} if name else {})
    rebuilds = action in ("profile", "framing", "backdrop")  # a new renderer is built: seconds, not milliseconds
    reply = request(req, path, timeout=60 if rebuilds else 10)
    if as_json:
        print(json.dumps(reply, indent=1))
    elif action == "status":
        print(describe(reply.get("status", {})))
    else:
        print(reply.get("message", ""))
    return 0 if reply.get("ok") else 1


def describe(status: dict) -> str:
    """`ctl status` for people."""
    frames, latency = status.get("frames", {}), status.get("latency_ms", {})
    interval = frames.get("interval_ms", {})
    lines = [
        f"state        {status.get('state')} (pid {status.get('pid')}, up {status.get('uptime_s', 0):.0f} s)",
        f"profile      {status.get('profile')}, emotion {status.get('emotion')}",
        f"framing      {status.get('framing')}, backdrop {status.get('backdrop')}",
        f"output       {status.get('sink')} {status.get('size', ['?', '?'])[0]}x{status.get('size', ['?', '?'])[1]} "
        f"at {status.get('fps')} fps",
        f"microphone   {status.get('microphone')}" + (", speaking" if status.get("speaking") else ""),
        f"virtual mic  {status.get('virtual_mic')}",
        *([f"vmc          {status['vmc']}"] if status.get("vmc") else []),
        f"frames       {frames.get('ticks', 0)} sent, {frames.get('repeats', 0)} repeated, {frames.get('drops', 0)} "
        f"dropped" + (f", interval p50 {interval['p50']:.1f} ms p99 {interval['p99']:.1f} ms" if interval else ""),
    ]
    if latency:
        lines.append(f"latency      p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms (last 10 s)")
    if status.get("message"):
        lines.append(f"note         {status['message']}")
    for error in status.get("errors", []):
        lines.append(f"error        {error}")
    return "\n".join(lines)
