"""The consent record: who agreed to a portrait being animated, signed by this installation.

Enrollment shows a fixed statement for the chosen relation ('self': I am this person;
'permission': I have their permission), and the record keeps that exact text next to the subject's
name, a digest of the portrait, the time and the AvatarCam version. An Ed25519 key made on first
use in the user's data dir signs it; the public key travels inside the record so anyone holding the
profile can check that neither the record nor the portrait changed since. The invisible watermark
(a later part of provenance) carries the record id out into every frame.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from avatarcam import __version__
from avatarcam.config import Settings
from avatarcam.errors import ProfileError

STATEMENTS = {
    "self": ("I am the person shown in this portrait. I agree to AvatarCam animating it, and I "
             "understand that every video it makes is labelled as generated and watermarked with "
             "this consent record."),
    "permission": ("I am not the person shown in this portrait, and that person has given me permission "
                   "to animate it with AvatarCam. I understand that every video it makes is labelled as "
                   "generated and watermarked with this consent record."),
    "public-domain": ("This portrait is a public-domain work (such as a historical photograph or a painting). "
                      "I will not use its animation to deceive anyone or to impersonate the person shown, and I "
                      "understand that every video it makes is labelled as generated and watermarked with this "
                      "consent record."),
}
RELATIONS = tuple(STATEMENTS)
KEY_FILE = "installation_ed25519.pem"


# ---------------------------------------------------------------------------------------------
# Private files: what a user enrolls (their face, their key) is readable by them alone.

def private_dir(path: Path) -> Path:
    """Create `path` (mode 0700; missing parents get the default mode) and return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: bytes, exclusive: bool = False) -> None:
    """Write a file created with mode 0600 from the start, never world-readable for a moment."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------
# The installation key

def installation_key(settings: Settings) -> Ed25519PrivateKey:
    """This installation's signing key, created (mode 0600) in the data dir on first use."""
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        private_dir(path.parent)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            write_private(path, pem, exclusive=True)
            return key
        except FileExistsError:  # another process made it first: use theirs
            pass
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ProfileError(f"the installation key {path} cannot be read ({exc}); move it aside to make "
                           f"a new one (profiles signed with it stay verifiable)") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ProfileError(f"the installation key {path} is not an Ed25519 key; move it aside to make a new one")
    return key


def existing_public_key(settings: Settings) -> str | None:
    """This installation's public key (hex), or None where it has no readable key: unlike
    installation_key it never creates one, so that looking (`avatarcam verify`) changes nothing."""
    try:
        key = serialization.load_pem_private_key((Path(settings.data_dir) / KEY_FILE).read_bytes(), password=None)
    except (ValueError, TypeError, OSError):
        return None
    return public_hex(key.public_key()) if isinstance(key, Ed25519PrivateKey) else None


def public_hex(key: Ed25519PublicKey) -> str:
    """A public key as the records and the watermark's payload name it: its raw bytes in hex."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


# ---------------------------------------------------------------------------------------------
# The record

def portrait_digest(image_rgb: np.ndarray) -> str:
    """sha256 of the portrait's pixels (size and RGB bytes), not of a file.

    Hashing pixels lets a PNG be re-encoded losslessly without breaking the record, while any
    change to what the renderer would animate does break it.
    """
    image = np.ascontiguousarray(image_rgb, dtype=np.uint8)
    header = f"avatarcam-portrait {image.shape[1]}x{image.shape[0]}x{image.shape[2] if image.ndim == 3 else 1}\n"
    return hashlib.sha256(header.encode() + image.tobytes()).hexdigest()


@dataclass(frozen=True)
class ConsentRecord:
    record_id: str
    subject: str
    relation: str  # 'self' or 'permission'
    statement: str  # the exact text shown and accepted
    portrait_sha256: str  # portrait_digest of the enrolled portrait
    created: str  # ISO 8601, UTC
    avatarcam_version: str
    public_key: str  # hex of the raw Ed25519 public key that signed it
    signature: str = ""  # hex Ed25519 signature over payload()

    def payload(self) -> bytes:
        """The signed bytes: every field but the signature, as canonical JSON."""
        body = {k: v for k, v in asdict(self).items() if k != "signature"}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ConsentRecord:
        """Parse a record; ValueError when it is not one."""
        data = json.loads(text)
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != names or not all(isinstance(v, str) for v in data.values()):
            raise ValueError(f"a consent record needs exactly the string fields {sorted(names)}")
        return cls(**data)


@dataclass(frozen=True)
class StoredRecord:
    """A consent record kept with a profile on this machine, and the portrait file it must match."""

    profile: str
    bundled: bool
    record: ConsentRecord
    portrait: Path


def create_record(subject: str, relation: str, portrait_sha256: str, settings: Settings) -> ConsentRecord:
    """A signed record that `subject` (relation 'self' or 'permission') consented to this portrait."""
    if relation not in STATEMENTS:
        raise ProfileError(f"consent must be one of {', '.join(RELATIONS)} (got {relation!r}): 'self' if "
                           f"you are the person in the photo, 'permission' if they allowed you")
    subject = subject.strip()
    if not subject:
        raise ProfileError("the consent record needs the name of the person in the portrait")
    key = installation_key(settings)
    unsigned = ConsentRecord(
        record_id=uuid.uuid4().hex,
        subject=subject,
        relation=relation,
        statement=STATEMENTS[relation],
        portrait_sha256=portrait_sha256,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        avatarcam_version=__version__,
        public_key=public_hex(key.public_key()),
    )
    signature = key.sign(unsigned.payload()).hex()
    return ConsentRecord(**{**asdict(unsigned), "signature": signature})


def verify_record(record: ConsentRecord, image: np.ndarray | bytes | str) -> None:
    """Raise ProfileError unless the record is intact and belongs to this portrait.

    `image` is the portrait's pixels (RGB uint8 array), an encoded lossless image file's bytes,
    or the hex digest itself.
    """
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(record.public_key))
        public.verify(bytes.fromhex(record.signature), record.payload())
    except (ValueError, InvalidSignature):
        raise ProfileError(f"consent record {record.record_id} has been altered or its signature is broken; "
                           f"re-enroll the portrait to record consent again") from None
    # The statement is not compared with today's STATEMENTS: the signature already pins the text
    # that was accepted, and rewording it in a later version must not void older records.
    if record.relation not in RELATIONS:
        raise ProfileError(f"consent record {record.record_id} has an unknown relation {record.relation!r}; "
                           f"re-enroll the portrait to record consent again")
    if isinstance(image, str):
        digest = image
    elif isinstance(image, bytes):
        digest = portrait_digest(_decode_rgb(image))
    else:
        digest = portrait_digest(image)
    if digest != record.portrait_sha256:
        raise ProfileError(f"the portrait does not match consent record {record.record_id} (it was changed "
                           f"after enrollment); re-enroll the portrait to record consent for it")


def _decode_rgb(data: bytes) -> np.ndarray:
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ProfileError("the portrait image cannot be decoded; re-enroll it")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
