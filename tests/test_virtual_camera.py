"""The virtual camera: found by its label, clear errors naming the fix (sysfs and pyvirtualcam
replaced at their edges)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from avatarcam.camera import virtual
from avatarcam.camera.virtual import VirtualCameraSink, explain_open_error, find_device
from avatarcam.errors import OutputError


def fake_sysfs(root, devices: dict[str, str]):
    sysfs = root / "video4linux"
    sysfs.mkdir()
    for name, label in devices.items():
        (sysfs / name).mkdir()
        (sysfs / name / "name").write_text(label + "\n")
    return sysfs


class FakeCamera:
    sent: list = []

    def __init__(self, width, height, fps, fmt, device=None, backend=None):
        if FakeCamera.fail:
            raise RuntimeError(f"'v4l2loopback' backend: {FakeCamera.fail}")
        self.device, self.backend, self.size = device, backend, (width, height)
        self.closed = False

    def send(self, frame):
        FakeCamera.sent.append(frame.shape)

    def close(self):
        self.closed = True


def fake_pyvirtualcam(fail: str | None = None):
    FakeCamera.fail, FakeCamera.sent = fail, []
    return types.SimpleNamespace(Camera=FakeCamera, PixelFormat=types.SimpleNamespace(RGB="RGB"))


def test_device_is_found_by_label_not_number(tmp_path):
    sysfs = fake_sysfs(tmp_path, {"video0": "Integrated Camera", "video4": "Dummy video device (0x0000)",
                                  "video10": "AvatarCam"})
    assert find_device(sysfs=sysfs) == "/dev/video10"
    sink = VirtualCameraSink((64, 36), 30, platform="linux", sysfs=sysfs, backend=fake_pyvirtualcam())
    sink.write(np.zeros((36, 64, 3), np.uint8))
    assert sink.device == "/dev/video10" and FakeCamera.sent == [(36, 64, 3)]
    sink.close()


def test_missing_device_names_the_installer_and_what_was_found(tmp_path):
    sysfs = fake_sysfs(tmp_path, {"video0": "Integrated Camera"})
    with pytest.raises(OutputError) as err:
        VirtualCameraSink((64, 36), 30, platform="linux", sysfs=sysfs, backend=fake_pyvirtualcam())
    text = str(err.value)
    assert "install.sh" in text and "card_label=AvatarCam exclusive_caps=1" in text
    assert "/dev/video0 (Integrated Camera)" in text and "--sink" in text


def test_no_video_devices_at_all(tmp_path):
    with pytest.raises(OutputError, match="v4l2loopback is not loaded.*install.sh"):
        find_device(sysfs=tmp_path / "absent")


def test_v4l2loopback_012_reopen_bug_is_recognised(tmp_path, monkeypatch):
    sysfs = fake_sysfs(tmp_path, {"video10": "AvatarCam"})
    monkeypatch.setattr(virtual, "module_version", lambda: "0.12.7")
    backend = fake_pyvirtualcam("Device /dev/video10 is not a video output device.")
    with pytest.raises(OutputError) as err:
        VirtualCameraSink((64, 36), 30, platform="linux", sysfs=sysfs, backend=backend)
    text = str(err.value)
    assert "0.12.7" in text and "reloaded" in text and "--reload" in text and "modprobe -r v4l2loopback" in text
    assert "0.13" in text


def test_busy_and_permission_errors_say_what_to_do():
    busy = explain_open_error("/dev/video10", "Device /dev/video10 could not be opened: Device or resource busy", None)
    assert "another program" in busy and "avatarcam ctl quit" in busy
    denied = explain_open_error("/dev/video10", "could not be opened: Permission denied", None)
    assert "usermod -aG video" in denied


def test_windows_falls_back_from_unity_capture_to_obs():
    calls = []

    class Camera(FakeCamera):
        def __init__(self, width, height, fps, fmt, device=None, backend=None):
            calls.append((device, backend))
            if backend == "unitycapture":
                raise RuntimeError("'unitycapture' backend: device AvatarCam not found")
            super().__init__(width, height, fps, fmt, device, backend)

    FakeCamera.fail = None
    backend = types.SimpleNamespace(Camera=Camera, PixelFormat=types.SimpleNamespace(RGB="RGB"))
    sink = VirtualCameraSink((64, 36), 30, platform="win32", backend=backend)
    assert calls == [("AvatarCam", "unitycapture"), (None, "obs")]
    sink.close()
