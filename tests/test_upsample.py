"""Motion at 60 fps and more: the model's 30 fps frames with the ones in between interpolated."""

from __future__ import annotations

import numpy as np
import pytest

from avatarcam import chain, latent
from avatarcam.audio.features import frame_count
from avatarcam.audio.io import load_audio
from avatarcam.cli import demo_audio
from avatarcam.errors import AvatarCamError
from avatarcam.motion.controls import ControlledEngine

RATE = 16000


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return load_audio(demo_audio(), RATE)[: int(2.5 * RATE)]


def stream(engine, clip: np.ndarray) -> np.ndarray:
    return np.stack(list(chain.frames(chain.file_chunks(clip), engine)))


@pytest.mark.parametrize("factor", [2, 4])
def test_the_model_at_a_multiple_of_30_fps_shows_its_frames_and_the_ones_between(clip, factor):
    base = stream(chain.motion_engine("diffusion", seed=3), clip)
    engine = chain.motion_engine("diffusion", seed=3, fps=30 * factor)
    fast = stream(engine, clip)
    assert len(fast) == frame_count(len(clip), RATE, 30 * factor)
    # the model's own frames at their own instants, unchanged
    np.testing.assert_array_equal(fast[::factor][:len(base)], base[:len(fast[::factor])])
    # in between: the straight line from one to the next (the mouth moves, so these differ from both)
    j = np.arange(len(base) - 1)
    for k in range(1, factor):
        between = fast[j * factor + k]
        np.testing.assert_allclose(between, base[j] + (base[j + 1] - base[j]) * (k / factor), atol=1e-6)
    jaw = latent.index("jawOpen")
    assert np.abs(np.diff(base[:, jaw])).max() > 0.05  # a real voice: the check above is not on a still face
    assert engine.latency_s == pytest.approx(chain.motion_engine("diffusion").latency_s + (factor - 1) / (30 * factor))


@pytest.mark.parametrize("fps", [60, 90, 120])
def test_live_latency_is_the_same_at_every_frame_rate(fps):
    """A live lookahead counts the wait for the next model frame: a frame in between waits no
    longer past its instant than a model frame at 30 fps."""
    at_30 = chain.motion_engine("diffusion", lookahead_s=0.04).latency_s
    faster = chain.motion_engine("diffusion", fps=fps, lookahead_s=0.04).latency_s
    assert abs(faster - at_30) <= 0.005 + 1e-9  # the lookahead rounds to whole 10 ms mel rows


def test_emotion_reaches_the_model_through_the_interpolation(clip):
    controlled = ControlledEngine(chain.motion_engine("diffusion", seed=3, fps=60), emotion="happy", fps=60)
    assert controlled.engine.emotion == "happy"  # the model plays it itself, not a preset laid under it
    smile = [latent.index("mouthSmileLeft"), latent.index("mouthSmileRight")]
    neutral = stream(chain.motion_engine("diffusion", seed=3, fps=60), clip)
    happy = stream(controlled, clip)
    assert happy[:, smile].mean() > neutral[:, smile].mean() + 0.1


def test_frame_rates_the_model_cannot_make_are_refused_with_the_choices():
    with pytest.raises(AvatarCamError, match="30 fps or a multiple"):
        chain.motion_engine("diffusion", fps=45)
    assert len(stream(chain.motion_engine("dsp", fps=45), np.zeros(RATE, np.float32))) == 45  # the DSP driver can
