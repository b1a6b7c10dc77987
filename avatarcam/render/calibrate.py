"""Enrollment's calibration of a rig's jaw: how far it must drop for the face to read as open.

The rig drops every jaw by the same share of the face (rig._expression_bases), but the Face
Landmarker reads that drop very differently from face to face: the smiling astronaut's jaw at
jawOpen 0.5 read 0.12 (her wide, toothy smile read as raised lips), Grace Hopper's 0.33, most
portraits' 0.55-0.74. A lip sync that barely opens the mouth to the eye looks dead, so a rig whose
jaw reads less open than it is given drops it further, until it reads about as given, as a real
mouth's would.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from avatarcam import latent

from . import facemesh as fm
from .cpu import CpuRenderer
from .face import FaceMeasurer
from .rig import Rig
from .scene import build_scene

log = logging.getLogger(__name__)

JAW_PROBE = 0.5  # the jawOpen rendered and read: a speaking mouth's, where the reading is nearly linear
# Bounds on the gain: it only opens a jaw further, since a smaller drop widens the openings the
# landmarker reads as shut (the toothy smile at 0.72 followed the voice worse), and past 2 the
# reading no longer grows in step (the astronaut at 3 followed it worse than at 2).
JAW_GAIN_RANGE = (1.0, 2.0)
JAW_ITERATIONS = 2  # the reading is not proportional to the drop: a second pass corrects the first


def jaw_gain(measurer: FaceMeasurer, image: np.ndarray, matte: np.ndarray, plate: np.ndarray,
             rig: Rig) -> float:
    """The factor on the rig's jaw drop (`Rig.jaw_gain`) that makes the landmarker read the portrait's
    jawOpen at JAW_PROBE as JAW_PROBE over what it reads at rest; 1 where it sees no face."""
    scene = build_scene(image, matte, plate, rig, (512, 512))
    still = _jaw_seen(measurer, CpuRenderer(scene), rig.rest)  # no gain acts on a closed jaw
    if still is None:
        log.warning("no face seen in the portrait as rendered; its jaw is not calibrated")
        return 1.0
    frame = rig.rest.copy()
    frame[latent.index("jawOpen")] = JAW_PROBE
    gain = 1.0
    for _ in range(JAW_ITERATIONS):
        renderer = CpuRenderer(dataclasses.replace(scene, rig=dataclasses.replace(rig, jaw_gain=gain)))
        seen = _jaw_seen(measurer, renderer, frame)
        if seen is None:
            break
        slope = (seen - still) / JAW_PROBE
        gain = float(np.clip(gain / max(slope, 1e-3), *JAW_GAIN_RANGE))
    return gain


def _jaw_seen(measurer: FaceMeasurer, renderer: CpuRenderer, frame: np.ndarray) -> float | None:
    """The jawOpen the landmarker reads on the rendered portrait, on the face whose nose is where the
    rig put it; None where that face is not seen."""
    nose = renderer.scene.points(frame)[fm.NOSE_TIP]
    faces = measurer.detect(renderer.render(frame))
    near = [f for f in faces if np.linalg.norm(f.points[fm.NOSE_TIP, :2] - nose) < 0.25 * f.size]
    return near[0].blendshapes.get("jawOpen", 0.0) if near else None
