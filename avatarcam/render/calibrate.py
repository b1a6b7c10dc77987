"""Enrollment's calibrations of a rig, read back by the Face Landmarker from the portrait rendered
at 512x512: how far its head turns (`Rig.turn_gain`) and how much its small jaw openings are lifted
(`Rig.jaw_gain`).

A warp of a flat picture shows a turn by how the face's unseen depth is guessed: with one gain for
all, the landmarker read 0.82 of a commanded yaw on Grace Hopper, and on the Mona Lisa (turned 17
degrees already) 1.3 of a turn further away and 0.75 of one back toward the camera. And the rig
drops every jaw by the same share of the face, but the landmarker reads that drop very differently
from face to face: on a wide, toothy smile it reads the first part of the drop as raised lips, so
quiet syllables never show. A rig whose jaw reads less open than it is given at a quiet syllable's
opening (JAW_PROBE) lifts its small openings (`rig.jaw_lift`) until it reads about as given, and
every rig lifts them some; the widest openings stay as on any face (docs/decisions.md, "Each
portrait's jaw gain").
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from avatarcam import latent

from . import facemesh as fm
from .cpu import CpuRenderer
from .face import Face, FaceMeasurer
from .rig import Rig
from .scene import Scene, build_scene

log = logging.getLogger(__name__)

# Head yaws (degrees from the portrait's own, each way) rendered at enrollment to see how far a turn shows.
# Not 20: drawn at 2.1 times that and more (rig.TURN_GAIN), a flat picture's warp no longer reads in
# proportion (Grace Hopper: 17 of 20 seen at a gain of 1, 27 at 1.3), and the fit through it set gains
# at which the landmarker lost the face at 18 degrees.
TURN_PROBES_DEG = (5.0, 10.0, 15.0)
TURN_GAIN_RANGE = (0.5, 1.4)
TURN_ITERATIONS = 2

JAW_PROBE = 0.3  # the jawOpen rendered and read: a quiet syllable's, which a dead zone would hide
# Bounds on the gain. Every portrait's small openings are lifted at least 1.5 times: at the rig's own
# drop the motion model's quietest syllables (jawOpen 0.05-0.2) read as shut on half the shared
# portraits, some of which read JAW_PROBE as wide as it is. At most 3 times: the astronaut's smile,
# read as raised lips, still gained there (docs/decisions.md, "Each portrait's jaw gain").
JAW_GAIN_RANGE = (1.5, 3.0)
JAW_ITERATIONS = 2  # the reading is not proportional to the drop: a second pass corrects the first


def calibrate(measurer: FaceMeasurer, image: np.ndarray, matte: np.ndarray, plate: np.ndarray,
              rig: Rig) -> tuple[np.ndarray, float]:
    """(turn gains, jaw gain) for `rig`, from one scene of the portrait and one reading of it at rest
    (neither gain acts there); both stay 1 where the landmarker sees no face."""
    scene = build_scene(image, matte, plate, rig, (512, 512))
    still = _seen(measurer, CpuRenderer(scene), rig.rest)
    if still is None:
        log.warning("no face seen in the portrait as rendered; its head turns and jaw are not calibrated")
        return np.ones(2, np.float32), 1.0
    return turn_gain(measurer, scene, still), jaw_gain(measurer, scene, still)


def turn_gain(measurer: FaceMeasurer, scene: Scene, still: Face) -> np.ndarray:
    """The factors on the renderer's yaw gain (`rig.TURN_GAIN`), turning to image left and to
    image right, that make this portrait's head show the turn it is given: measured by rendering
    it turned (TURN_PROBES_DEG each way from `still`, the rest as read) and reading the frames,
    twice (a turn does not show in proportion to its size). A side stays at 1 where no probe
    shows a face."""
    rig = scene.rig
    yaw = latent.index("headYaw")
    gain = np.ones(2, np.float32)
    for _ in range(TURN_ITERATIONS):
        renderer = CpuRenderer(dataclasses.replace(scene, rig=dataclasses.replace(rig, turn_gain=gain.copy())))
        for side, sign in enumerate((-1.0, 1.0)):
            commanded, seen = [], []
            for angle in sign * np.radians(TURN_PROBES_DEG):
                frame = rig.rest.copy()
                frame[yaw] += angle
                turned = _seen(measurer, renderer, frame)
                if turned is not None:
                    commanded.append(angle)
                    seen.append(turned.pose()[0] - still.pose()[0])
            if commanded:  # the slope through the portrait's own pose
                slope = np.dot(commanded, seen) / np.dot(commanded, commanded)
                gain[side] = np.clip(gain[side] / max(slope, 1e-3), *TURN_GAIN_RANGE)
    return gain


def jaw_gain(measurer: FaceMeasurer, scene: Scene, still: Face) -> float:
    """The rig's jaw gain (`Rig.jaw_gain`) that makes the landmarker read the portrait's jawOpen at
    JAW_PROBE as JAW_PROBE over what it reads at rest (`still`)."""
    rig = scene.rig
    frame = rig.rest.copy()
    frame[latent.index("jawOpen")] = JAW_PROBE
    rest_jaw = still.blendshapes.get("jawOpen", 0.0)
    gain = 1.0
    for _ in range(JAW_ITERATIONS):
        renderer = CpuRenderer(dataclasses.replace(scene, rig=dataclasses.replace(rig, jaw_gain=gain)))
        seen = _seen(measurer, renderer, frame)
        if seen is None:
            break
        slope = (seen.blendshapes.get("jawOpen", 0.0) - rest_jaw) / JAW_PROBE
        gain = float(np.clip(gain / max(slope, 1e-3), *JAW_GAIN_RANGE))
    return gain


def _seen(measurer: FaceMeasurer, renderer: CpuRenderer, frame: np.ndarray) -> Face | None:
    """The face the landmarker reads on the rendered portrait whose nose is where the rig put it (a
    group photo's framing may show a neighbour too); None where that face is not seen."""
    nose = renderer.scene.points(frame)[fm.NOSE_TIP]
    faces = measurer.detect(renderer.render(frame))
    near = [f for f in faces if np.linalg.norm(f.points[fm.NOSE_TIP, :2] - nose) < 0.25 * f.size]
    return near[0] if near else None
