"""Face model resolution (download checked against a local server) and the measured face: points,
blendshapes, and the pose convention the renderer relies on, checked on real portraits."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatarcam import latent
from avatarcam.config import Settings
from avatarcam.errors import AvatarCamError
from avatarcam.render.face import (FACE_MODEL_FILE, FACE_MODEL_SHA256, NOSE_TIP, NUM_POINTS, FaceMeasurer,
                                   resolve_face_model)

PORTRAIT_FILES = ("astronaut.png", "cartoon_boy.jpg", "grace_hopper.jpg", "mona_lisa.jpg")


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def measurer(face_model):
    with FaceMeasurer(face_model) as m:
        yield m


# --- resolving the model ------------------------------------------------------------------------

@pytest.fixture
def model_server(tmp_path, face_model, monkeypatch):
    """A local HTTP server with a good and a corrupted copy of the model; never the internet."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(face_model, root / FACE_MODEL_FILE)
    data = bytearray((root / FACE_MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / "corrupt.task").write_bytes(bytes(data))
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("AVATARCAM_FACE_MODEL", raising=False)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_user_path_wins_and_must_exist(tmp_path, face_model):
    assert resolve_face_model(Settings(face_model=face_model)) == face_model
    with pytest.raises(AvatarCamError, match="does not exist"):
        resolve_face_model(Settings(face_model=tmp_path / "nope.task"))


def test_download_once_then_cached(tmp_path, model_server):
    settings = Settings(cache_dir=tmp_path / "cache", face_model_url=f"{model_server}/{FACE_MODEL_FILE}")
    assert settings.face_model is None
    path = resolve_face_model(settings)
    assert path == tmp_path / "cache" / FACE_MODEL_FILE
    assert hashlib.sha256(path.read_bytes()).hexdigest() == FACE_MODEL_SHA256
    assert sorted(p.name for p in path.parent.iterdir()) == [FACE_MODEL_FILE]  # no temp file left
    # Second time: served from the cache even though the URL now points nowhere.
    offline = Settings(cache_dir=tmp_path / "cache", face_model_url="http://127.0.0.1:9/x.task")
    assert resolve_face_model(offline) == path


def test_download_checksum_mismatch_is_refused(tmp_path, model_server):
    settings = Settings(cache_dir=tmp_path / "cache", face_model_url=f"{model_server}/corrupt.task")
    with pytest.raises(AvatarCamError, match="sha256") as err:
        resolve_face_model(settings)
    assert "AVATARCAM_FACE_MODEL" in str(err.value)
    assert not any((tmp_path / "cache").iterdir())  # nothing half-trusted stays behind


def test_corrupt_cache_is_replaced(tmp_path, model_server):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / FACE_MODEL_FILE).write_bytes(b"truncated")
    settings = Settings(cache_dir=cache, face_model_url=f"{model_server}/{FACE_MODEL_FILE}")
    path = resolve_face_model(settings)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == FACE_MODEL_SHA256


def test_network_failure_says_how_to_pass_a_path(tmp_path, model_server):
    for url in (f"{model_server}/missing.task", "http://127.0.0.1:9/face_landmarker.task"):
        settings = Settings(cache_dir=tmp_path / "cache", face_model_url=url)
        with pytest.raises(AvatarCamError, match="could not download") as err:
            resolve_face_model(settings)
        assert "AVATARCAM_FACE_MODEL" in str(err.value)


def test_not_a_model_file(tmp_path):
    bogus = tmp_path / "bogus.task"
    bogus.write_bytes(b"not a task bundle")
    with pytest.raises(AvatarCamError, match="could not load"):
        FaceMeasurer(bogus)


# --- measuring ----------------------------------------------------------------------------------

@pytest.mark.parametrize("filename", PORTRAIT_FILES)
def test_face_fields(measurer, portraits_dir, filename):
    image = read_rgb(portraits_dir / filename)
    h, w = image.shape[:2]
    faces = measurer.detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.points.shape == (NUM_POINTS, 3) and face.points.dtype == np.float32
    x0, y0, x1, y1 = face.bbox
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert face.size == pytest.approx(max(x1 - x0, y1 - y0))
    # Pixel units: the nose tip lies inside the box, near its middle.
    assert x0 + 0.25 * (x1 - x0) < face.points[NOSE_TIP, 0] < x1 - 0.25 * (x1 - x0)
    assert len(face.blendshapes) == 51 and "_neutral" not in face.blendshapes
    # MediaPipe measures every latent expression channel except tongueOut (not in its model).
    assert set(latent.EXPRESSION) - {"tongueOut"} <= set(face.blendshapes)
    assert all(0.0 <= v <= 1.0 for v in face.blendshapes.values())
    assert face.matrix.shape == (4, 4)
    # z is scaled like x: the face's depth range is a fraction of its width, not of 1.
    assert 0.1 * (x1 - x0) < np.ptp(face.points[:, 2]) < 1.5 * (x1 - x0)


def test_largest_first(measurer, portraits_dir):
    big = read_rgb(portraits_dir / "grace_hopper.jpg")
    small = cv2.resize(read_rgb(portraits_dir / "cartoon_boy.jpg"), (300, 300), interpolation=cv2.INTER_AREA)
    canvas = np.full((big.shape[0], big.shape[1] + 300, 3), 200, np.uint8)
    canvas[:, :big.shape[1]] = big
    canvas[150:450, big.shape[1]:] = small
    faces = measurer.detect(canvas)
    assert len(faces) == 2
    assert faces[0].size > faces[1].size
    assert faces[0].bbox[2] <= big.shape[1]  # the big one is Grace Hopper, on the left


def test_no_face(measurer):
    gradient = np.tile(np.linspace(0, 255, 400, dtype=np.uint8)[None, :, None], (300, 1, 3))
    assert measurer.detect(gradient) == []


# --- the pose convention (contract with the renderer) -------------------------------------------

def _deg(angles):
    return np.degrees(np.array(angles))


@pytest.mark.parametrize("filename", PORTRAIT_FILES)
def test_mirror_negates_yaw_and_roll(measurer, portraits_dir, filename):
    image = read_rgb(portraits_dir / filename)
    yaw, pitch, roll = _deg(measurer.detect(image)[0].pose())
    m_yaw, m_pitch, m_roll = _deg(measurer.detect(np.ascontiguousarray(image[:, ::-1]))[0].pose())
    assert m_yaw == pytest.approx(-yaw, abs=2.0)
    assert m_roll == pytest.approx(-roll, abs=2.0)
    assert m_pitch == pytest.approx(pitch, abs=2.0)


def test_yaw_sign_follows_the_nose(measurer, portraits_dir):
    """Mona Lisa turns toward image left: the nose sits left of the face oval, so yaw < 0."""
    image = read_rgb(portraits_dir / "mona_lisa.jpg")
    face = measurer.detect(image)[0]
    x0, _, x1, _ = face.bbox
    assert face.points[NOSE_TIP, 0] < (x0 + x1) / 2
    yaw = _deg(face.pose())[0]
    assert yaw < -8
    mirrored = measurer.detect(np.ascontiguousarray(image[:, ::-1]))[0]
    assert _deg(mirrored.pose())[0] > 8


@pytest.mark.parametrize("filename", PORTRAIT_FILES)
def test_clockwise_rotation_is_positive_roll(measurer, portraits_dir, filename):
    image = read_rgb(portraits_dir / filename)
    h, w = image.shape[:2]
    # OpenCV's angle is counter-clockwise on screen, so -10 turns the picture 10 deg clockwise.
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), -10.0, 1.0)
    turned = cv2.warpAffine(image, turn, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    roll = _deg(measurer.detect(image)[0].pose())[2]
    turned_roll = _deg(measurer.detect(turned)[0].pose())[2]
    assert turned_roll - roll == pytest.approx(10.0, abs=2.0)


def test_pose_inverts_latent_rotation(measurer, portraits_dir):
    face = measurer.detect(read_rgb(portraits_dir / "mona_lisa.jpg"))[0]
    assert np.allclose(latent.rotation(*face.pose()), face.rotation(), atol=1e-9)
    r = face.rotation()
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-9) and np.linalg.det(r) == pytest.approx(1.0)


# --- video mode ---------------------------------------------------------------------------------

def test_video_mode(face_model, portraits_dir):
    image = read_rgb(portraits_dir / "grace_hopper.jpg")
    with FaceMeasurer(face_model, max_faces=1, video=True) as video:
        first = video.detect(image, 0)[0]
        second = video.detect(image, 33)[0]
        assert np.abs(first.points - second.points).max() < 3.0
        with pytest.raises(ValueError, match="increasing"):
            video.detect(image, 33)
        with pytest.raises(ValueError, match="increasing"):
            video.detect(image)
    with pytest.raises(RuntimeError, match="closed"):
        video.detect(image, 66)


def test_quiet_and_clean_exit_when_left_open(face_model, portraits_dir):
    """No MediaPipe log lines while loading, no finaliser traceback at exit when never closed."""
    import subprocess
    import sys

    script = (
        "import sys, cv2\n"
        "from avatarcam.render.face import FaceMeasurer\n"
        f"image = cv2.imread({str(portraits_dir / 'grace_hopper.jpg')!r})[:, :, ::-1].copy()\n"
        f"still = FaceMeasurer({str(face_model)!r})\n"
        f"video = FaceMeasurer({str(face_model)!r}, video=True)\n"
        "assert len(still.detect(image)) == 1 and len(video.detect(image, 0)) == 1\n"
        "print('done')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "done", run.stderr
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr, run.stderr
    assert "XNNPACK" not in run.stderr and "InitGoogle" not in run.stderr, run.stderr
