"""Profiles: an enrolled portrait and everything measured from it, one directory per name.

Layout of a profile directory (the user's live in Settings.profiles_dir; the bundled default in the
repository's top-level profiles/default, packed into the wheel as avatarcam/bundled_profiles/default):

    portrait.png   the portrait as enrolled (RGB, EXIF-rotated, at most 1024 px)
    face.npz       landmarks (points), transformation matrix, blendshape names and values
    matte.png      person matte, 8-bit
    plate.png      background with the person removed
    consent.json   the signed consent record
    profile.json   metadata: created, source file name, image size, AvatarCam version
    rig.npz ...    whatever a renderer caches beside them (profile.dir / 'rig.npz')

A user's profile holds their face, so its directory is 0700 and its files 0600 from creation.
Every function takes the caller's Settings: they are read once at the top (cli, daemon, tray), so
that one run never mixes two readings of them.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from avatarcam import __version__
from avatarcam.config import Settings
from avatarcam.errors import ProfileError
from avatarcam.provenance.consent import ConsentRecord, StoredRecord, private_dir, verify_record, write_private
from avatarcam.render.face import NUM_POINTS, Face


def _bundled_dir() -> Path:
    """The bundled profiles: inside the installed package, else the checkout's top-level profiles/
    (pyproject.toml packs that folder into the wheel as avatarcam/bundled_profiles)."""
    installed = Path(__file__).parent / "bundled_profiles"
    return installed if installed.is_dir() else Path(__file__).parent.parent / "profiles"


BUNDLED_DIR = _bundled_dir()
FILES = ("portrait.png", "face.npz", "matte.png", "plate.png", "consent.json", "profile.json")
FORMAT = 1
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class Profile:
    name: str
    image: np.ndarray  # HxWx3 RGB uint8
    face: Face
    matte: np.ndarray  # HxW float32 0..1
    plate: np.ndarray  # HxWx3 RGB uint8
    consent: ConsentRecord
    dir: Path | None = None  # where it was saved or loaded from
    meta: dict = field(default_factory=dict)  # profile.json

    @property
    def bundled(self) -> bool:
        """True for a profile shipped inside the package (read-only)."""
        return self.dir is not None and _is_within(self.dir, BUNDLED_DIR)


@dataclass(frozen=True)
class ProfileEntry:
    name: str
    dir: Path
    bundled: bool


def validate_name(name: str) -> str:
    """A profile name doubles as a directory name: letters, digits, '-' and '_' only."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProfileError(f"profile name {name!r} is not allowed: use 1-64 letters, digits, '-' or '_'")
    return name


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# Listing

def available_profiles(settings: Settings) -> list[ProfileEntry]:
    """The user's profiles, then bundled ones they have not shadowed with a profile of that name."""
    entries: dict[str, ProfileEntry] = {}
    for root, bundled in ((BUNDLED_DIR, True), (settings.profiles_dir, False)):
        if root.is_dir():
            for d in sorted(root.iterdir()):
                if d.is_dir() and _NAME.fullmatch(d.name) and (d / "profile.json").exists():
                    entries[d.name] = ProfileEntry(d.name, d, bundled)  # the user's one wins
    return sorted(entries.values(), key=lambda e: (e.bundled, e.name))


def list_profiles(settings: Settings) -> list[str]:
    """Names of the profiles load_profile can open (see available_profiles for which are bundled)."""
    return [e.name for e in available_profiles(settings)]


def stored_records(settings: Settings) -> list[StoredRecord]:
    """The consent record of every profile load_profile can open, for `verify` to name; a profile
    whose consent.json cannot be read is left out (verify reports only records it can check)."""
    records = []
    for entry in available_profiles(settings):
        try:
            record = ConsentRecord.from_json((entry.dir / "consent.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        records.append(StoredRecord(entry.name, entry.bundled, record, entry.dir / "portrait.png"))
    return records


def _describe_available(settings: Settings) -> str:
    entries = available_profiles(settings)
    if not entries:
        return "there are no profiles yet; create one with `avatarcam enroll PHOTO --name NAME`"
    names = ", ".join(e.name + (" (bundled)" if e.bundled else "") for e in entries)
    return f"available: {names}"


# ---------------------------------------------------------------------------------------------
# Saving

def _png(image: np.ndarray) -> bytes:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ProfileError("could not encode an image as PNG")
    return data.tobytes()


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def save_profile(profile: Profile, settings: Settings, overwrite: bool = False,
                 source: str | None = None, extras: dict[str, bytes] | None = None) -> Path:
    """Write `profile` to profiles_dir/<name> and return that directory.

    The files are written into a fresh private directory that is renamed into place, so a crash
    never leaves a half-written profile under the real name. An existing profile is replaced only
    with overwrite=True.
    """
    name = validate_name(profile.name)
    root = private_dir(private_dir(Path(settings.data_dir)) / "profiles")
    target = root / name
    if target.exists() and not overwrite:
        raise ProfileError(f"a profile named {name!r} already exists in {root}; choose another name or "
                           f"overwrite it (--overwrite)")
    verify_record(profile.consent, profile.image)  # never save consent that does not fit the portrait
    h, w = profile.image.shape[:2]
    meta = {
        "format": FORMAT,
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source if source is not None else profile.meta.get("source"),
        "image_size": [w, h],
        "avatarcam_version": __version__,
    }
    names = sorted(profile.face.blendshapes)
    contents = {
        "portrait.png": _png(profile.image),
        "face.npz": _npz(points=profile.face.points.astype(np.float32),
                         matrix=profile.face.matrix.astype(np.float32),
                         blendshape_names=np.array(names, dtype=str),
                         blendshape_values=np.array([profile.face.blendshapes[n] for n in names], np.float32)),
        "matte.png": _png(np.clip(np.round(profile.matte * 255.0), 0, 255).astype(np.uint8)),
        "plate.png": _png(profile.plate),
        "consent.json": profile.consent.to_json().encode(),
        "profile.json": (json.dumps(meta, indent=2) + "\n").encode(),
        **(extras or {}),  # what a renderer prepares ahead, e.g. rig.npz
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))  # mkdtemp makes it 0700
    try:
        for filename, data in contents.items():
            write_private(staging / filename, data, exclusive=True)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{name}-old-", dir=root))
            target.rename(retired / name)
            staging.rename(target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    profile.dir, profile.meta = target, meta
    return target


# ---------------------------------------------------------------------------------------------
# Loading

def _resolve(name_or_dir: str | Path, settings: Settings) -> tuple[str, Path]:
    """A string without a slash is a name (the user's profiles, then bundled); else a directory."""
    if isinstance(name_or_dir, str) and "/" not in name_or_dir and os.sep not in name_or_dir:
        name = validate_name(name_or_dir)
        for root in (settings.profiles_dir, BUNDLED_DIR):
            if (root / name).is_dir():
                return name, root / name
        raise ProfileError(f"there is no profile named {name!r}; {_describe_available(settings)}")
    path = Path(name_or_dir).expanduser()
    if not path.is_dir():
        raise ProfileError(f"profile directory {path} does not exist")
    return path.name, path


def load_profile(name_or_dir: str | Path, settings: Settings) -> Profile:
    """Open a profile by name (the user's first, then the bundled ones) or by directory.

    Every file is checked, and the consent record must be intact and match the portrait: a
    profile that fails is refused with the file at fault and how to fix it.
    """
    name, d = _resolve(name_or_dir, settings)
    fix = f"re-enroll it (`avatarcam enroll PHOTO --name {name} --overwrite`)"
    missing = [f for f in FILES if not (d / f).is_file()]
    if missing:
        raise ProfileError(f"profile {name!r} in {d} is incomplete: {', '.join(missing)} missing; {fix}")

    def read_image(filename: str, flags: int) -> np.ndarray:
        image = cv2.imread(str(d / filename), flags)
        if image is None:
            raise ProfileError(f"profile {name!r}: {d / filename} is not a readable image; {fix}")
        return image

    image = cv2.cvtColor(read_image("portrait.png", cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    matte = read_image("matte.png", cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    plate = cv2.cvtColor(read_image("plate.png", cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if matte.shape != image.shape[:2] or plate.shape != image.shape:
        raise ProfileError(f"profile {name!r}: matte.png or plate.png does not match the portrait's size; {fix}")
    try:
        with np.load(d / "face.npz", allow_pickle=False) as z:
            points, matrix = z["points"].astype(np.float32), z["matrix"].astype(np.float32)
            blendshapes = {str(k): float(v) for k, v in zip(z["blendshape_names"], z["blendshape_values"], strict=True)}
        if points.shape != (NUM_POINTS, 3) or matrix.shape != (4, 4):
            raise ValueError(f"points {points.shape}, matrix {matrix.shape}")
    except Exception as exc:
        raise ProfileError(f"profile {name!r}: {d / 'face.npz'} is corrupt ({exc}); {fix}") from None
    try:
        consent = ConsentRecord.from_json((d / "consent.json").read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ProfileError(f"profile {name!r}: {d / 'consent.json'} is not a consent record ({exc}); {fix}") from None
    try:
        meta = json.loads((d / "profile.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (ValueError, OSError) as exc:
        raise ProfileError(f"profile {name!r}: {d / 'profile.json'} is corrupt ({exc}); {fix}") from None
    try:
        verify_record(consent, image)
    except ProfileError as exc:
        raise ProfileError(f"profile {name!r} is refused: {exc}") from None
    return Profile(name=name, image=image, face=Face(points, blendshapes, matrix), matte=matte, plate=plate,
                   consent=consent, dir=d, meta=meta)


def describe(profile: Profile) -> str:
    """A few lines about a profile for `avatarcam profiles show`."""
    h, w = profile.image.shape[:2]
    yaw, pitch, roll = (float(np.degrees(a)) for a in profile.face.pose())
    consent = profile.consent
    lines = [
        f"profile   {profile.name}" + (" (bundled)" if profile.bundled else ""),
        f"folder    {profile.dir}",
        f"portrait  {w}x{h} from {profile.meta.get('source') or 'unknown'}, enrolled {profile.meta.get('created', '?')}",
        f"face      {profile.face.size:.0f} px, yaw {yaw:+.0f} pitch {pitch:+.0f} roll {roll:+.0f} deg",
        f"consent   {consent.subject} ({consent.relation}), {consent.created}, record {consent.record_id}",
    ]
    return "\n".join(lines)


def delete_profile(name: str, settings: Settings) -> Path:
    """Remove the user's profile `name` (bundled profiles cannot be deleted); returns its old dir."""
    validate_name(name)
    d = settings.profiles_dir / name
    if not d.is_dir():
        if (BUNDLED_DIR / name).is_dir():
            raise ProfileError(f"profile {name!r} is bundled with AvatarCam and cannot be deleted")
        raise ProfileError(f"there is no profile named {name!r}; {_describe_available(settings)}")
    shutil.rmtree(d)
    return d
