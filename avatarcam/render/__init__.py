"""Portrait rendering: enrollment data -> rig -> framed scene -> frames."""

from __future__ import annotations

from pathlib import Path

from .cpu import CpuRenderer
from .rig import Rig, build_rig
from .scene import build_scene

RIG_FILE = "rig.npz"


def prepare_rig(profile) -> Rig:
    """The profile's rig: the stored one when present, else built from its measured face."""
    stored = Path(profile.dir) / RIG_FILE
    if stored.exists():
        return Rig.load(stored)
    return build_rig(profile.face.points, profile.face.pose(), profile.face.blendshapes)


def open_renderer(profile, size: tuple[int, int]) -> CpuRenderer:
    """A CPU renderer of `profile` at output `size` (width, height)."""
    rig = prepare_rig(profile)
    return CpuRenderer(build_scene(profile.image, profile.matte, profile.plate, rig, size))
