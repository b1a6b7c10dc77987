"""Motion tracks to files: Live Link Face CSV for Unreal, Blender and Unity importers, or plain JSON.

Live Link Face (Epic's iPhone app) records a take as CSV: `Timecode, BlendShapeCount`, the 52
ARKit blendshapes in Apple's order and capitalised (EyeBlinkLeft, ..., TongueOut), then head
and eye angles (HeadYaw, HeadPitch, HeadRoll, LeftEyeYaw, LeftEyePitch, LeftEyeRoll,
RightEyeYaw, RightEyePitch, RightEyeRoll). BlendShapeCount is 61, the values after the timecode.
The timecode is HH:MM:SS:FF.mmm at the track's frame rate, from 00:00:00:00.000. Angles are in
radians, in the latent's convention (+yaw toward the image's right, the subject's left; +pitch
down; +roll clockwise on screen); the eyes share the one gaze, with no roll.

Files are written under a temporary name in the same directory and renamed when complete: a
failure leaves nothing that looks like a finished track.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from avatarcam import latent
from avatarcam.arkit import shapes
from avatarcam.camera.sinks import check_output_dir, temp_file, umask_mode
from avatarcam.errors import OutputError

ANGLES = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
          "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
HEADER = ("Timecode", "BlendShapeCount") + shapes.PERFECT_SYNC + ANGLES
FORMATS = (".csv", ".json")


def timecode(frame: int, fps: int) -> str:
    """HH:MM:SS:FF.mmm of frame `frame` at `fps` (a whole frame: the sub-frame part is .000)."""
    seconds, ff = divmod(frame, fps)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.000"


def rows(track: np.ndarray, fps: int) -> list[list[str]]:
    """The CSV's data rows for a (frames, DIM) motion track."""
    track = np.asarray(track, np.float32)
    blend, head, gaze = shapes.blendshapes(track), shapes.head_angles(track), shapes.gaze_angles(track)
    eye = np.concatenate([gaze, np.zeros((len(track), 1), np.float32)], axis=1)  # yaw, pitch, roll 0
    values = np.concatenate([blend, head, eye, eye], axis=1)
    # each float32 exactly (as the shortest text of its double): it reads back as the same float32
    return [[timecode(i, fps), str(values.shape[1])] + [repr(v) for v in row.tolist()]
            for i, row in enumerate(values.astype(np.float32))]


def as_json(track: np.ndarray, fps: int) -> dict:
    """A plain per-frame document: each frame's time and every value under its name."""
    track = np.asarray(track, np.float32)
    blend, head, gaze = shapes.blendshapes(track), track[:, :len(latent.POSE)], shapes.gaze_angles(track)
    frames = [{"time": i / fps,
               "blendshapes": dict(zip(shapes.NAMES, (float(v) for v in blend[i]))),
               "head": dict(zip(("yaw", "pitch", "roll", "x", "y", "logScale"), (float(v) for v in head[i]))),
               "gaze": dict(zip(("yaw", "pitch"), (float(v) for v in gaze[i])))}
              for i in range(len(track))]
    return {"format": "avatarcam motion", "fps": fps, "frames": frames,
            "units": {"blendshapes": "ARKit, 0..1",
                      "head": "yaw, pitch, roll in radians (+yaw toward the image's right, +pitch down, "
                              "+roll clockwise on screen); x, y in face widths; logScale natural log of "
                              "the distance's scale (0 = as photographed)",
                      "gaze": "eye yaw and pitch in radians relative to the head, as the head's"}}


def check_path(path: Path) -> None:
    """OutputError, saying what to do, unless `path` names a format this module writes in a directory
    that exists (called before any motion is made)."""
    if path.suffix.lower() not in FORMATS:
        raise OutputError(f"cannot write {path}: name a Live Link Face CSV (.csv) or a JSON track (.json)")
    check_output_dir(path.parent if str(path.parent) else Path("."), path)


def write(path: Path, track: np.ndarray, fps: int) -> None:
    """Write `track` (frames, DIM) to `path` (.csv or .json), whole or not at all."""
    path = Path(path)
    check_path(path)
    directory = path.parent if str(path.parent) else Path(".")
    tmp = temp_file(directory, path.name, path)  # OutputError if the directory is not writable
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            if path.suffix.lower() == ".csv":
                out = csv.writer(f)
                out.writerow(HEADER)
                out.writerows(rows(track, fps))
            else:
                json.dump(as_json(track, fps), f)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path} ({exc.strerror or exc}); choose another path") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
