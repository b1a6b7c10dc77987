"""MediaPipe Face Landmarker: the one face measurer for enrollment, personalisation and evaluation.

The model bundle is not inside the mediapipe wheel, so `resolve_face_model` finds it: a path the
user set, else a checked copy in the cache, else a one-time checked download. The live loop never
loads it.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarcam import latent
from avatarcam.config import Settings
from avatarcam.errors import AvatarCamError

log = logging.getLogger(__name__)

FACE_MODEL_FILE = "face_landmarker.task"
FACE_MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
NUM_POINTS = 478  # 468 mesh points + 10 iris points
# A few fixed vertices of MediaPipe's face mesh topology that geometry code leans on.
FOREHEAD, CHIN, NOSE_TIP = 10, 152, 1
CHEEK_IMAGE_LEFT, CHEEK_IMAGE_RIGHT = 234, 454  # the subject's right and left cheek, frontal view


# ---------------------------------------------------------------------------------------------
# Finding the model bundle

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _how_to_pass_a_path(url: str) -> str:
    return (f"download {url} yourself (or copy {FACE_MODEL_FILE} from another machine) and set "
            f"AVATARCAM_FACE_MODEL=/path/to/{FACE_MODEL_FILE}, or face_model in config.toml")


def resolve_face_model(settings: Settings) -> Path:
    """Path of a verified face_landmarker.task: the user's, the cached one, or a fresh download.

    A path the user set is trusted as given (they may use a newer bundle); a cached or downloaded
    copy must match FACE_MODEL_SHA256 so a truncated or tampered file never reaches MediaPipe.
    """
    if settings.face_model is not None:
        path = Path(settings.face_model).expanduser()
        if not path.is_file():
            raise AvatarCamError(f"face model {path} (AVATARCAM_FACE_MODEL / face_model) does not exist; "
                                 f"point it at a {FACE_MODEL_FILE} file or unset it to download one")
        return path
    cached = Path(settings.cache_dir) / FACE_MODEL_FILE
    if cached.is_file():
        if _sha256(cached) == FACE_MODEL_SHA256:
            return cached
        log.warning("cached face model %s fails its checksum; downloading it again", cached)
    _download(settings.face_model_url, cached)
    return cached


def _download(url: str, dest: Path, expected_sha256: str = FACE_MODEL_SHA256, timeout: float = 30.0) -> None:
    """Fetch `url` to `dest` through a temp file in the same folder, so `dest` is whole or absent."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading the face model (once) from %s", url)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=FACE_MODEL_FILE,
                              disable=None, leave=False) as bar:
                        for block in iter(lambda: response.read(1 << 16), b""):
                            out.write(block)
                            digest.update(block)
                            bar.update(len(block))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise AvatarCamError(f"could not download the face model from {url}: {exc}; "
                                     f"check the connection, or {_how_to_pass_a_path(url)}") from exc
        if digest.hexdigest() != expected_sha256:
            raise AvatarCamError(f"the face model downloaded from {url} has sha256 {digest.hexdigest()}, "
                                 f"expected {expected_sha256}; it was discarded. Try again later, or "
                                 f"{_how_to_pass_a_path(url)}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# One measured face

@dataclass
class Face:
    """One face as MediaPipe measures it, in the pixel units of the image it was found in.

    points: (478, 3) float32; x, y in pixels, z in pixels too (MediaPipe scales z like x, by the
        image width; smaller z is nearer the camera).
    blendshapes: the 51 ARKit expression names with scores 0..1 (MediaPipe's '_neutral' dropped).
    matrix: (4, 4) float32 facial transformation matrix: canonical face model -> camera space,
        MediaPipe's OpenGL-style frame (x right, y up, z toward the viewer).
    """

    points: np.ndarray
    blendshapes: dict[str, float]
    matrix: np.ndarray

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the landmarks, in pixels."""
        x0, y0 = self.points[:, :2].min(axis=0)
        x1, y1 = self.points[:, :2].max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def size(self) -> float:
        """Face size in pixels: the longer side of the landmark box."""
        x0, y0, x1, y1 = self.bbox
        return max(x1 - x0, y1 - y0)

    def rotation(self) -> np.ndarray:
        """Head rotation as a 3x3 matrix in image axes (x right, y down, z away from the camera).

        The face's own axes in that frame: column 0 its right-hand side as seen in the image,
        column 1 its down, column 2 from the face into the head (the nose points along -column 2).
        """
        r = np.asarray(self.matrix, np.float64)[:3, :3]
        u, _, vt = np.linalg.svd(r)  # drop any scale MediaPipe folded in
        r = u @ vt
        flip = np.diag([1.0, -1.0, -1.0])  # OpenGL camera frame -> image frame, on both sides
        return flip @ r @ flip

    def pose(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) in radians, relative to the camera. This is the contract with the renderer:

        - yaw > 0: the face turns so the nose moves toward +x (image right);
        - pitch > 0: the nose moves toward +y (image down: looking down);
        - roll > 0: the face rotates clockwise on screen (from +x toward +y).

        The angles decompose `rotation()` exactly as avatarcam.latent.rotation composes them, so
        latent.rotation(*face.pose()) gives back the measured rotation. A mirrored image negates
        yaw and roll and keeps pitch. Being camera-relative, a face that looks into the lens from
        off the image centre shows a little yaw or pitch (perspective).
        """
        return latent.angles(self.rotation())


# ---------------------------------------------------------------------------------------------
# The measurer

@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[list[str]]:
    """Hide the C++ log lines MediaPipe prints while it builds its graph (absl ignores GLOG_* env).

    fd 2 goes to a temp file for the duration; what was caught is handed back so a failure can
    still show it.
    """
    caught: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to hide
        yield caught
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield caught
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            caught.append(sink.read().decode("utf-8", "replace"))


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    return np.ascontiguousarray(image)


# Landmarkers still open when Python exits. MediaPipe's own finaliser runs too late then (its
# worker thread is gone: a TypeError or RuntimeError on stderr), so they are closed from a hook
# that runs while threads still work. Weak references: a landmarker dropped earlier closes itself.
_OPEN_AT_EXIT: weakref.WeakSet = weakref.WeakSet()
_exit_hook_once = threading.Lock()  # acquired (never released) by the first registration


def _close_remaining() -> None:
    for landmarker in list(_OPEN_AT_EXIT):
        with contextlib.suppress(Exception):
            landmarker.close()


def _close_at_exit(landmarker: object) -> None:
    if _exit_hook_once.acquire(blocking=False):
        # threading's exit hooks run before concurrent.futures stops MediaPipe's dispatcher thread
        # (plain atexit hooks run after it); fall back to atexit where that hook is missing.
        register = getattr(threading, "_register_atexit", atexit.register)
        try:
            register(_close_remaining)
        except RuntimeError:  # interpreter already shutting down
            pass
    _OPEN_AT_EXIT.add(landmarker)


class FaceMeasurer:
    """Finds faces and measures landmarks, blendshapes and head transform with MediaPipe.

    Use as a context manager or call close(); one left open is closed while Python exits.
    """

    def __init__(self, model_path: Path | str, max_faces: int = 4, video: bool = False,
                 min_confidence: float = 0.5) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        model_path = Path(model_path)
        if not model_path.is_file():
            raise AvatarCamError(f"face model {model_path} does not exist")
        mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=mode,
            num_faces=max_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        with _quiet_native_stderr() as caught:
            try:
                landmarker = vision.FaceLandmarker.create_from_options(options)
            except Exception as exc:
                failure = exc
            else:
                failure = None
        if failure is not None:
            detail = "".join(caught).strip()
            raise AvatarCamError(f"MediaPipe could not load the face model {model_path}: {failure}"
                                 + (f"\n{detail}" if detail else "")
                                 + f"\nIs it a {FACE_MODEL_FILE} bundle?") from failure
        self._landmarker = landmarker
        _close_at_exit(landmarker)
        self.video = video
        self._last_timestamp = -1

    def detect(self, image_rgb: np.ndarray, timestamp_ms: int | None = None) -> list[Face]:
        """Faces in an RGB uint8 image, largest first.

        In video mode pass the frame's timestamp in ms, strictly increasing: MediaPipe then tracks
        the face from frame to frame instead of searching anew.
        """
        import mediapipe as mp

        if self._landmarker is None:
            raise RuntimeError("FaceMeasurer is closed")
        image = _as_rgb(image_rgb)
        height, width = image.shape[:2]
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=image)
        try:
            if self.video:
                if timestamp_ms is None or timestamp_ms <= self._last_timestamp:
                    raise ValueError(f"video mode needs increasing timestamps; got {timestamp_ms} "
                                     f"after {self._last_timestamp}")
                self._last_timestamp = int(timestamp_ms)
                result = self._landmarker.detect_for_video(mp_image, int(timestamp_ms))
            else:
                result = self._landmarker.detect(mp_image)
        finally:
            del mp_image  # free the native image now, not in a finaliser at exit
        faces = [_to_face(result, i, width, height) for i in range(len(result.face_landmarks))]
        return sorted(faces, key=lambda f: f.size, reverse=True)

    def close(self) -> None:
        if self._landmarker is not None:
            _OPEN_AT_EXIT.discard(self._landmarker)
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> FaceMeasurer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _to_face(result: object, i: int, width: int, height: int) -> Face:
    landmarks = result.face_landmarks[i]
    points = np.array([(p.x * width, p.y * height, p.z * width) for p in landmarks], np.float32)
    blendshapes = {c.category_name: float(c.score) for c in result.face_blendshapes[i]
                   if c.category_name != "_neutral"} if result.face_blendshapes else {}
    if result.facial_transformation_matrixes:
        matrix = np.asarray(result.facial_transformation_matrixes[i], np.float32).reshape(4, 4)
    else:
        matrix = np.eye(4, dtype=np.float32)
    return Face(points=points, blendshapes=blendshapes, matrix=matrix)
