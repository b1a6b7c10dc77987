"""The wheel, built offline from the checkout: it holds every package and the bundled profiles from the
top-level profiles/ folder, and an installed AvatarCam finds its default profile there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: setuptools' build/ folder in a shared checkout can carry stale files into a wheel.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("avatarcam", "profiles"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(out), str(src)], check=True, capture_output=True, timeout=300)
    return next(out.glob("avatarcam-*.whl"))


def test_the_wheel_carries_the_bundled_profiles_and_every_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    profiles = [p.relative_to(ROOT / "profiles").as_posix() for p in (ROOT / "profiles").rglob("*") if p.is_file()]
    assert "default/portrait.png" in profiles and "default/consent.json" in profiles and "CREDITS.md" in profiles
    assert {f"avatarcam/bundled_profiles/{p}" for p in profiles} <= names
    assert not any(n.startswith(("profiles/", "avatarcam/data/profiles/")) for n in names)  # one copy, in one place
    packages = [p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "avatarcam").rglob("__init__.py")
                if "__pycache__" not in p.parts]
    assert {f"{p}/__init__.py" for p in packages} <= names, "a package is missing from pyproject.toml's list"
    assert "avatarcam/data/motion.safetensors" in names and "avatarcam/data/demo.flac" in names
    kernels = [p.relative_to(ROOT).as_posix() for p in (ROOT / "avatarcam" / "render" / "kernels").iterdir()]
    assert kernels and set(kernels) <= names  # the GPU renderer compiles them where it is installed


def test_an_installed_avatarcam_finds_its_bundled_profile(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    probe = ("import json, avatarcam; from avatarcam.config import Settings; from avatarcam import profiles; "
             f"p = profiles.load_profile('default', Settings(data_dir={str(tmp_path / 'data')!r})); "
             "print(json.dumps([avatarcam.__file__, str(profiles.BUNDLED_DIR), str(p.dir), p.bundled]))")
    # The installed copy first on the path, run away from the checkout (the venv still gives numpy, cv2, ...).
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    package, bundled, directory, is_bundled = json.loads(run.stdout.splitlines()[-1])
    assert Path(package).parent == site / "avatarcam"
    assert Path(bundled) == site / "avatarcam" / "bundled_profiles"
    assert Path(directory) == site / "avatarcam" / "bundled_profiles" / "default" and is_bundled


def test_a_checkout_finds_the_top_level_profiles_folder():
    from avatarcam import profiles

    assert profiles.BUNDLED_DIR == ROOT / "profiles"
