"""`avatarcam verify FILE`: is this video or picture marked by AvatarCam, and with whose consent?

Two marks are read, the standard one first. The file's C2PA content credentials (a signed manifest
inside the file, or beside it as NAME.c2pa for MKV and WebM: see ``credentials``) say who made it
and how, and break at the first changed byte; any re-encode (an upload, a call, a screen
recording) drops them. The invisible watermark survives all that but says less. Both are
reported: a file with no credentials whose watermark is found was made with AvatarCam and had its
credentials removed.

A video is read with PyAV (anything FFmpeg decodes: MP4, WebM, MKV, MOV, ...) one frame at a time,
only its luma, and averaged over windows of :data:`WINDOW_S` seconds: the watermark is the same in
every frame, so averaging strengthens it, and a 5-second clip is enough. Each window is searched
(``watermark.detect``); the first window where the watermark is found ends the reading, so a long
recording that carries it is answered quickly. A picture (PNG, JPEG, WebP, ...) is one window.

Several windows are several chances for a false alarm, so the allowance is spent as a series: window
k may use 6/(pi^2 k^2) of it, which sums to at most the whole. However long the file, the
probability of reporting a watermark in a file that has none stays below
``watermark.FALSE_ALARM_CLAIM`` (8e-7).

A payload names an installation and a consent record by 24-bit digests. The caller hands in the
consent records it knows (`profiles.stored_records`: every profile on this machine, bundled ones
included) and this installation's public key; the record whose digest matches has its signature
and portrait checked before it is shown. Verify reads no settings and no profiles of its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from avatarcam.errors import AvatarCamError

from . import watermark as wm
from .consent import StoredRecord, verify_record
from .credentials import ManifestReport, read_credentials

WINDOW_S = 10.0
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass
class RecordMatch:
    """A consent record on this machine whose digest matches the payload's record bits."""

    profile: str
    bundled: bool
    record_id: str
    subject: str
    relation: str
    created: str
    enrolled_by: int  # installation code of the key that signed the record
    valid: bool  # signature and portrait check out
    problem: str = ""


@dataclass
class Verdict:
    path: Path
    detection: wm.Detection  # the window where it was found, or the best-scoring one
    kind: str  # "video" or "image"
    frames: int = 0
    seconds: float = 0.0
    windows: int = 0
    this_installation: int | None = None  # this machine's installation code
    matches: list[RecordMatch] = field(default_factory=list)
    credentials: ManifestReport = field(default_factory=lambda: ManifestReport("absent"))

    @property
    def found(self) -> bool:
        """Made with AvatarCam: the watermark is found, or content credentials that hold say so (a
        broken manifest proves nothing: anyone can copy one into any file)."""
        return self.detection.found or (self.credentials.holds and self.credentials.by_avatarcam)

    def to_dict(self) -> dict:
        d = self.detection
        return {
            "file": str(self.path), "made_with_avatarcam": self.found, "summary": headline(self),
            "content_credentials": {**asdict(self.credentials), "by_avatarcam": self.credentials.by_avatarcam},
            "found": d.found, "kind": self.kind,
            "payload": None if d.payload is None else {"installation": f"{d.payload.installation:06x}",
                                                       "record": f"{d.payload.record:06x}"},
            "false_alarm_probability": d.false_alarm if d.found else None,
            "pilot_z": round(d.z, 3), "pilot_p": d.p_pilot, "mirrored": d.flipped, "scale": round(d.scale, 4),
            "symbol_errors": d.symbol_errors, "frames": self.frames, "seconds": round(self.seconds, 3),
            "windows": self.windows,
            "this_installation": None if self.this_installation is None else f"{self.this_installation:06x}",
            "consent_records": [m.__dict__ for m in self.matches],
        }


def window_share(k: int) -> float:
    """False-alarm allowance of the k-th window analysed (k = 1, 2, ...): sums to FALSE_ALARM_SHARE."""
    return wm.FALSE_ALARM_SHARE * 6.0 / (math.pi ** 2 * k * k)


def _read_image(path: Path) -> np.ndarray | None:
    data = np.fromfile(str(path), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _video_windows(path: Path, window_s: float, on_frame: Callable[[], None] | None,
                   on_total: Callable[[int | None], None] | None):
    """Yield (mean luma, frames, seconds) per window of the first video stream."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise AvatarCamError(f"cannot read {path}: {exc}") from None
    with container:
        if not container.streams.video:
            raise AvatarCamError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if on_total is not None:
            on_total(stream.frames or None)
        acc, count, start, last = None, 0, None, 0.0
        try:
            for frame in container.decode(stream):
                y = frame.to_ndarray(format="gray").astype(np.float32)
                t = float(frame.time) if frame.time is not None else (start or 0.0) + count / 30.0
                if acc is not None and (y.shape != acc.shape or t - start >= window_s):
                    yield acc / count, count, last - start
                    acc = None
                if acc is None:
                    acc, count, start = y, 0, t
                else:
                    acc += y
                count += 1
                last = t + (1.0 / float(stream.average_rate) if stream.average_rate else 1 / 30)
                if on_frame is not None:
                    on_frame()
        except av.FFmpegError as exc:
            if acc is None:
                raise AvatarCamError(f"cannot decode {path}: {exc}") from None
            # a damaged tail: judge what was read
        if acc is not None:
            yield acc / count, count, last - start


def verify_file(path: str | Path, *, records: Iterable[StoredRecord] = (), this_key: str | None = None,
                window_s: float = WINDOW_S, on_frame: Callable[[], None] | None = None,
                on_total: Callable[[int | None], None] | None = None, stop_when_found: bool = True) -> Verdict:
    """Look for the watermark in a video or picture file and, among `records`, the consent record it
    names; `this_key` is this installation's public key (hex), None where it has none."""
    path = Path(path)
    if not path.exists():
        raise AvatarCamError(f"{path} does not exist")
    if path.is_dir():
        raise AvatarCamError(f"{path} is a directory; give a video or picture file")
    credentials = read_credentials(path)  # first: it is quick, and the file is read once more anyway
    verdict: Verdict | None = None
    image = _read_image(path) if path.suffix.lower() in IMAGE_SUFFIXES else None
    if image is None:
        try:
            best, frames, seconds, k = None, 0, 0.0, 0
            for k, (y, n, span) in enumerate(_video_windows(path, window_s, on_frame, on_total), 1):
                frames, seconds = frames + n, seconds + span
                d = wm.detect(y, window_share(k))
                if best is None or (not best.found and (d.found or d.z > best.z)):
                    best = d
                if best.found and stop_when_found:
                    break
            if best is not None:
                verdict = Verdict(path, best, "video", frames, seconds, k)
        except AvatarCamError:
            image = _read_image(path)  # a picture with an unusual suffix?
            if image is None:
                raise
    if image is not None:
        verdict = Verdict(path, wm.detect(wm.luma(image), window_share(1)), "image", 1, 0.0, 1)
    if verdict is None:
        raise AvatarCamError(f"{path} holds no video frames")
    verdict.credentials = credentials
    verdict.this_installation = None if this_key is None else wm.installation_code(this_key)
    if verdict.detection.payload is not None:
        verdict.matches = matching_records(verdict.detection.payload, records)
    return verdict


def matching_records(payload: wm.Payload, records: Iterable[StoredRecord]) -> list[RecordMatch]:
    """The records whose digest is the payload's, each with its signature and portrait checked."""
    matches = []
    for stored in records:
        record = stored.record
        if wm.record_code(record.record_id) != payload.record:
            continue
        valid, problem = True, ""
        try:
            verify_record(record, stored.portrait.read_bytes())
        except Exception as exc:  # a broken signature, a changed or missing portrait
            valid, problem = False, str(exc)
        matches.append(RecordMatch(stored.profile, stored.bundled, record.record_id, record.subject,
                                   record.relation, record.created, wm.installation_code(record.public_key),
                                   valid, problem))
    return matches


def headline(verdict: Verdict) -> str:
    """One line: what the credentials and the watermark say together."""
    c, mark = verdict.credentials, verdict.detection.found
    watermark = "watermark found" if mark else "no AvatarCam watermark found"
    if c.state == "absent":
        return ("credentials removed, watermark found: made with AvatarCam" if mark
                else "no content credentials, no AvatarCam watermark found")
    if c.state == "invalid":
        return (f"content credentials INVALID (the file changed after it was signed, or the manifest is broken); "
                f"{watermark}" + (": made with AvatarCam" if mark else ""))
    who = "made with AvatarCam" if c.by_avatarcam else f"made with {c.generator or 'an unnamed tool'}"
    trust = "valid, untrusted signer" if c.state == "untrusted" else "valid"
    return f"content credentials {trust}: {who}; {watermark}"


def _credential_lines(verdict: Verdict) -> list[str]:
    c = verdict.credentials
    if c.state == "absent":
        beside = "" if verdict.path.suffix.lower() in (".mp4", ".mov", ".png") else " nor beside it (NAME.c2pa)"
        return [f"  credentials   none in the file{beside}: a re-encode, an upload, a call or a screen "
                f"recording drops them"]
    where = "in the file" if c.where == "embedded" else f"in the sidecar {c.where}"
    if c.state == "invalid":
        lines = [f"  credentials   INVALID, {where}:"] + [f"                {p}" for p in c.problems]
    elif c.state == "untrusted":
        lines = [f"  credentials   valid but from an untrusted signer, {where}: signature and hashes hold; "
                 f"the signer {c.signer} is on no trust list (AvatarCam's own certificate is self-made)"]
    else:
        lines = [f"  credentials   valid, {where}: signed by {c.signer}"]
    # what a broken manifest claims is shown, but as claims: its signature no longer vouches for them
    says = "  declares      " if c.holds else "  claims        "
    if c.generator:
        made = "by a trained model (trainedAlgorithmicMedia)" if c.generated else f"as {c.source_type or 'not said'}"
        lines.append(f"{says}made with {c.generator}, {made}")
    for record in c.consent_records:
        lines.append(f"{says}consent record {record}")
    payload = verdict.detection.payload
    for binding in c.soft_bindings:
        same = ("" if payload is None else
                ", as the watermark found" if binding == f"{payload.installation:06x}{payload.record:06x}"
                else ", NOT the watermark found")
        lines.append(f"{says}watermark payload {binding[:6]}/{binding[6:]}{same}")
    return lines


def describe(verdict: Verdict) -> str:
    """The verdict for people, several lines."""
    d = verdict.detection
    span = (f"{verdict.frames} frames ({verdict.seconds:.1f} s) in {verdict.windows} window"
            f"{'s' if verdict.windows != 1 else ''}" if verdict.kind == "video" else "1 picture")
    if not d.found:
        return "\n".join([
            f"{verdict.path}: {headline(verdict)}",
            *_credential_lines(verdict),
            f"  watermark     not found; analysed {span}; best pilot z = {d.z:.1f} (p = {d.p_pilot:.2g})",
            "  note          absence is not proof: a very short clip, a small part of a frame or heavy",
            "                processing can hide a watermark",
        ])
    lines = [f"{verdict.path}: {headline(verdict)}", *_credential_lines(verdict), "  watermark     found"]
    if d.payload is None:
        lines.append("  payload       unreadable (the pattern is there, its bits did not decode)")
    else:
        lines.append(f"  payload       {d.payload}")
        here = verdict.this_installation
        if d.payload == wm.UNATTRIBUTED:
            lines.append("  made by       an AvatarCam chain that named no consent record")
        elif here is not None and here == d.payload.installation:
            lines.append(f"  made on       this installation ({here:06x})")
        else:
            this = f" (this one is {here:06x})" if here is not None else ""
            lines.append("  made on       another installation" + this)
        if not verdict.matches and d.payload != wm.UNATTRIBUTED:
            lines.append("  consent       the record is not on this machine "
                         "(it lives with the profile that made the video)")
        for m in verdict.matches:
            state = "signature and portrait valid" if m.valid else f"INVALID: {m.problem}"
            where = "bundled profile" if m.bundled else "profile"
            lines.append(f"  consent       {where} {m.profile!r}: {m.subject} ({m.relation}), {m.created}, "
                         f"record {m.record_id}, {state}")
    lines.append(f"  confidence    false-alarm probability <= {d.false_alarm:.1g} (pilot z = {d.z:.1f}"
                 + (", CRC-16 valid" if d.payload is not None else "") + ")")
    lines.append(f"  geometry      {'mirrored' if d.flipped else 'not mirrored'}, scale {d.scale:.2f} "
                 f"(1.00: as rendered at this height, uncropped)")
    lines.append(f"  analysed      {span}")
    return "\n".join(lines)


def to_json(verdict: Verdict) -> str:
    return json.dumps(verdict.to_dict(), indent=2)
