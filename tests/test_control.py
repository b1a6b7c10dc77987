"""The control channel's two transports over real sockets: the Unix socket (Linux, macOS) and the
token-protected loopback port (Windows, run here too since it is plain TCP)."""

from __future__ import annotations

import json
import socket
import tempfile
from pathlib import Path

import pytest

from avatarcam import control


def handler(req: dict) -> dict:
    return {"ok": True, "message": f"did {req['command']}", "seen": sorted(req)}


@pytest.fixture(params=["control.sock", "control.json"])
def address(request) -> Path:
    # AF_UNIX paths are limited to ~100 bytes; pytest's tmp_path can be longer
    return Path(tempfile.mkdtemp(prefix="ac-", dir="/tmp")) / request.param


@pytest.fixture
def server(address: Path):
    srv = control.ControlServer(handler, address)
    srv.start()
    yield srv
    srv.stop()


def test_round_trip_and_the_address_is_private(server, address):
    assert oct(address.stat().st_mode & 0o777) == "0o600"
    assert oct(address.parent.stat().st_mode & 0o777) == "0o700"
    reply = control.request({"command": "pause"}, address)
    assert reply == {"ok": True, "message": "did pause", "seen": ["command"]}  # the token never reaches the handler
    assert not control.request({"command": "reboot"}, address)["ok"]
    with pytest.raises(control.ControlError, match="already running"):
        control.ControlServer(handler, address).start()


def test_loopback_refuses_requests_without_the_token(tmp_path):
    address = tmp_path / "control.json"
    srv = control.ControlServer(handler, address)
    srv.start()
    try:
        port, token = json.loads(address.read_text())["port"], json.loads(address.read_text())["token"]
        assert len(token) == 32
        for req in ({"command": "quit"}, {"command": "quit", "token": "0" * 32}, {"command": "quit", "token": 7},
                    {"command": "quit", "token": "é" * 32}):  # non-ASCII: refused, not a dropped connection
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall((json.dumps(req) + "\n").encode())
                reply = json.loads(sock.makefile().readline())
            assert not reply["ok"] and "refused" in reply["message"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"not json\n")
            assert "refused" in json.loads(sock.makefile().readline())["message"]
        assert control.request({"command": "status"}, address)["ok"]  # with the token from the file
    finally:
        srv.stop()


def test_stopped_or_dead_server_reads_as_not_running(address):
    srv = control.ControlServer(handler, address)
    srv.start()
    srv.stop()
    assert not address.exists()
    with pytest.raises(control.ControlError, match="not running"):
        control.request({"command": "status"}, address)
    # an address left behind by a daemon that died: nobody answers, a new server takes over
    stale = control.ControlServer(handler, address)
    stale.start()
    stale._sock.close()
    stale._stop.set()
    with pytest.raises(control.ControlError, match="not answering"):
        control.request({"command": "status"}, address, timeout=2)
    fresh = control.ControlServer(handler, address)
    fresh.start()
    try:
        assert control.request({"command": "status"}, address)["ok"]
    finally:
        fresh.stop()


@pytest.mark.parametrize("name", ["control.sock", "control.json"])
def test_obs_hotkey_script_reaches_the_daemon(name, monkeypatch, capsys):
    """The OBS script (installers/obs) speaks the same protocol; `obspython` exists only inside OBS."""
    import importlib.util
    import sys
    import types

    monkeypatch.setitem(sys.modules, "obspython", types.ModuleType("obspython"))
    path = Path(__file__).parents[1] / "installers" / "obs" / "avatarcam_hotkeys.py"
    spec = importlib.util.spec_from_file_location("avatarcam_hotkeys", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    runtime = Path(tempfile.mkdtemp(prefix="ac-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert script.control_address() == runtime / "avatarcam" / "control.sock"  # this system has Unix sockets
    address = runtime / "avatarcam" / name
    monkeypatch.setattr(script, "control_address", lambda: address)
    seen = []
    srv = control.ControlServer(lambda req: seen.append(req) or {"ok": True, "message": "emotion happy"}, address)
    srv.start()
    try:
        script.send({"command": "emotion", "name": "happy"})
    finally:
        srv.stop()
    assert seen == [{"command": "emotion", "name": "happy"}]
    assert "AvatarCam: emotion happy" in capsys.readouterr().out
