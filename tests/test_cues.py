"""Behaviour cues: read off a teacher's track for training, drawn live from speech at run time."""

from __future__ import annotations

import numpy as np

from avatarcam import latent
from avatarcam.audio.io import load_audio
from avatarcam.cli import demo_audio
from avatarcam.motion import cues as cue

BLINK, YAW = latent.index("eyeBlinkLeft"), latent.index("headYaw")


def test_track_cues_mark_each_blink_once_where_it_starts_and_carry_the_head():
    track = latent.zeros(60)
    track[10:16, BLINK] = [0.2, 0.7, 1.0, 0.8, 0.3, 0.0]
    track[40:45, BLINK] = [0.1, 0.9, 1.0, 0.6, 0.02]
    track[:, YAW] = np.radians(np.linspace(-3, 3, 60))
    c = cue.track_cues(track)
    assert c.shape == (60, cue.CUES)
    assert list(np.flatnonzero(c[:, 0])) == [10, 40]
    np.testing.assert_allclose(c[[0, -1], 1], [-1.0, 1.0], atol=1e-5)  # 3 degrees is one cue unit
    assert (c[:, 3] == 1).all()
    # a stream cut in the middle of a blink does not see a second onset
    assert not cue.track_cues(track[12:20], blink_before=track[11, BLINK])[:, 0].any()


def test_teacher_cues_smooth_the_head_but_keep_its_course():
    rng = np.random.default_rng(0)
    track = latent.zeros(300)
    slow = np.radians(4) * np.sin(np.linspace(0, 3 * np.pi, 300))
    track[:, YAW] = slow + np.radians(1) * rng.standard_normal(300)  # a drift and a jitter
    c = cue.teacher_cues(track)
    assert np.corrcoef(c[:, 1], slow)[0, 1] > 0.95
    assert np.abs(np.diff(c[:, 1])).mean() < 0.2 * np.abs(np.diff(track[:, YAW] * cue.HEAD_SCALE)).mean()


def test_live_cues_are_the_behaviour_process_on_the_speech_whatever_the_chunking():
    speech = load_audio(demo_audio())[: 16000 * 8]
    whole = cue.CueStream(seed=3)
    whole.push(speech)
    whole.flush()
    n = int(np.ceil(len(speech) / 16000 * latent.FPS))
    a = whole.rows(np.arange(n))
    pieces = cue.CueStream(seed=3)
    for start in range(0, len(speech), 1234):
        pieces.push(speech[start:start + 1234])
    pieces.flush()
    np.testing.assert_array_equal(pieces.rows(np.arange(n)), a)
    # blinks at a human rate, the head drifting by degrees, and seeds differ
    minutes = n / latent.FPS / 60
    assert 5 <= a[:, 0].sum() / minutes <= 40
    assert 0.3 < np.degrees(a[:, 1] / cue.HEAD_SCALE).std() < 8
    other = cue.CueStream(seed=4)
    other.push(speech)
    other.flush()
    assert not np.array_equal(other.rows(np.arange(n))[:, 0], a[:, 0])


def test_cues_of_frames_read_in_order_are_kept_until_passed():
    stream = cue.CueStream(seed=0)
    stream.push(load_audio(demo_audio())[:16000 * 2])
    first = stream.rows(np.arange(-4, 10))
    assert (first[:4] == [0, 0, 0, 1]).all()  # before the stream: no blink, head ahead, cues given
    again = stream.rows(np.arange(6, 12))  # the engine's next window overlaps the last one
    np.testing.assert_array_equal(again[:4], first[10:14])


def test_the_lids_are_the_behaviours_not_the_models():
    from avatarcam.motion import dsp

    speech = load_audio(demo_audio())[: 16000 * 8]
    stream = cue.CueStream(seed=3)
    stream.push(speech)
    stream.flush()
    behaviour = dsp.generate(speech, seed=3)  # the same seeded process drives the DSP driver's blinks
    n = len(behaviour)
    onsets = np.flatnonzero(stream.rows(np.arange(n))[:, 0])
    assert len(onsets) >= 2
    eyes = [BLINK, latent.index("eyeBlinkRight")]
    model = latent.zeros(n)
    model[:, eyes] = 0.3  # a model that half-closes its eyes all through
    out = stream.blink(model.copy(), 0)
    np.testing.assert_array_equal(out[:, eyes], behaviour[:, eyes])
    assert (out[onsets + 2, BLINK] > 0.7).all()  # full blinks, not the model's half ones
    assert (out[behaviour[:, BLINK] == 0][:, eyes] == 0).all()  # open between them, no blink of its own
    others = [c for c in range(latent.DIM) if c not in eyes]
    np.testing.assert_array_equal(out[:, others], model[:, others])
    # a chunk of the stream sees the same lids as the whole
    np.testing.assert_array_equal(stream.blink(model[40:60].copy(), 40), out[40:60])
