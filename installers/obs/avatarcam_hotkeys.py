"""OBS Studio script: hotkeys for AvatarCam (profile and emotion switching, pause).

Load it in OBS (Tools > Scripts > +), then bind the keys in Settings > Hotkeys ("AvatarCam: ...").
It talks to the running `avatarcam live` (or `avatarcam tray`) over the same control channel as
`avatarcam ctl`: one JSON line per request on the user's Unix socket (on Windows, the
loopback port and token that AvatarCam writes to control.json). Profiles for the
"next profile" key are listed in the script's settings.
"""

import json
import os
import socket
import tempfile
from pathlib import Path

import obspython as obs  # provided by OBS

EMOTIONS = ("neutral", "happy", "sad", "surprised", "angry", "thinking")
_hotkeys = {}
_profiles = ["default"]
_next = 0


def control_address():
    """Where avatarcam.control listens: its Unix socket, or on Windows the port file
    ($XDG_RUNTIME_DIR/avatarcam, else avatarcam-<uid> in the temp dir)."""
    name = "control.sock" if hasattr(socket, "AF_UNIX") else "control.json"
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and Path(base).is_dir():
        return Path(base) / "avatarcam" / name
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"avatarcam-{user}" / name


def send(request):
    address = control_address()
    try:
        if address.suffix == ".json":  # loopback port and the daemon's secret token
            info = json.loads(address.read_text())
            family, target, request = socket.AF_INET, ("127.0.0.1", int(info["port"])), dict(request, token=info["token"])
        else:
            family, target = socket.AF_UNIX, str(address)
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(target)
            sock.sendall((json.dumps(request) + "\n").encode())
            reply = json.loads(sock.makefile().readline() or "{}")
    except (OSError, ValueError, KeyError) as exc:
        print(f"AvatarCam: not reachable ({exc}); is `avatarcam live` running?")
        return
    print(f"AvatarCam: {reply.get('message', '')}")


def _action(request):
    def pressed(is_pressed):
        if is_pressed:
            send(request)
    return pressed


def _next_profile(is_pressed):
    global _next
    if is_pressed and _profiles:
        _next = (_next + 1) % len(_profiles)
        send({"command": "profile", "name": _profiles[_next]})


def _bindings():
    keys = [("avatarcam.next_profile", "AvatarCam: next profile", _next_profile),
            ("avatarcam.pause", "AvatarCam: pause", _action({"command": "pause"})),
            ("avatarcam.resume", "AvatarCam: resume", _action({"command": "resume"}))]
    keys += [(f"avatarcam.emotion.{e}", f"AvatarCam: emotion {e}", _action({"command": "emotion", "name": e}))
             for e in EMOTIONS]
    return keys


def script_description():
    return "Hotkeys for AvatarCam: next profile, emotions, pause and resume (bind them in Settings > Hotkeys)."


def script_properties():
    props = obs.obs_properties_create()
    obs.obs_properties_add_text(props, "profiles", "Profiles for 'next profile' (comma-separated)",
                                obs.OBS_TEXT_DEFAULT)
    return props


def script_defaults(settings):
    obs.obs_data_set_default_string(settings, "profiles", "default")


def script_update(settings):
    global _profiles
    _profiles = [p.strip() for p in obs.obs_data_get_string(settings, "profiles").split(",") if p.strip()]


def script_load(settings):
    for name, description, callback in _bindings():
        hotkey = obs.obs_hotkey_register_frontend(name, description, callback)
        saved = obs.obs_data_get_array(settings, name)
        obs.obs_hotkey_load(hotkey, saved)
        obs.obs_data_array_release(saved)
        _hotkeys[name] = hotkey


def script_save(settings):
    for name, hotkey in _hotkeys.items():
        saved = obs.obs_hotkey_save(hotkey)
        obs.obs_data_set_array(settings, name, saved)
        obs.obs_data_array_release(saved)
