"""Shared test material lives beside the checkout in ../shared; tests skip cleanly without it."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PORTRAITS = SHARED / "assets" / "portraits"
SPEECH = SHARED / "assets" / "speech"
FACE_MODEL = SHARED / "models" / "face_landmarker.task"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test material {path} is absent (it lives in ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def face_model() -> Path:
    return _need(FACE_MODEL)


@pytest.fixture(scope="session")
def portraits_dir() -> Path:
    return _need(PORTRAITS)


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    return _need(SPEECH)


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path, monkeypatch):
    """Never touch the real user's profiles, config or cache."""
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.delenv("AVATARCAM_FACE_MODEL", raising=False)
    if FACE_MODEL.exists():  # the tests' stand-in for the user's one-time model download
        monkeypatch.setenv("AVATARCAM_FACE_MODEL", str(FACE_MODEL))
