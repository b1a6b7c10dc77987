"""bench.lipsync's r ceiling: how far any mouth shut in silence can follow a clip's loudness."""

from __future__ import annotations

import numpy as np

from avatarcam.audio.features import loudness_envelope, silent_frames
from avatarcam.audio.io import load_audio
from bench.lipsync import r_ceiling


def _ceiling(path) -> float:
    samples = load_audio(path, rate=16000)
    return r_ceiling(loudness_envelope(samples), silent_frames(samples))


def test_a_mouth_at_rest_in_every_pause_can_follow_speech(speech_dir):
    assert _ceiling(speech_dir / "en_ljspeech_LJ001-0001.wav") > 0.9


def test_over_a_band_the_quiet_half_is_silence_and_caps_the_lip_sync(speech_dir):
    # the song's level never drops below its band: the bench's silence is its quieter half, where
    # a mouth at rest cannot follow the level the envelope still has
    assert _ceiling(speech_dir / "sing_en_karissa_hobbs_lets_go_fishin.ogg") < 0.6


def test_the_ceiling_is_the_best_of_its_family_and_reached_without_silence():
    rng = np.random.default_rng(0)
    envelope = rng.normal(-30.0, 8.0, 600)
    silent = envelope < -35.0
    ceiling = r_ceiling(envelope, silent)
    for level in (-60.0, -35.0, -20.0):  # any mouth of the family shut on the silent frames does no better
        mouth = np.where(silent, 0.0, np.maximum(envelope - level, 0.0))
        assert np.corrcoef(mouth, envelope)[0, 1] <= ceiling + 1e-9
    assert r_ceiling(envelope, np.zeros(600, bool)) > 0.999  # no silence: the envelope itself
