"""`avatarcam tray`: the live daemon with a tray icon and menu (pystray).

The icon's colour and tooltip say how the daemon is (live, paused, no microphone, no virtual
microphone, no camera, starting); the menu switches profile, emotion and framing, pauses, shows a preview window, opens the
profiles folder, toggles start at login and quits. It drives the daemon in this process, with
the same calls the control socket uses, so `avatarcam ctl` and the OBS script keep working
beside it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from avatarcam.config import FRAMINGS, Settings
from avatarcam.daemon import Daemon, LiveOptions
from avatarcam.errors import AvatarCamError
from avatarcam.motion.controls import EMOTIONS

log = logging.getLogger(__name__)

COLOURS = {"live": (46, 160, 67), "paused": (210, 153, 34), "no microphone": (207, 34, 46),
           "no virtual microphone": (230, 110, 20),
           "no camera": (207, 34, 46), "starting": (140, 140, 140), "stopped": (90, 90, 90)}


def state_of(daemon: Daemon | None, failure: str | None = None) -> tuple[str, str]:
    """(state for the icon colour, tooltip text) from the daemon's status."""
    if failure:
        return ("no camera" if "camera" in failure else "stopped"), f"AvatarCam: {failure}"
    if daemon is None or daemon.started is None:
        return "starting", "AvatarCam: starting"
    status = daemon.status()
    if status["state"] == "stopping":
        return "stopped", "AvatarCam: stopping"
    # VMC alone (--sink vmc) has no portrait: the tooltip names where the motion goes instead
    on_air = f"profile {status['profile']}" if status["profile"] is not None else "3D avatar over VMC"
    line = f"AvatarCam: {status['state']}, {on_air}, {status['emotion']}"
    if status["vmc"]:
        line += f"\nVMC: {status['vmc']}"
    if status["message"]:
        line += f"\n{status['message']}"
    if status["state"] == "paused":
        return "paused", line
    if str(status["microphone"]).startswith("no microphone"):
        return "no microphone", f"{line}\n{status['microphone']}"
    # the call hears nothing while the virtual microphone is down: say so (off by choice, or still connecting, is fine)
    if not str(status["virtual_mic"]).startswith(("ok", "off", "connecting")):
        return "no virtual microphone", f"{line}\n{status['virtual_mic']}"
    return "live", line


def icon_image(state: str, size: int = 64):
    """A round badge in the state's colour with a camera lens: readable at 16 px."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    colour = COLOURS.get(state, COLOURS["starting"])
    draw.ellipse((2, 2, size - 3, size - 3), fill=colour + (255,))
    r = size // 5
    c = size // 2
    draw.ellipse((c - r, c - r, c + r, c + r), fill=(255, 255, 255, 255))
    draw.ellipse((c - r // 2, c - r // 2, c + r // 2, c + r // 2), fill=(30, 30, 30, 255))
    return image


def autostart_file() -> Path:
    config = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return config / "autostart" / "avatarcam.desktop"


def set_autostart(on: bool) -> None:
    """Start the tray at login (XDG autostart; Windows and macOS: their installers)."""
    if not sys.platform.startswith("linux"):
        raise AvatarCamError("start at login is set by installers/windows/install.ps1 or installers/macos/install.sh")
    path = autostart_file()
    if on:
        path.parent.mkdir(parents=True, exist_ok=True)
        exe = sys.argv[0] if sys.argv and Path(sys.argv[0]).name == "avatarcam" else "avatarcam"
        path.write_text("[Desktop Entry]\nType=Application\nName=AvatarCam\nComment=Talking-portrait virtual camera\n"
                        f"Exec={exe} tray\nIcon=camera-web\nTerminal=false\nX-GNOME-Autostart-enabled=true\n")
    else:
        path.unlink(missing_ok=True)


def open_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":
        os.startfile(path)  # noqa: S606 - the user's own folder
    else:
        subprocess.Popen(["open" if sys.platform == "darwin" else "xdg-open", str(path)])


class Tray:
    """The icon, its menu and the daemon behind them."""

    def __init__(self, options: LiveOptions, settings: Settings, backend=None, daemon: Daemon | None = None) -> None:
        self.options, self.settings = options, settings
        self.daemon = daemon if daemon is not None else Daemon(options, settings)
        self.failure: str | None = None
        self._pystray = backend
        self.icon = None

    # -- menu ---------------------------------------------------------------------------------

    def menu(self):
        from avatarcam.profiles import list_profiles

        pystray = self._backend()
        item, menu = pystray.MenuItem, pystray.Menu
        d = self.daemon

        def current_profile() -> str | None:
            return d.profile_name

        def profile_item(name: str):
            return item(name, lambda icon, _: self._switch(name), checked=lambda _: current_profile() == name,
                        radio=True)

        def emotion_item(name: str):
            return item(name, lambda icon, _: self._do(d.set_emotion, name),
                        checked=lambda _: getattr(getattr(d, "engine", None), "emotion", None) == name, radio=True)

        def framing_item(name: str):
            return item(name, lambda icon, _: self._look(framing=name),
                        checked=lambda _: d.settings.framing == name, radio=True)

        return menu(
            item(lambda _: state_of(d, self.failure)[1].split("\n")[0], None, enabled=False),
            menu.SEPARATOR,
            item("Profile", menu(lambda: [profile_item(n) for n in list_profiles(self.settings)])),
            item("Emotion", menu(*[emotion_item(e) for e in EMOTIONS])),
            item("Paused", lambda icon, _: d.resume() if d.paused else d.pause(), checked=lambda _: d.paused),
            item("Show preview", lambda icon, _: d.show_preview(not d.preview_wanted),
                 checked=lambda _: d.preview_wanted),
            # Framing comes after these, so the first items keep their places for keyboard users
            item("Framing", menu(*[framing_item(f) for f in FRAMINGS])),
            menu.SEPARATOR,
            item("Open profiles folder", lambda icon, _: open_folder(self.settings.profiles_dir)),
            item("Start at login", lambda icon, _: self._do(set_autostart, not autostart_file().exists()),
                 checked=lambda _: autostart_file().exists()),
            item("Quit", lambda icon, _: self.quit()),
        )

    def _do(self, fn, *args) -> None:
        try:
            fn(*args)
        except AvatarCamError as exc:
            self.daemon.message = str(exc)
            self.notify(str(exc))
        self.refresh()

    def _switch(self, name: str) -> None:
        # loading takes a moment: off the icon's thread, so the menu stays responsive
        threading.Thread(target=self._do, args=(self.daemon.set_profile, name), daemon=True).start()

    def _look(self, **look: str) -> None:
        # reframing rebuilds the renderer, as a profile switch does: off the icon's thread too
        threading.Thread(target=self._do, args=(lambda: self.daemon.set_look(**look),), daemon=True).start()

    def notify(self, text: str) -> None:
        if self.icon is not None and getattr(self.icon, "HAS_NOTIFICATION", False):
            try:
                self.icon.notify(text, "AvatarCam")
            except Exception:  # notifications are a nicety
                pass

    # -- lifecycle ----------------------------------------------------------------------------

    def _backend(self):
        if self._pystray is None:
            try:
                import pystray
            except ImportError as exc:
                raise AvatarCamError(f"the tray needs pystray ({exc}): pip install 'avatarcam[tray]'") from None
            self._pystray = pystray
        return self._pystray

    def refresh(self) -> None:
        if self.icon is None:
            return
        state, text = state_of(self.daemon, self.failure)
        self.icon.icon = icon_image(state)
        self.icon.title = text[:127]  # Windows limits tooltips to 127 characters
        self.icon.update_menu()

    def _run_daemon(self) -> None:
        try:
            self.daemon.run()
        except AvatarCamError as exc:  # it never went live: the icon stays, red, and says why
            self.failure = str(exc)
            log.error("%s", exc)
            self.notify(str(exc))
            self.refresh()
        else:  # it ran and stopped (`avatarcam ctl quit`, the end of --audio): so does the tray
            if self.icon is not None:
                self.icon.stop()

    def _watch(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            self.refresh()

    def quit(self) -> None:
        self.daemon.stop()
        if self.icon is not None:
            self.icon.stop()

    def run(self) -> int:
        pystray = self._backend()
        self.icon = pystray.Icon("avatarcam", icon_image("starting"), "AvatarCam: starting", menu=self.menu())
        worker = threading.Thread(target=self._run_daemon, name="avatarcam-daemon", daemon=True)
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(stop,), name="avatarcam-tray-status", daemon=True)

        def setup(icon) -> None:
            icon.visible = True
            if not getattr(icon, "HAS_MENU", True):
                log.warning("this tray backend (%s) shows no menu: install PyGObject (python3-gi) for one; "
                            "`avatarcam ctl` steers AvatarCam meanwhile", type(icon).__module__)
            worker.start()
            watcher.start()

        try:
            self.icon.run(setup=setup)  # the main thread: macOS requires it
        except Exception as exc:  # the desktop's tray or notification services, not ours
            if not worker.is_alive() and self.daemon.started is None:
                raise AvatarCamError(f"the tray icon could not start ({type(exc).__name__}: {exc}); is a desktop "
                                     "session with a system tray running? `avatarcam live` runs without one") from None
            log.warning("the tray icon ended with an error (%s: %s)", type(exc).__name__, exc)
        finally:
            stop.set()
            self.daemon.stop()
            if worker.is_alive():
                worker.join(10)
        return self.daemon.exit_code if self.failure is None else 2
