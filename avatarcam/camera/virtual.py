"""The virtual camera "AvatarCam" through pyvirtualcam, with errors that say how to fix them.

- Linux: a v4l2loopback device created with `card_label=AvatarCam exclusive_caps=1`, found by
  its label in /sys/class/video4linux/*/name (device numbers change between boots and machines).
- Windows: Unity Capture registered under the name AvatarCam, else OBS Virtual Camera.
- macOS: OBS Virtual Camera.

The device is opened once and kept open for the daemon's whole life, profile switches
included: with v4l2loopback 0.12 (Debian 12, Ubuntu 24.04) and exclusive_caps=1, once a
producer closes the device the next one is refused ("not a video output device") until the
module is reloaded. That error is recognised and explained.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from avatarcam.camera.sinks import SinkBase, check_frame, check_size
from avatarcam.errors import OutputError

LABEL = "AvatarCam"
SYSFS = Path("/sys/class/video4linux")
MODULE_VERSION = Path("/sys/module/v4l2loopback/version")

LINUX_INSTALL = "installers/linux/install.sh"
LINUX_MODPROBE = f"sudo modprobe v4l2loopback card_label={LABEL} exclusive_caps=1 video_nr=10"
LINUX_RELOAD = (f"installers/linux/install.sh --reload (or: sudo modprobe -r v4l2loopback && {LINUX_MODPROBE})")
WINDOWS_INSTALL = "installers\\windows\\install.ps1 (run in PowerShell as administrator)"
MACOS_INSTALL = "install OBS Studio, start its Virtual Camera once, then run installers/macos/install.sh"


def v4l2loopback_devices(sysfs: Path = SYSFS) -> dict[str, str]:
    """{'/dev/videoN': label} for every video4linux device the kernel lists."""
    found = {}
    if sysfs.is_dir():
        for entry in sorted(sysfs.glob("video*")):
            try:
                found[f"/dev/{entry.name}"] = (entry / "name").read_text().strip()
            except OSError:
                continue
    return found


def module_version(path: Path = MODULE_VERSION) -> str | None:
    """The v4l2loopback version: the loaded module's, else what modinfo says is installed."""
    try:
        return path.read_text().strip()
    except OSError:
        pass
    try:  # 0.12 does not publish its version in /sys
        found = subprocess.run(["modinfo", "-F", "version", "v4l2loopback"], capture_output=True, text=True,
                               timeout=3).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return found or None


def find_device(label: str = LABEL, sysfs: Path = SYSFS) -> str:
    """The /dev/videoN whose label is `label`, or an OutputError naming the fix."""
    devices = v4l2loopback_devices(sysfs)
    for device, name in devices.items():
        if name == label:
            return device
    if not sysfs.is_dir() or not devices:
        why = "this system has no video devices at all (v4l2loopback is not loaded)"
    else:
        why = "the video devices are " + ", ".join(f"{d} ({n})" for d, n in devices.items())
    raise OutputError(
        f"no virtual camera labelled {label!r}: {why}. Set it up once with `{LINUX_INSTALL}` "
        f"(it installs v4l2loopback and loads it at boot), or for this session: `{LINUX_MODPROBE}`. "
        "To try AvatarCam without a camera device use --sink preview, --sink file:OUT.mp4 or --sink null")


def explain_open_error(device: str, message: str, version: str | None) -> str:
    """What a failed open of `device` means and what to do, from pyvirtualcam's message."""
    text = message.lower()
    if "not a video output device" in text:
        old = version is not None and version.startswith(("0.12", "0.11", "0.10"))
        known = (f"this is the known bug of v4l2loopback {version or '0.12'} with exclusive_caps=1: once a "
                 "program has stopped sending to the device, the next one is refused until the module is "
                 "reloaded" if old or version is None else
                 "another program is reading it without a producer, or the module was loaded without "
                 "exclusive_caps=1")
        return (f"{device} refuses AvatarCam's frames ({message.strip()}): {known}. Fix: {LINUX_RELOAD}"
                + ("; v4l2loopback 0.13 or newer fixes it for good" if old or version is None else ""))
    if "busy" in text or f"errno {errno.EBUSY}" in text:
        return (f"{device} is busy: another program is already sending to it (another avatarcam? OBS's "
                "virtual camera?). Stop it (`avatarcam ctl quit` stops a running AvatarCam) and start again")
    if "permission" in text or "denied" in text:
        return (f"no permission to open {device}: add yourself to the 'video' group "
                "(sudo usermod -aG video $USER), then log out and in again")
    return f"cannot open the virtual camera {device}: {message.strip()}. Check the set-up with `{LINUX_INSTALL}`"


class VirtualCameraSink(SinkBase):
    """Frames to the virtual camera. `device` overrides the label search (a path on Linux, a name
    elsewhere). `backend` is the pyvirtualcam module (tests hand in a stand-in)."""

    def __init__(self, size: tuple[int, int], fps: float = 30, device: str | None = None, label: str = LABEL,
                 platform: str = sys.platform, sysfs: Path = SYSFS, backend: ModuleType | None = None) -> None:
        self.size = check_size(size)
        self.fps = fps
        self.frames = 0
        self._camera = None
        cam = backend if backend is not None else _pyvirtualcam()
        w, h = self.size
        attempts: list[tuple[str | None, str | None]]
        if platform.startswith("linux"):
            attempts = [(device or find_device(label, sysfs), "v4l2loopback")]
        elif platform == "win32":
            attempts = [(device, None)] if device else [(label, "unitycapture"), (None, "obs")]
        else:
            attempts = [(device, "obs")]
        errors = []
        for dev, backend_name in attempts:
            try:
                kwargs = {"device": dev} if dev else {}
                if backend_name:
                    kwargs["backend"] = backend_name
                self._camera = cam.Camera(width=w, height=h, fps=fps, fmt=cam.PixelFormat.RGB, **kwargs)
                break
            except Exception as exc:  # pyvirtualcam raises RuntimeError with the backends' messages
                errors.append((dev, str(exc)))
        if self._camera is None:
            raise OutputError(self._explain(errors, platform))
        self.device = self._camera.device

    @staticmethod
    def _explain(errors: list[tuple[str | None, str]], platform: str) -> str:
        if platform.startswith("linux"):
            device, message = errors[0]
            return explain_open_error(device or "the virtual camera", message, module_version())
        fix = WINDOWS_INSTALL if platform == "win32" else MACOS_INSTALL
        details = "; ".join(message for _, message in errors)
        return f"no AvatarCam virtual camera could be opened ({details}). Set it up: {fix}"

    def write(self, frame: np.ndarray) -> None:
        if self._camera is None:
            raise ValueError("write after close")
        self._camera.send(check_frame(frame, self.size))
        self.frames += 1

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()


def _pyvirtualcam() -> ModuleType:
    try:
        import pyvirtualcam
    except ImportError as exc:
        raise OutputError(f"the virtual camera needs pyvirtualcam ({exc}); reinstall AvatarCam "
                          "(pip install avatarcam)") from None
    return pyvirtualcam
