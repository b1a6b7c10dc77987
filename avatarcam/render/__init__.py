"""Portrait rendering: enrollment data -> rig -> framed scene -> frames."""

from __future__ import annotations

from pathlib import Path

from .cpu import CpuRenderer
from .rig import RIG_VERSION, Rig, build_rig
from .scene import build_scene

RIG_FILE = "rig.npz"


def prepare_rig(profile) -> Rig:
    """The profile's rig: the stored one when current, else rebuilt from its measured face.

    A rebuild keeps the head pose measured at enrollment (stored with the rig), which a
    face-centred camera sees and the landmarks alone do not give.
    """
    pose = profile.face.pose()
    stored = Path(profile.dir) / RIG_FILE if profile.dir is not None else None
    if stored is not None and stored.exists():
        rig = Rig.load(stored)
        if rig.version == RIG_VERSION:
            return rig
        pose = tuple(float(rig.rest[i]) for i in range(3))
    return build_rig(profile.face.points, pose, profile.face.blendshapes)


def open_renderer(profile, size: tuple[int, int]) -> CpuRenderer:
    """A CPU renderer of `profile` at output `size` (width, height)."""
    rig = prepare_rig(profile)
    return CpuRenderer(build_scene(profile.image, profile.matte, profile.plate, rig, size))
