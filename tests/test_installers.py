"""Installers: shellcheck clean, --dry-run changes nothing, a rerun changes nothing more.

Only the per-user parts run for real (into a throw-away HOME); the kernel module and the sound
server are not there on a CI machine, so the camera part is exercised in --dry-run only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINUX = ROOT / "installers" / "linux" / "install.sh"
MACOS = ROOT / "installers" / "macos" / "install.sh"


def sh(*args: str, home: Path) -> subprocess.CompletedProcess:
    """Run an installer with a throw-away HOME, and stand-ins for the commands that would reach the
    real machine (the user's systemd manager, sudo, the sound server), which only log their calls."""
    fake_bin = home / ".fake-bin"
    fake_bin.mkdir(exist_ok=True)
    for name in ("systemctl", "sudo", "pactl", "modprobe"):
        tool = fake_bin / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "{home}/.calls"\n')
        tool.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"}
    env |= {"HOME": str(home), "PATH": f"{fake_bin}:{env.get('PATH', '')}"}
    return subprocess.run(["bash", *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("script", [LINUX, MACOS], ids=["linux", "macos"])
def test_shellcheck_clean(script):
    exe = shutil.which("shellcheck") or pytest.skip("shellcheck is not installed")
    result = subprocess.run([exe, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_linux_dry_run_changes_nothing(tmp_path):
    result = sh(str(LINUX), "--dry-run", home=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "card_label=AvatarCam exclusive_caps=1" in out and "/etc/modprobe.d/avatarcam.conf" in out
    assert "would write" in out and not (tmp_path / ".config").exists()
    calls = (tmp_path / ".calls").read_text().splitlines() if (tmp_path / ".calls").exists() else []
    assert all(c.startswith(("pactl info", "pactl list")) for c in calls), calls  # only looked


def test_linux_user_parts_are_idempotent_and_uninstall_removes_them(tmp_path):
    first = sh(str(LINUX), "--no-camera", "--no-mic", home=tmp_path)
    assert first.returncode == 0, first.stderr
    unit = tmp_path / ".config/systemd/user/avatarcam.service"
    autostart = tmp_path / ".config/autostart/avatarcam.desktop"
    assert "live" in unit.read_text() and "Exec=" in autostart.read_text() and "tray" in autostart.read_text()
    again = sh(str(LINUX), "--no-camera", "--no-mic", home=tmp_path)
    assert again.returncode == 0 and "wrote" not in again.stdout and again.stdout.count("is up to date") == 2
    gone = sh(str(LINUX), "--uninstall", "--no-camera", "--no-mic", home=tmp_path)
    assert gone.returncode == 0, gone.stderr
    assert not unit.exists() and not autostart.exists()
    assert "systemctl --user disable --now avatarcam.service" in (tmp_path / ".calls").read_text()


def test_linux_rejects_unknown_options(tmp_path):
    result = sh(str(LINUX), "--frobnicate", home=tmp_path)
    assert result.returncode == 2 and "unknown option" in result.stderr
