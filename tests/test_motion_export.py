"""`avatarcam motion`: the voice's motion as a Live Link Face CSV or a JSON track, and the ARKit
translation both files and the VMC output use."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avatarcam import chain, cli, latent
from avatarcam.arkit import shapes
from avatarcam.audio.features import frame_count
from avatarcam.audio.io import load_audio
from avatarcam.motion.controls import ControlledEngine

# The header Live Link Face (Epic's iPhone app) writes at the top of a recorded take.
LIVE_LINK_FACE = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,"
    "EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,"
    "MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,"
    "MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,"
    "MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,"
    "CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,"
    "LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll").split(",")
CLIP_S = 3.3  # not a whole number of frames: the last frame covers the clip's end


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> tuple[Path, np.ndarray]:
    samples = load_audio(cli.demo_audio())[: int(CLIP_S * 16000)]
    path = tmp_path_factory.mktemp("voice") / "voice.wav"
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    return path, load_audio(path)


def engine_track(samples: np.ndarray, fps: int, emotion: str = "neutral", seed: int = 0) -> np.ndarray:
    """The DSP engine's motion for the clip, made here as `render` and `live` make it."""
    engine = ControlledEngine(chain.motion_engine("dsp", seed=seed, fps=fps), emotion=emotion, fps=fps)
    return np.stack(list(chain.frames(chain.file_chunks(samples), engine)))


@pytest.mark.parametrize("fps", [30, 25])
def test_live_link_face_csv_round_trips(voice, tmp_path, fps) -> None:
    path, samples = voice
    out = tmp_path / "take.csv"
    assert cli.main(["motion", "--audio", str(path), "-o", str(out), "--engine", "dsp", "--fps", str(fps), "-q"]) == 0
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == LIVE_LINK_FACE
    data = rows[1:]
    assert len(data) == frame_count(len(samples), 16000, fps) == int(np.ceil(CLIP_S * fps))
    track = engine_track(samples, fps)
    want = np.concatenate([shapes.blendshapes(track), shapes.head_angles(track), shapes.gaze_angles(track),
                           np.zeros((len(track), 1)), shapes.gaze_angles(track), np.zeros((len(track), 1))], axis=1)
    got = np.array([[float(v) for v in row[2:]] for row in data], np.float32)
    assert np.array_equal(got, want.astype(np.float32))  # the engine's values, to the last bit
    assert {row[1] for row in data} == {"61"}
    assert data[0][0] == "00:00:00:00.000" and data[fps + 1][0] == "00:00:01:01.000"
    column = {name: got[:, i] for i, name in enumerate(LIVE_LINK_FACE[2:])}
    assert np.array_equal(column["JawOpen"], track[:, latent.index("jawOpen")])
    assert np.array_equal(column["HeadYaw"], track[:, latent.index("headYaw")])
    assert np.all((got[:, :52] >= 0) & (got[:, :52] <= 1)) and column["JawOpen"].max() > 0.3


def test_emotion_and_seed_as_for_live(voice, tmp_path) -> None:
    path, samples = voice
    out = tmp_path / "happy.json"
    assert cli.main(["motion", "--audio", str(path), "-o", str(out), "--engine", "dsp", "--emotion", "happy",
                     "--seed", "3", "-q"]) == 0
    doc = json.loads(out.read_text())
    track = engine_track(samples, 30, "happy", seed=3)
    assert doc["fps"] == 30 and len(doc["frames"]) == len(track)
    last = doc["frames"][-1]
    assert set(last) == {"time", "blendshapes", "head", "gaze"} and list(last["blendshapes"]) == list(shapes.NAMES)
    assert last["blendshapes"]["mouthSmileLeft"] == pytest.approx(float(track[-1, latent.index("mouthSmileLeft")]))
    assert last["blendshapes"]["mouthSmileLeft"] > 0.4
    assert last["head"]["yaw"] == pytest.approx(float(track[-1, latent.index("headYaw")]))
    assert last["time"] == pytest.approx((len(track) - 1) / 30)


@pytest.mark.parametrize("target, message", [
    ("take.mp4", "Live Link Face CSV (.csv) or a JSON track"),
    ("missing/take.csv", "does not exist"),
    ("readonly", "not writable"),
])
def test_bad_output_paths_fail_in_one_line_with_exit_2_and_write_nothing(voice, tmp_path, capsys, target, message):
    path, _ = voice
    if target == "readonly":
        if os.geteuid() == 0:  # root writes through permission bits: a file system that refuses
            out = Path("/sys/avatarcam-take.csv")
        else:
            locked = tmp_path / "locked"
            locked.mkdir(mode=0o555)
            out = locked / "take.csv"
    else:
        out = tmp_path / target
    before = sorted(os.listdir(out.parent)) if out.parent.is_dir() else None
    code = cli.main(["motion", "--audio", str(path), "-o", str(out), "--engine", "dsp", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("avatarcam: error:") and message in err
    assert not out.exists()
    if before is not None:
        assert sorted(os.listdir(out.parent)) == before  # no temporary file left either


# --- the translation -----------------------------------------------------------------------------

def test_gaze_becomes_eye_look() -> None:
    right_down = shapes.blendshapes(latent.from_dict({"gazeYaw": 0.25, "gazePitch": 0.2})[0])
    named = dict(zip(shapes.NAMES, right_down))
    # toward the image's right is the subject's left: out for the left eye, in for the right
    assert named["eyeLookOutLeft"] == named["eyeLookInRight"] == pytest.approx(0.5)
    assert named["eyeLookDownLeft"] == named["eyeLookDownRight"] == pytest.approx(0.5)
    assert named["eyeLookInLeft"] == named["eyeLookOutRight"] == named["eyeLookUpLeft"] == 0
    assert shapes.PERFECT_SYNC[shapes.NAMES.index("jawOpen")] == "JawOpen"


def test_head_quaternions() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        angles = rng.uniform(latent.LOW[:3], latent.HIGH[:3])
        frame = latent.from_dict(dict(zip(("headYaw", "headPitch", "headRoll"), angles)))[0]
        q = shapes.head_quaternion(frame)
        half = shapes.half_turn(q)
        assert abs(np.linalg.norm(q) - 1) < 1e-12 and abs(np.linalg.norm(half) - 1) < 1e-12
        assert np.allclose(latent.angles(shapes.matrix(q)), frame[:3], atol=1e-6)
        assert np.allclose(shapes.matrix(half) @ shapes.matrix(half), shapes.matrix(q), atol=1e-12)
    # Unity's axes: a turn toward the picture's right points the avatar's face (+z) toward -x, the
    # screen's right for an avatar facing the viewer
    nose = shapes.matrix(shapes.head_quaternion(latent.from_dict({"headYaw": 0.3})[0])) @ [0, 0, 1]
    assert nose[0] < 0


def test_vowel_presets() -> None:
    a, i, u, e, o, blink = range(6)
    silent = shapes.presets(latent.zeros()[0])
    assert np.all(silent == 0)
    ah = shapes.presets(latent.from_dict({"jawOpen": 0.62})[0])
    assert ah[a] == pytest.approx(1) and ah[[i, u, e, o]].sum() == 0
    oo = shapes.presets(latent.from_dict({"jawOpen": 0.1, "mouthPucker": 0.6, "mouthFunnel": 0.3})[0])
    assert oo[u] > 0.7 and oo[u] == oo.max()
    ee = shapes.presets(latent.from_dict({"jawOpen": 0.08, "mouthStretchLeft": 0.33, "mouthStretchRight": 0.33})[0])
    assert ee[i] > 0.8
    closed = shapes.presets(latent.from_dict({"eyeBlinkLeft": 1, "eyeBlinkRight": 0.5})[0])
    assert closed[blink] == pytest.approx(0.75)
    rng = np.random.default_rng(1)
    frames = latent.clip(rng.uniform(0, 1, (500, latent.DIM)).astype(np.float32))
    assert np.all(shapes.presets(frames)[:, :5].sum(axis=1) <= 1 + 1e-6)
