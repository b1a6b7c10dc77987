"""tools/fit_expressions.py: the shipped lip corrections are what the tool makes, and do what it claims."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest

from avatarcam import latent
from avatarcam.render.rig import _expression_fit, build_rig, deform
from bench.judge import BlendshapeHead

pytest.importorskip("ai_edge_litert", reason="LiteRT (pip install ai-edge-litert) runs the blendshape head")

TOOL = Path(__file__).resolve().parents[1] / "tools" / "fit_expressions.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("fit_expressions", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def canonical(tool, face_model):
    with zipfile.ZipFile(face_model) as task:
        head = BlendshapeHead(task.read("face_blendshapes.tflite"))
        vertices, triangles = tool.canonical_mesh(task)
    points = tool.canonical_points(vertices, head)
    blendshapes = dict(zip(head.names[1:], map(float, head(points)[1:])))
    return head, head.names, points, blendshapes, tool.laplacian(triangles, 468)


def test_head_reproduces_mediapipe_on_a_real_face(canonical, face_model, portraits_dir):
    """The head alone (bench.judge.BlendshapeHead), fed the Face Landmarker's own landmarks, gives
    the Landmarker's blendshapes."""
    import cv2

    from avatarcam.render.face import FaceMeasurer

    head, names = canonical[0], canonical[1]
    image = cv2.cvtColor(cv2.imread(str(portraits_dir / "grace_hopper.jpg")), cv2.COLOR_BGR2RGB)
    with FaceMeasurer(face_model, max_faces=1) as measurer:
        face = measurer.detect(image)[0]
    read = head(face.points)
    for name, value in face.blendshapes.items():
        assert read[names.index(name)] == pytest.approx(value, abs=2e-3), name


def test_canonical_face_is_a_face_at_rest(canonical):
    head, names, points, blendshapes, lap = canonical
    assert points.shape == (478, 3)
    assert lap.shape == (468, 468) and lap.diagonal().min() >= 3  # every vertex in a closed mesh
    for name in ("jawOpen", "mouthPressLeft", "mouthRollUpper", "eyeLookDownLeft", "eyeLookUpRight"):
        assert blendshapes[name] < 0.2, (name, blendshapes[name])


def test_refit_reproduces_the_shipped_correction(tool, canonical):
    """Lip press (right) refitted from scratch: the head reads it as commanded, nothing else moves
    much, and the result is the correction shipped in the package."""
    head, names, points, blendshapes, lap = canonical
    rig = build_rig(points, (0.0, 0.0, 0.0), blendshapes, fitted=False, closed=False)
    channel = "mouthPressRight"
    before, _ = tool.summary(head, rig, channel)
    fit = tool.ChannelFit(head, rig, lap, channel)
    correction = fit.correction(fit.fit())
    k = latent.EXPRESSION.index(channel)
    rig.bases[k, :468] += correction
    after, _ = tool.summary(head, rig, channel)
    assert before < 0.3 and after > 0.85, (before, after)
    frame = rig.rest.copy()
    frame[latent.index(channel)] = 1.0
    change = head(deform(rig, frame)[:478]) - head(deform(rig, rig.rest)[:478])
    scored = [names.index(n) for n in tool.SCORED if n != channel]
    assert np.abs(change[scored]).max() < 0.25
    np.testing.assert_allclose(correction, _expression_fit()[k], atol=2e-3)
