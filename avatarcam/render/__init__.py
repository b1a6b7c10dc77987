"""Portrait rendering: enrollment data -> rig -> framed scene -> frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cpu import CpuRenderer
from .rig import Rig, build_rig
from .scene import build_scene

RIG_FILE = "rig.npz"


def prepare_rig(profile) -> Rig:
    """The profile's rig, built by this version's code from the profile's measured face.

    Building takes milliseconds, so a renderer never runs on a rig left by older code; from the
    stored rig.npz it keeps the head pose measured at enrollment, which a face-centred camera
    sees and the landmarks alone do not give.
    """
    pose = profile.face.pose()
    stored = Path(profile.dir) / RIG_FILE if profile.dir is not None else None
    if stored is not None and stored.exists():
        with np.load(stored, allow_pickle=False) as data:
            pose = tuple(float(v) for v in data["rest"][:3])
    return build_rig(profile.face.points, pose, profile.face.blendshapes)


def open_renderer(profile, size: tuple[int, int]) -> CpuRenderer:
    """A CPU renderer of `profile` at output `size` (width, height)."""
    rig = prepare_rig(profile)
    return CpuRenderer(build_scene(profile.image, profile.matte, profile.plate, rig, size))
