"""Enrollment: one portrait photo in, one profile out (face, matte, plate, consent).

Everything slow or fragile about a portrait happens here, once, so the live loop only loads
arrays. Each refusal says what was wrong with the photo and what would work instead.

It sits above render/ and profiles (it measures with the one and saves with the other), so that
render/ never imports profiles: imports flow downward.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

from avatarcam.config import Settings
from avatarcam.errors import FaceError, ImageError, ProfileError
from avatarcam.profiles import Profile, save_profile, validate_name
from avatarcam.provenance.consent import RELATIONS, create_record, portrait_digest
from avatarcam.render import RIG_FILE
from avatarcam.render.calibrate import calibrate
from avatarcam.render.face import Face, FaceMeasurer, resolve_face_model
from avatarcam.render.plate import background_plate
from avatarcam.render.rig import build_rig
from avatarcam.render.segment import person_matte

log = logging.getLogger(__name__)

MAX_SIDE = 1024  # larger photos add enrollment time and memory, not detail the renderer can use
# Smallest face (longer side of the landmark box) animated by default. Below it the mouth and eyes
# are a few pixels across and every output frame is an upscaled blur; min_face_px (--min-face)
# accepts smaller ones knowingly (a classic 512 px portrait has a face about 100 px tall).
MIN_FACE_PX = 128


def read_image(path: str | Path) -> np.ndarray:
    """Read a photo as RGB uint8: EXIF orientation applied, alpha flattened onto white,
    downscaled so the longest side is at most MAX_SIDE."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path).expanduser()
    if not path.exists():
        raise ImageError(f"{path} does not exist")
    if not path.is_file():
        raise ImageError(f"{path} is not a file; give the path of a portrait photo (JPEG or PNG)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                image = _flatten(im)
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image AvatarCam can read; use a JPEG or PNG photo") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path} is too many pixels to open safely; scale it down below 40 megapixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path} is damaged or truncated ({exc}); export the photo again") from None
    h, w = image.shape[:2]
    if max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        log.info("downscaling %dx%d to %dx%d", w, h, *size)
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def _flatten(im: "Image.Image") -> np.ndarray:  # noqa: F821 (PIL imported lazily)
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale: keep the top 8 bits
        array = np.asarray(im, dtype=np.uint32)
        im = Image.fromarray((array >> 8 if array.max() > 255 else array).clip(0, 255).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def choose_face(faces: list[Face], source: str, face_index: int | None = None,
                min_face_px: float | None = None) -> Face:
    """The face to enroll: the largest unless face_index picks another (0 = largest)."""
    if not faces:
        raise FaceError(f"no face found in {source}: use a photo where one face is clearly visible, "
                        f"frontal, well lit")
    if face_index is not None:
        if not 0 <= face_index < len(faces):
            raise FaceError(f"--face {face_index} is out of range: {source} has {len(faces)} face(s), "
                            f"numbered 0 (largest) to {len(faces) - 1}")
        face = faces[face_index]
    else:
        face = faces[0]
        if len(faces) > 1:
            log.warning("found %d faces in %s; using the largest (--face 0). Pass --face N "
                        "(0 to %d, largest first) to choose another.", len(faces), source, len(faces) - 1)
    min_face_px = MIN_FACE_PX if min_face_px is None else min_face_px
    if face.size < min_face_px:
        raise FaceError(f"the face in {source} is only {face.size:.0f} px across; at least {min_face_px:.0f} px "
                        f"is needed: use a larger photo or one taken closer to the face (or accept a soft result "
                        f"with --min-face {int(face.size)})")
    return face


def framed_pose(measurer: FaceMeasurer, image: np.ndarray, face: Face) -> tuple[float, float, float]:
    """The head pose as a camera centred on the face sees it, which is how the renderer frames it.

    The landmarker's pose is camera-relative: a face near the top of a photo reads as tilted
    by the perspective alone. Measuring a crop centred on the face removes that offset.
    """
    x0, y0, x1, y1 = face.bbox
    half = int(face.size * 1.2)
    cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
    pad = ((half, half), (half, half), (0, 0))
    crop = np.pad(image, pad, mode="edge")[cy:cy + 2 * half, cx:cx + 2 * half]
    faces = measurer.detect(np.ascontiguousarray(crop))
    return faces[0].pose() if faces else face.pose()


def enroll(photo_path: str | Path, name: str, consent: str, subject: str | None, settings: Settings,
           face_index: int | None = None, measurer: FaceMeasurer | None = None,
           overwrite: bool = False, min_face_px: float | None = None) -> Profile:
    """Turn a portrait photo into a saved profile named `name`.

    consent: 'self' (the user is the person shown) or 'permission' (they allowed it); subject is
    the name of the person shown (for 'self' it defaults to the profile name). face_index picks
    one of several faces (0 = largest). `measurer` lets a caller enrolling many photos load the
    face model once. min_face_px changes the smallest face accepted (None: MIN_FACE_PX).
    """
    validate_name(name)
    if consent not in RELATIONS:
        raise ProfileError(f"consent must be 'self' (you are the person in the photo), 'permission' "
                           f"(they allowed you to animate it) or 'public-domain', not {consent!r}")
    if subject is None or not subject.strip():
        if consent != "self":
            raise ProfileError(f"with consent {consent!r}, name the person in the photo (--subject NAME)")
        subject = name
    if (settings.profiles_dir / name).exists() and not overwrite:
        raise ProfileError(f"a profile named {name!r} already exists; choose another name or overwrite it "
                           f"(--overwrite)")
    photo_path = Path(photo_path)
    started = time.perf_counter()
    log.info("reading %s", photo_path)
    image = read_image(photo_path)

    log.info("finding the face")
    with contextlib.ExitStack() as stack:
        if measurer is None:
            measurer = stack.enter_context(FaceMeasurer(resolve_face_model(settings)))
        face = choose_face(measurer.detect(image), str(photo_path), face_index, min_face_px)
        pose = framed_pose(measurer, image, face)
        log.info("face found: %.0f px, pose (yaw, pitch, roll) %s deg", face.size,
                 ", ".join(f"{np.degrees(a):+.0f}" for a in face.pose()))

        log.info("separating the person from the background")
        matte = person_matte(image, face)
        log.info("filling the background behind them")
        plate = background_plate(image, matte)

        log.info("preparing the rig")
        rig = build_rig(face.points, pose, face.blendshapes)
        rig.turn_gain, rig.jaw_gain = calibrate(measurer, image, matte, plate, rig)
        log.info("head turn gains (to the left, to the right) %.2f, %.2f; jaw gain %.2f", *rig.turn_gain, rig.jaw_gain)

    record = create_record(subject, consent, portrait_digest(image), settings)
    profile = Profile(name=name, image=image, face=face, matte=matte, plate=plate, consent=record)
    directory = save_profile(profile, settings, overwrite=overwrite, source=photo_path.name,
                             extras={RIG_FILE: rig.to_bytes()})
    log.info("profile %r saved in %s (%.1f s)", name, directory, time.perf_counter() - started)
    return profile
