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


@pytest.fixture(scope="session")
def judge(face_model):
    """The Face Landmarker as the independent judge of rendered frames (one face, image mode)."""
    from avatarcam.render.face import FaceMeasurer

    with FaceMeasurer(face_model, max_faces=1) as measurer:
        yield measurer


@pytest.fixture(scope="session")
def portrait_parts(portraits_dir, judge):
    """A function: a shared portrait's file name -> (image RGB, its face as the Face Landmarker
    measures it, a rough person matte (the face hull widened), a plate inpainted behind it), as
    enrollment's would be, without enrollment's slow GrabCut and turn probes."""
    import cv2
    import numpy as np

    made = {}

    def parts(filename: str):
        if filename not in made:
            image = cv2.cvtColor(cv2.imread(str(portraits_dir / filename)), cv2.COLOR_BGR2RGB)
            face = judge.detect(image)[0]
            matte = np.zeros(image.shape[:2], np.float32)
            hull = cv2.convexHull(face.points[:468, :2].astype(np.float32))[:, 0]
            centre = hull.mean(0)
            cv2.fillPoly(matte, [np.round((hull - centre) * 1.6 + centre).astype(np.int32)], 1.0)
            plate = cv2.inpaint(image, (matte > 0).astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
            made[filename] = (image, face, matte, plate)
        image, face, matte, plate = made[filename]
        return image.copy(), face, matte.copy(), plate.copy()
    return parts


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path, monkeypatch):
    """Never touch the real user's profiles, config or cache."""
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.delenv("AVATARCAM_FACE_MODEL", raising=False)
    if FACE_MODEL.exists():  # the tests' stand-in for the user's one-time model download
        monkeypatch.setenv("AVATARCAM_FACE_MODEL", str(FACE_MODEL))
