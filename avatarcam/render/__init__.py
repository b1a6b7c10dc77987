"""Portrait rendering: enrollment data -> rig -> framed scene -> frames."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import AvatarCamError
from .calibrate import JAW_GAIN_RANGE
from .cpu import CpuRenderer
from .rig import Rig, build_rig
from .scene import build_scene

RIG_FILE = "rig.npz"

log = logging.getLogger(__name__)


def prepare_rig(profile) -> Rig:
    """The profile's rig, built by this version's code from the profile's measured face.

    Building takes milliseconds, so a renderer never runs on a rig left by older code; from the
    stored rig.npz it keeps what was measured on the picture at enrollment, which the landmarks
    alone do not give: the head pose a face-centred camera sees, and how far the head seems to
    turn (`Rig.turn_gain`) and how far the jaw drops (`Rig.jaw_gain`); 1 in profiles enrolled before
    they were measured, and the jaw gain never under the least every rig has now (enrolled before
    it was raised).
    """
    pose, turn_gain, jaw_gain = profile.face.pose(), np.ones(2, np.float32), 1.0
    stored = Path(profile.dir) / RIG_FILE if profile.dir is not None else None
    if stored is not None and stored.exists():
        with np.load(stored, allow_pickle=False) as data:
            pose = tuple(float(v) for v in data["rest"][:3])
            turn_gain = data["turn_gain"] if "turn_gain" in data else turn_gain
            jaw_gain = float(data["jaw_gain"]) if "jaw_gain" in data else jaw_gain
    rig = build_rig(profile.face.points, pose, profile.face.blendshapes)
    rig.turn_gain, rig.jaw_gain = turn_gain, max(jaw_gain, JAW_GAIN_RANGE[0])
    return rig


def open_renderer(profile, size: tuple[int, int], device: str = "auto", framing: str = "head",
                  backdrop: str = "photo"):
    """A renderer of `profile` at output `size` (width, height), framed as `framing` says over
    `backdrop` (the settings of those names): see `renderer_for`."""
    rig = prepare_rig(profile)
    scene = build_scene(profile.image, profile.matte, profile.plate, rig, size, framing, backdrop)
    return renderer_for(scene, device)


def renderer_for(scene, device: str = "auto"):
    """The GPU renderer when CuPy finds a CUDA device ("auto", or "gpu" to insist), else the CPU
    renderer; one log line says which, and why not the GPU. The GPU renderer itself falls back to
    the CPU if the GPU fails mid-stream."""
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"renderer device must be auto, cpu or gpu, not {device!r}")
    if device != "cpu":
        from .gpu import GpuRenderer, gpu_unavailable

        why = gpu_unavailable()
        if why is None:
            log.info("renderer: GPU (CUDA kernels through CuPy)")
            return GpuRenderer(scene)
        if device == "gpu":
            raise AvatarCamError(f"the GPU renderer cannot run here: {why}")
        log.info("renderer: CPU (%s)", why)
    return CpuRenderer(scene)
