"""The tray: icon state and menu, driving a real daemon; pystray's icon replaced at its edge
(its Menu and MenuItem are the real ones, through pystray's dummy backend)."""

from __future__ import annotations

import threading

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
        assert wait_for(lambda: tray.icon is not None and daemon.started is not None and hasattr(daemon, "pacer"))
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
