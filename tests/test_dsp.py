"""The DSP motion driver and its procedural behaviour, on real speech from ../shared/assets/speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatarcam import latent
from avatarcam.audio import features
from avatarcam.audio.io import load_audio
from avatarcam.motion import dsp

RATE, FPS = 16000, 30
SPEECH = ("en_codec2_speech_orig_16k.wav", "en_librispeech_5703-47212-0000.ogg",
          "en_ljspeech_LJ001-0001.wav", "fr_commonvoice_17299458.wav")
JAW, YAW = latent.index("jawOpen"), latent.index("headYaw")
BLINK_L, BLINK_R = latent.index("eyeBlinkLeft"), latent.index("eyeBlinkRight")
MOUTH = [latent.index(n) for n in latent.EXPRESSION if n.startswith(("jaw", "mouth"))]
HEAD = [latent.index(n) for n in ("headYaw", "headPitch", "headRoll")]


@pytest.fixture(scope="module")
def speech(speech_dir: Path) -> dict[str, np.ndarray]:
    return {name: load_audio(speech_dir / name) for name in SPEECH}


@pytest.fixture(scope="module")
def long_speech(speech) -> np.ndarray:
    """About two minutes of talking with natural pauses: every clip, three times."""
    return np.concatenate([speech[name] for name in SPEECH] * 3)


@pytest.fixture(scope="module")
def long_tracks(long_speech) -> dict[int, np.ndarray]:
    """The driver's tracks for the long clip under seeds 0-5 (shared: each takes a moment)."""
    return {seed: dsp.generate(long_speech, seed=seed) for seed in range(6)}


def lagged_r(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Correlation of a[t + lag] with b[t]."""
    if lag > 0:
        a, b = a[lag:], b[:-lag]
    elif lag < 0:
        a, b = a[:lag], b[-lag:]
    return float(np.corrcoef(a, b)[0, 1])


def blink_onsets(track: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.diff((track[:, BLINK_L] > 0.5).astype(int)) == 1) + 1


# -- contract: shape, range, determinism, streaming --------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 532, 533, 534, 16000, 16001, 48123])
def test_frame_count(n):
    track = dsp.generate(np.random.default_rng(n).normal(0, 0.1, n).astype(np.float32))
    assert track.shape == (int(np.ceil(n / RATE * FPS - 1e-9)), latent.DIM)
    assert track.dtype == np.float32


def test_other_frame_rates(speech):
    clip = speech["fr_commonvoice_17299458.wav"]
    assert len(dsp.generate(clip, fps=25)) == int(np.ceil(len(clip) / RATE * 25))
    assert len(dsp.generate(clip, fps=60)) == int(np.ceil(len(clip) / RATE * 60))


def test_values_in_range(speech):
    for clip in speech.values():
        track = dsp.generate(clip)
        assert np.isfinite(track).all()
        assert (track >= latent.LOW).all() and (track <= latent.HIGH).all()


def test_same_seed_same_track_other_seed_same_mouth_other_head(speech):
    clip = speech["en_ljspeech_LJ001-0001.wav"]
    a, b, c = dsp.generate(clip, seed=1), dsp.generate(clip, seed=1), dsp.generate(clip, seed=2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, MOUTH], c[:, MOUTH])  # the mouth follows the audio only
    assert np.abs(a[:, YAW] - c[:, YAW]).mean() > np.radians(0.5)
    assert abs(np.corrcoef(a[:, YAW], c[:, YAW])[0, 1]) < 0.8


def test_any_chunking_gives_the_same_frames(speech):
    clip = speech["en_codec2_speech_orig_16k.wav"]
    offline = dsp.generate(clip, seed=3)
    rng = np.random.default_rng(0)
    for trial in range(4):
        driver, parts, start = dsp.DspDriver(seed=3), [], 0
        while start < len(clip):
            size = int(rng.integers(0, 4000)) if trial else int(rng.integers(1, 300))  # small chunks too
            parts.append(driver.push(clip[start:start + size]))
            start += size
        parts.append(driver.flush())
        assert all(p.shape[1:] == (latent.DIM,) and p.dtype == np.float32 for p in parts)
        np.testing.assert_array_equal(np.concatenate(parts), offline)


def test_frames_come_out_after_the_lookahead_only():
    driver = dsp.DspDriver()
    assert 0 < driver.lookahead_s <= 0.040
    lookahead = int(round(driver.lookahead_s * RATE))
    audio = np.random.default_rng(0).normal(0, 0.1, RATE).astype(np.float32)
    sent, frames = 0, 0
    for i in range(1, 29):  # frame i needs audio up to t_i + lookahead
        need = int(round(i * RATE / FPS)) + lookahead
        frames += len(driver.push(audio[sent:need - 1]))
        sent = need - 1
        assert frames == i, "a frame came out before its lookahead audio had arrived"
        frames += len(driver.push(audio[sent:need]))
        sent = need
        assert frames == i + 1, "a frame was held back although its audio had arrived"


def test_bad_input():
    driver = dsp.DspDriver()
    with pytest.raises(ValueError, match="mono"):
        driver.push(np.zeros((100, 2), np.float32))
    driver.flush()
    with pytest.raises(RuntimeError):
        driver.push(np.zeros(100, np.float32))


def test_int16_input_is_scaled(speech):
    clip = speech["fr_commonvoice_17299458.wav"]
    pcm = np.round(clip * 32767).astype(np.int16)
    np.testing.assert_allclose(dsp.generate(pcm)[:, JAW], dsp.generate(pcm / 32768.0)[:, JAW], atol=1e-5)


# -- mouth ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPEECH)
def test_jaw_follows_loudness_without_lag(speech, name):
    clip = speech[name]
    jaw = dsp.generate(clip)[:, JAW]
    loudness = features.speech_loudness(features.loudness_envelope(clip))
    by_lag = {lag: lagged_r(jaw, loudness, lag) for lag in range(-4, 5)}
    best = max(by_lag, key=by_lag.get)
    assert by_lag[0] > 0.8, f"{name}: jawOpen vs loudness r = {by_lag[0]:.2f}"
    assert abs(best) <= 1, f"{name}: the jaw is {best} frames off the audio"


@pytest.mark.parametrize("name", SPEECH)
def test_mouth_closed_in_silence(speech, name):
    clip = speech[name]
    jaw = dsp.generate(clip)[:, JAW]
    silent = features.silent_frames(clip)
    assert silent.sum() > 10
    closed = np.mean(jaw[silent] < 0.1)
    assert closed >= 0.9, f"{name}: mouth shut in only {closed:.0%} of silent frames"


def test_jaw_opens_wide_but_not_fully(speech):
    for name in SPEECH:
        jaw = dsp.generate(speech[name])[:, JAW]
        assert 0.45 <= np.percentile(jaw, 99) <= 0.7, name
        assert jaw.max() <= 0.7, name


def test_background_noise_keeps_the_mouth_shut(speech):
    """Steady room noise at -35 dBFS, far above the silence gate: the floor adapts to it."""
    clip = speech["en_ljspeech_LJ001-0001.wav"]
    rng = np.random.default_rng(0)
    lead = 3 * RATE
    noisy = np.concatenate([np.zeros(lead, np.float32), clip])
    noisy += rng.normal(0, 10 ** (-35 / 20), len(noisy)).astype(np.float32)
    jaw = dsp.generate(noisy)[:, JAW]
    noise_only = jaw[FPS: lead * FPS // RATE - 1]  # after one second of adaptation
    assert np.mean(noise_only < 0.05) > 0.95
    talking = jaw[lead * FPS // RATE:]
    loudness = features.speech_loudness(features.loudness_envelope(clip))
    assert lagged_r(talking[: len(loudness)], loudness, 0) > 0.7
    assert np.percentile(talking, 99) > 0.45  # the voice still opens it wide


def synthetic_vowel(formants: tuple[float, float], seconds: float, f0: float = 140.0) -> np.ndarray:
    """A harmonic voice whose spectrum peaks at the two given formants."""
    t = np.arange(int(seconds * RATE)) / RATE
    voice = np.zeros_like(t)
    for k in range(1, int(4000 / f0)):
        gain = sum(np.exp(-0.5 * ((k * f0 - f) / 90.0) ** 2) for f in formants) + 0.02
        voice += gain * np.sin(2 * np.pi * k * f0 * t)
    return (0.2 * voice / np.abs(voice).max()).astype(np.float32)


def test_rounded_and_spread_vowels():
    """/u/ (formants 300, 870 Hz) rounds the lips; /i/ (270, 2290 Hz) spreads them."""
    u, i = synthetic_vowel((300, 870), 0.6), synthetic_vowel((270, 2290), 0.6)
    gap = np.zeros(int(0.2 * RATE), np.float32)
    track = dsp.generate(np.concatenate([gap, u, gap, i] * 4))
    period = int(1.6 * FPS)
    frame_u = np.concatenate([np.arange(s + 10, s + 22) for s in range(0, len(track), period)])
    frame_i = frame_u + int(0.8 * FPS)
    frame_u, frame_i = frame_u[frame_u < len(track)], frame_i[frame_i < len(track)]
    pucker, stretch = track[:, latent.index("mouthPucker")], track[:, latent.index("mouthStretchLeft")]
    funnel = track[:, latent.index("mouthFunnel")]
    assert pucker[frame_u].mean() > 0.15 > pucker[frame_i].mean()
    assert funnel[frame_u].mean() > funnel[frame_i].mean() + 0.1
    assert stretch[frame_i].mean() > 0.1 > stretch[frame_u].mean()


def test_lips_press_at_a_dip_inside_speech():
    vowel = synthetic_vowel((700, 1200), 0.5)
    closure = np.zeros(int(0.08 * RATE), np.float32)  # the silent closure of a /p/ or /b/
    pause = np.zeros(int(0.4 * RATE), np.float32)
    track = dsp.generate(np.concatenate([pause, vowel, closure, vowel, pause]))
    press = track[:, latent.index("mouthPressLeft")]
    dip = slice(27, 30)  # 0.9 - 0.98 s
    assert press[dip].max() > 0.15
    assert press[17:25].max() < 0.05 and press[35:40].max() < 0.05
    # the lips meet: either the jaw shuts or mouthClose seals the lips over the open jaw
    close = track[:, latent.index("mouthClose")]
    assert np.any((track[dip, JAW] < 0.1) | (close[dip] > 0.8 * track[dip, JAW]))
    assert track[17:25, JAW].min() > 0.3 and close[17:25].max() < 0.05


# -- behaviour --------------------------------------------------------------------------------


def test_blink_rate_shape_and_spacing(long_speech, long_tracks):
    minutes = len(long_speech) / RATE / 60
    for seed in range(3):
        track = long_tracks[seed]
        onsets = blink_onsets(track)
        assert 10 <= len(onsets) / minutes <= 25, f"seed {seed}: {len(onsets) / minutes:.1f} blinks a minute"
        assert np.diff(onsets).min() >= 1.5 * FPS - 1
        np.testing.assert_array_equal(track[:, BLINK_L], track[:, BLINK_R])
        # each blink closes the lids (near 1) and lasts about 150-250 ms
        for onset in onsets[:10]:
            lid = track[onset - 3: onset + 12, BLINK_L]
            assert lid.max() > 0.85
            assert 3 <= np.sum(lid > 0.1) <= 8


def test_blinks_cluster_at_the_start_of_pauses(long_speech, long_tracks):
    loudness = features.speech_loudness(features.loudness_envelope(long_speech))
    talking = loudness > 0.08
    pause_start = np.zeros(len(talking), bool)
    talk, quiet = 0, 0
    for t, on in enumerate(talking):  # the first 0.8 s of each silence of 0.15 s+ after speech
        talk, quiet = (talk + 1, 0) if on else (talk, quiet + 1)
        if quiet == int(0.15 * FPS):
            if talk >= 0.3 * FPS:
                pause_start[t - quiet + 1: t - quiet + 1 + int(0.8 * FPS)] = True
            talk = 0
    inside = outside = 0
    for seed in range(6):
        onsets = blink_onsets(long_tracks[seed])
        inside += pause_start[onsets].sum()
        outside += (~pause_start[onsets]).sum()
    # blinks per frame just after a pause begins vs elsewhere (no preference would give 1)
    ratio = (inside / pause_start.mean()) / (outside / (1 - pause_start.mean()))
    assert ratio > 1.8, f"blinks are not more likely just after a pause begins (ratio {ratio:.2f})"


def test_head_motion_follows_the_voice(long_speech, long_tracks):
    talking = features.speech_loudness(features.loudness_envelope(long_speech)) > 0.1
    silence = np.random.default_rng(0).normal(0, 1e-3, 60 * RATE).astype(np.float32)
    for seed in range(3):
        track = long_tracks[seed]
        yaw_deg = np.degrees(track[talking, YAW])
        assert 2.0 <= yaw_deg.std() <= 5.0, f"seed {seed}: yaw std {yaw_deg.std():.1f} deg while talking"
        assert np.abs(np.degrees(track[:, HEAD])).max() < 15
        calm = np.degrees(dsp.generate(silence, seed=seed)[:, YAW]).std()
        assert calm < 0.7 * yaw_deg.std()
        # smooth, not jittery: frame-to-frame change is a small part of the swing
        assert np.abs(np.diff(yaw_deg)).mean() < 0.15 * yaw_deg.std()


def test_nods_and_brows_on_accents(long_speech, long_tracks):
    track = long_tracks[0]
    loudness = features.speech_loudness(features.loudness_envelope(long_speech))
    brow = track[:, latent.index("browInnerUp")]
    assert 0.1 < brow.max() <= 0.6
    assert np.mean(brow > 0.05) < 0.5  # raised on accents, not all the time
    assert np.corrcoef(brow, loudness)[0, 1] > 0.1


def test_gaze_holds_and_jumps(long_tracks):
    track = long_tracks[0]
    gaze = track[:, [latent.index("gazeYaw"), latent.index("gazePitch")]]
    assert np.abs(gaze).max() < 0.35 and gaze.std(axis=0).max() < 0.1
    step = np.linalg.norm(np.diff(gaze, axis=0), axis=1)
    assert np.median(step) < 0.004  # holds a fixation most of the time ...
    assert np.sum(step > 0.03) >= 10  # ... and now and then makes a quick saccade
