"""Enrollment's calibration of a rig's jaw: how much a small opening must be lifted to read as open.

The rig drops every jaw by the same share of the face (rig._expression_bases), but the Face
Landmarker reads that drop very differently from face to face: on a wide, toothy smile it reads
the first part of the drop as raised lips, so quiet syllables never show. A rig whose jaw reads
less open than it is given at a quiet syllable's opening (JAW_PROBE) lifts its small openings
(`Rig.jaw_gain`, applied by `rig.jaw_lift`) until it reads about as given; the widest openings
stay as on any face (docs/decisions.md, "The jaw's gain").
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

JAW_PROBE = 0.3  # the jawOpen rendered and read: a quiet syllable's, which a dead zone would hide
# Bounds on the gain: it only lifts openings (a smaller one widens those the landmarker reads as shut),
# and by no more than twice: past that the reading hardly grows (docs/decisions.md).
JAW_GAIN_RANGE = (1.0, 2.0)
JAW_ITERATIONS = 2  # the reading is not proportional to the drop: a second pass corrects the first


def jaw_gain(measurer: FaceMeasurer, image: np.ndarray, matte: np.ndarray, plate: np.ndarray,
             rig: Rig) -> float:
    """The rig's jaw gain (`Rig.jaw_gain`) that makes the landmarker read the portrait's jawOpen at
    JAW_PROBE as JAW_PROBE over what it reads at rest; 1 where it sees no face."""
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
