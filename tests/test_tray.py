"""The tray: icon state and menu, driving a real daemon; pystray's icon replaced at its edge
(its Menu and MenuItem are the real ones, through pystray's dummy backend)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from avatarcam.audio.capture import FileCapture
from avatarcam.cli import demo_audio
from avatarcam.audio.io import load_audio
from avatarcam.daemon import Daemon, LiveOptions
from avatarcam.config import Settings
from test_live_audio import wait_for


@pytest.fixture
def pystray(monkeypatch):
    monkeypatch.setenv("PYSTRAY_BACKEND", "dummy")
    return pytest.importorskip("pystray")


class FakeIcon:
    HAS_NOTIFICATION = True

    def __init__(self, name, icon, title, menu):
        self.icon, self.title, self.menu = icon, title, menu
        self.notes, self.visible = [], False
        self._stop = threading.Event()

    def run(self, setup):
        setup(self)
        self._stop.wait(60)

    def stop(self):
        self._stop.set()

    def update_menu(self):
        pass

    def notify(self, text, title):
        self.notes.append(text)


def items(menu):
    return {str(i.text): i for i in menu.items if i.text}


def test_tray_menu_drives_the_daemon(pystray, monkeypatch, tmp_path):
    from avatarcam import tray as tray_module
    monkeypatch.setattr(pystray, "Icon", FakeIcon, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    options = LiveOptions(size=(320, 180), sink="null", virtual_mic="off", control=False)
    clip = load_audio(demo_audio())
    daemon = Daemon(options, capture=FileCapture(clip, loop=True), sink=type("S", (), {
        "write": lambda self, f: None, "close": lambda self: None})())
    tray = tray_module.Tray(options, Settings(), backend=pystray, daemon=daemon)
    runner = threading.Thread(target=tray.run, daemon=True)
    runner.start()
    try:
        assert wait_for(lambda: tray.icon is not None and daemon.started is not None and daemon.pacer is not None)
        tray.refresh()
        assert tray.icon.title.startswith("AvatarCam: live, profile default")
        assert tuple(np.array(tray.icon.icon)[32, 8, :3]) == tray_module.COLOURS["live"]
        menu = items(tray.icon.menu)
        assert {"Profile", "Emotion", "Paused", "Show preview", "Open profiles folder", "Start at login",
                "Quit"} <= set(menu)
        emotions = items(menu["Emotion"].submenu)
        emotions["happy"](tray.icon)
        assert daemon.engine.emotion == "happy" and emotions["happy"].checked
        menu["Paused"](tray.icon)
        assert daemon.paused and menu["Paused"].checked
        tray.refresh()
        assert tuple(np.array(tray.icon.icon)[32, 8, :3]) == tray_module.COLOURS["paused"]
        menu["Paused"](tray.icon)
        assert not daemon.paused
        profiles = items(menu["Profile"].submenu)
        assert "default" in profiles and profiles["default"].checked
        tray._do(daemon.set_profile, "ghost")  # what a profile that fails to load looks like
        assert "still showing 'default'" in tray.icon.notes[-1] and "ghost" in tray.icon.title
        menu["Start at login"](tray.icon)
        assert (tmp_path / "autostart" / "avatarcam.desktop").exists() and menu["Start at login"].checked
        menu["Start at login"](tray.icon)
        assert not (tmp_path / "autostart" / "avatarcam.desktop").exists()
        menu["Quit"](tray.icon)
        runner.join(20)
        assert not runner.is_alive()
    finally:
        tray.quit()


# -- the real thing: Xvfb, a tray host (trayer), pystray's GTK backend, clicks by xdotool ----------

SYSTEM_GI = Path("/usr/lib/python3/dist-packages/gi")  # Debian's python3-gi (PyGObject) for GTK


def _x_tools_missing() -> str | None:
    for tool in ("Xvfb", "trayer", "xdotool", "dbus-run-session"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install xvfb trayer xdotool dbus python3-gi gir1.2-gtk-3.0)"
    if not SYSTEM_GI.is_dir():
        return "PyGObject (python3-gi) is not installed"
    return None


def screenshot(path: Path) -> np.ndarray:
    """The whole X screen as RGB (python-xlib, which pystray brings), saved as PNG."""
    from PIL import Image
    from Xlib import X, display

    d = display.Display()
    try:
        root = d.screen().root
        g = root.get_geometry()
        raw = root.get_image(0, 0, g.width, g.height, X.ZPixmap, 0xFFFFFFFF)
        rgb = np.frombuffer(raw.data, np.uint8).reshape(g.height, g.width, 4)[:, :, [2, 1, 0]].copy()
    finally:
        d.close()
    Image.fromarray(rgb).save(path)
    return rgb


def colour_box(rgb: np.ndarray, colour: tuple[int, int, int]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the pixels of exactly this colour, or None."""
    ys, xs = np.nonzero(np.all(rgb == np.array(colour, np.uint8), axis=2))
    return (xs.min(), ys.min(), xs.max(), ys.max()) if len(xs) > 20 else None


@pytest.fixture
def x_display(tmp_path):
    """A virtual X screen with a system tray on it; DISPLAY for the test's subprocesses."""
    missing = _x_tools_missing()
    if missing:
        pytest.skip(missing)
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        display = ":" + f.readline().strip()
    env = os.environ | {"DISPLAY": display}
    tray_host = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width",
                                  "200", "--height", "32", "--transparent", "false"], env=env,
                                 stderr=subprocess.DEVNULL)
    try:
        yield env
    finally:
        for proc in (tray_host, xvfb):
            proc.terminate()
            proc.wait(10)


def test_real_tray_icon_and_menu_under_xvfb(x_display, tmp_path, monkeypatch):
    from avatarcam import control
    from avatarcam import tray as tray_module

    shots = Path(os.environ.get("AVATARCAM_SCREENSHOTS", tmp_path))
    gi_path = tmp_path / "gi_only"  # the system's gi, without the rest of the system's packages
    gi_path.mkdir()
    (gi_path / "gi").symlink_to(SYSTEM_GI)
    runtime = Path(tempfile.mkdtemp(prefix="ac-", dir="/tmp"))  # short: AF_UNIX path limit
    env = x_display | {"PYSTRAY_BACKEND": "gtk", "PYTHONPATH": str(gi_path), "XDG_RUNTIME_DIR": str(runtime)}
    monkeypatch.setenv("DISPLAY", env["DISPLAY"])
    address = runtime / "avatarcam" / "control.sock"
    cmd = ["dbus-run-session", "--", sys.executable, "-m", "avatarcam.cli", "tray", "--audio", str(demo_audio()),
           "--loop", "--sink", "null", "--virtual-mic", "off", "--size", "320x180"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    live, paused = tray_module.COLOURS["live"], tray_module.COLOURS["paused"]
    try:
        assert wait_for(lambda: address.exists(), timeout=60), "the tray's daemon never opened its control socket"
        assert wait_for(lambda: colour_box(screenshot(shots / "tray_icon.png"), live) is not None, timeout=30), \
            "no green (live) icon appeared in the tray"
        x0, y0, x1, y1 = colour_box(screenshot(shots / "tray_icon.png"), live)
        assert y1 < 32 and x0 > 600, "the icon is not in the tray panel"
        assert 12 <= x1 - x0 <= 32  # a tray-sized badge

        def menu_open() -> bool:
            return (screenshot(shots / "tray_menu.png")[40:200, 450:780].mean() > 150)  # a light menu below the icon

        subprocess.run(["xdotool", "mousemove", str((x0 + x1) // 2), str((y0 + y1) // 2), "click", "3"],
                       env=env, check=True)
        assert wait_for(menu_open, timeout=10), "right-clicking the icon opened no menu"
        # keyboard through the real GTK menu: the status line is disabled, so Down goes Profile,
        # Emotion, Paused; Return toggles Paused
        subprocess.run(["xdotool", "key", "--delay", "150", "Down", "Down", "Down", "Return"], env=env, check=True)
        assert wait_for(lambda: control.request({"command": "status"}, address)["status"]["state"] == "paused",
                        timeout=10), "choosing Paused in the menu did not pause the daemon"
        assert wait_for(lambda: colour_box(screenshot(shots / "tray_paused.png"), paused) is not None, timeout=10), \
            "the icon did not turn amber (paused)"
        assert control.request({"command": "quit"}, address)["ok"]
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
