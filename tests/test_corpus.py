"""The training corpus: espeak-ng timings, the coarticulation teacher, degradation, shards."""

from __future__ import annotations

import ctypes.util
import shutil

import numpy as np
import pytest
from scipy.signal import resample_poly

from avatarcam import latent
from avatarcam.audio import mel
from avatarcam.audio.features import frame_count, loudness_envelope
from avatarcam.corpus import augment, music, phonemes, teacher
from avatarcam.corpus.espeak import Phone
from avatarcam.corpus.phonemes import articulations, is_bilabial, is_rounded
from avatarcam.motion import lips

espeak = pytest.mark.skipif(ctypes.util.find_library("espeak-ng") is None,
                            reason="espeak-ng is not installed (apt-get install espeak-ng)")
festival_installed = pytest.mark.skipif(shutil.which("festival") is None,
                                        reason="Festival is not installed (apt-get install festival festvox-kallpc16k "
                                               "festvox-kdlpc16k festvox-us-slt-hts)")
band_installed = pytest.mark.skipif(ctypes.util.find_library("fluidsynth") is None or not music.SOUNDFONT.exists(),
                                    reason=f"the band's FluidSynth or soundfont is not installed (apt-get install "
                                           f"{music.PACKAGES})")
JAW, CLOSE = latent.index("jawOpen"), latent.index("mouthClose")
LIPS = [latent.index("mouthFunnel"), latent.index("mouthPucker")]


@pytest.fixture(scope="module")
def synth():
    if ctypes.util.find_library("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from avatarcam.corpus.espeak import Synthesizer
    return Synthesizer()


def _track(phones, seconds, controls=teacher.Controls(), seed=0, f0=None):
    frames = int(np.ceil(seconds * latent.FPS))
    f0 = np.zeros(frames) if f0 is None else f0
    # a voice as loud as its phonemes: vowels loudest, consonants quieter, silence between
    loudness = np.full(frames, -100.0)
    for p in phones:
        loudness[int(p.start * latent.FPS):int(np.ceil(p.end * latent.FPS))] = \
            -12.0 if articulations(p.name)[0].kind == "vowel" else -25.0
    return teacher.track(phones, [p.start for p in phones[::3]], seconds, frames, f0, loudness, controls,
                         np.random.default_rng(seed))


def _assert_timed_where_it_sounds(speech, bilabials: int):
    """Speech with a pause in it, as spoken: its bilabials, phones in order inside the audio, loud
    at the vowels' middles, quiet in the pause."""
    names = [p.name for p in speech.phones]
    assert sum(is_bilabial(n) for n in names) == bilabials, names
    starts = [p.start for p in speech.phones]
    assert starts == sorted(starts) and speech.phones[-1].end <= len(speech.samples) / speech.rate + 1e-6
    # the audio is quiet where the voice says nothing is spoken and loud inside its vowels
    env = loudness_envelope(resample_poly(speech.samples, 16000, speech.rate).astype(np.float32),
                            16000, latent.FPS)
    vowels = [p for p in speech.phones if articulations(p.name)[0].kind == "vowel"]
    assert len(vowels) >= 4, names
    for vowel in vowels:
        i = int((vowel.start + vowel.end) / 2 * latent.FPS)
        assert env[i] > env.max() - 25, (vowel, env[i], env.max())
    # the pause: the longest gap between phonemes, and quiet
    gaps = [(b.start - a.end, a.end, b.start) for a, b in zip(speech.phones, speech.phones[1:])]
    length, start, end = max(gaps)
    assert length > 0.05
    assert env[int((start + end) / 2 * latent.FPS)] < env.max() - 30


def test_espeak_times_phonemes_where_they_sound(synth):
    _assert_timed_where_it_sounds(synth.speak("Mama, papa.", "en+m3"), bilabials=4)


@festival_installed
@pytest.mark.parametrize("voice", ["kal", "ked", "slt"])
def test_festival_times_phones_where_they_sound(voice):
    from avatarcam.corpus import festival

    _assert_timed_where_it_sounds(festival.speak("We ate at many tables, uninvited.", voice), bilabials=2)
    slow, fast = (festival.speak("We ate at many tables, uninvited.", voice, speed=wpm) for wpm in (120, 240))
    ratio = (len(slow.samples) / slow.rate) / (len(fast.samples) / fast.rate)
    assert 1.5 < ratio < 2.5, ratio  # the speed asked for is the speed spoken
    assert len(slow.words) == len(fast.words) == 6


def test_festival_phones_become_ipa_the_teacher_knows():
    from avatarcam.corpus import festival
    from avatarcam.errors import AvatarCamError

    lines = ["S pau 0.2", "S m 0.3", "S uw 0.5", "S v 0.6", "S pau 0.9", "W 0.2"]
    phones, words = festival.parse(lines, duration=0.8)
    assert [(p.name, p.start, p.end) for p in phones] == [("m", 0.2, 0.3), ("u", 0.3, 0.5), ("v", 0.5, 0.6)]
    assert words == [0.2]
    assert is_bilabial("m") and is_rounded(phones[1].name)
    for phone, name in festival._IPA.items():  # every phone Festival's US voices speak has a real articulation
        assert articulations(name)[0] != phonemes._UNKNOWN, phone
    with pytest.raises(AvatarCamError, match="does not know"):
        festival.parse(["S xx 0.1"], duration=1.0)


def test_the_teacher_shuts_a_stop_in_its_silence(synth):
    """espeak-ng's event for a stop marks its release, after the closure's silence: around each
    bilabial the teacher's lips are shut where the voice is quiet, far quieter than in the event's
    middle (shut through the event, the model learned lips that closed late, on the release)."""
    speech = synth.speak("Papa bought a map, and Bob put the pipe by the tub.", "en+m3")
    clean = resample_poly(speech.samples, 16000, speech.rate).astype(np.float32)
    env = loudness_envelope(clean, 16000, latent.FPS)
    track = teacher.track(speech.phones, speech.words, len(clean) / 16000, len(env), np.zeros(len(env)), env,
                          teacher.Controls(), np.random.default_rng(0))
    shut = track[:, JAW] - track[:, CLOSE] < lips.LIP_GAP_SHUT
    bilabials = [p for p in speech.phones if is_bilabial(p.name)]
    assert len(bilabials) == 12
    at_shut, at_middle = [], []
    for phone in bilabials:
        near = np.arange(int(np.ceil((phone.start - 0.05) * latent.FPS)), int(np.floor(phone.end * latent.FPS)) + 1)
        assert shut[near].any(), phone  # every one shuts the lips
        at_shut += list(env[near[shut[near]]])
        at_middle.append(env[int(round((phone.start + phone.end) / 2 * latent.FPS))])
    assert np.mean(at_shut) < np.mean(at_middle) - 6, (at_shut, at_middle)


def test_espeak_speaks_every_corpus_language_and_voice(synth):
    from avatarcam.corpus.build import TEST_LANGUAGE, TEST_VOICES, TRAIN_LANGUAGES, TRAIN_VOICES
    for language in (*TRAIN_LANGUAGES, TEST_LANGUAGE):
        assert synth.speak("Amo", f"{language}+m1").phones, language
    for voice in (*TRAIN_VOICES, *TEST_VOICES):
        assert len(synth.speak("Hello", f"en+{voice}").samples) > 1000, voice


def test_bilabials_close_the_lips_and_vowels_open_them():
    phones = [Phone("a", 0.2, 0.4), Phone("m", 0.4, 0.47), Phone("a", 0.47, 0.65), Phone("b", 0.65, 0.7),
              Phone("a", 0.7, 0.9)]
    track = _track(phones, 1.4)
    for phone in phones:
        i = int(round((phone.start + phone.end) / 2 * latent.FPS))
        gap = track[i, JAW] - track[i, CLOSE]
        if is_bilabial(phone.name):
            assert gap < 0.05, (phone, gap)
        else:
            assert track[i, JAW] > 0.25, (phone, track[i, JAW])
    # silence after the speech: the mouth rests shut
    assert track[int(1.2 * latent.FPS):, JAW].max() < 0.02


def test_the_jaw_opens_by_the_vowel_more_than_by_the_loudness():
    # as loud as each other, /a/ opens the jaw more than twice as far as /i/; /a/ at a quarter of
    # the loudness (12 dB lower) still opens it further than /i/ at full loudness
    def jaw_of(vowel, db):
        phones = [Phone(vowel, 0.3, 0.7)]
        frames = int(1.0 * latent.FPS)
        loudness = np.full(frames, -100.0)
        loudness[int(0.3 * latent.FPS):int(0.7 * latent.FPS)] = db
        loudness[0] = -12.0  # the clip's loudest moment sets the level scale for both
        track = teacher.track(phones, [0.3], 1.0, frames, np.zeros(frames), loudness, teacher.Controls(),
                              np.random.default_rng(0))
        return track[int(0.5 * latent.FPS), JAW]

    assert jaw_of("a", -12.0) > 2 * jaw_of("i", -12.0)
    assert jaw_of("a", -24.0) > jaw_of("i", -12.0)


def test_rounding_starts_before_the_rounded_vowel():
    # "s t u": the lips round during the consonants that lead into /u/, not at its onset
    plain = [Phone("s", 0.3, 0.4), Phone("t", 0.4, 0.45), Phone("i", 0.45, 0.7)]
    rounded = [Phone("s", 0.3, 0.4), Phone("t", 0.4, 0.45), Phone("u", 0.45, 0.7)]
    assert is_rounded("u") and not is_rounded("i")
    a, b = _track(plain, 1.0), _track(rounded, 1.0)
    during_t = int(0.42 * latent.FPS)
    assert b[during_t, LIPS].sum() > a[during_t, LIPS].sum() + 0.15
    assert b[int(0.58 * latent.FPS), LIPS].sum() > 0.8  # well rounded on the vowel itself


def test_teacher_behaviour_blinks_moves_and_styles():
    rng = np.random.default_rng(3)
    phones, t = [], 0.0
    while t < 60:  # a minute of syllables with a pause every 3 s
        phones.append(Phone("p", t, t + 0.06))
        phones.append(Phone("a", t + 0.06, t + 0.25))
        t += 0.25 + (0.6 if int(t) % 3 == 0 and t % 1 < 0.25 else 0.0)
    f0 = 120 + 20 * rng.random(int(np.ceil(t * latent.FPS)))
    track = _track(phones, t, f0=f0)
    blink = track[:, latent.index("eyeBlinkLeft")]
    blinks = int(((blink[1:] > 0.5) & (blink[:-1] <= 0.5)).sum())
    assert 8 <= blinks / (t / 60) <= 30, blinks
    yaw_deg = np.degrees(track[:, latent.index("headYaw")])
    assert 1.5 < yaw_deg.std() < 8
    assert np.abs(np.diff(yaw_deg)).max() < 1.0  # smooth: no jumps
    happy = _track(phones, t, teacher.Controls("happy"), f0=f0)
    smile = [latent.index("mouthSmileLeft"), latent.index("mouthSmileRight")]
    assert happy[:, smile].mean() - track[:, smile].mean() >= 0.25
    # the same rng gives the same track
    np.testing.assert_array_equal(track, _track(phones, t, f0=f0))


def test_degradation_keeps_the_speech_and_changes_the_sound():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    voice = (np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32) * 0.5
    for seed in range(6):
        out = augment.degrade(voice, np.random.default_rng(seed), babble=voice)
        assert out.shape == voice.shape and np.abs(out).max() <= 1.0
        env_in = loudness_envelope(voice, 16000, 30)
        env_out = loudness_envelope(out, 16000, 30)
        assert np.corrcoef(env_in, env_out)[0, 1] > 0.5  # syllables still where they were
    assert not np.allclose(augment.codec(voice.astype(np.float64), rng), voice, atol=1e-3)


@espeak
def test_a_shard_end_to_end(tmp_path):
    from avatarcam.corpus.build import build
    from avatarcam.training.evaluate import closures, load_split

    paths = [build(tmp_path / name, hours=0, test_hours=8 / 3600, jobs=1, seed=5, progress=False, shard_seconds=8.0)
             for name in ("a", "b")]
    assert [p.name for p in paths[0]] == ["test-00000.npz"]
    with np.load(paths[0][0]) as a, np.load(paths[1][0]) as b:
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # seeded: the same shard twice
        assert set(a["voice"]) <= {"m6", "f4", "Michael"}
        frames = np.diff(a["frame_offsets"])
        assert (np.diff(a["mel_offsets"]) == [mel.frame_count(n) for n in np.diff(a["audio_offsets"])]).all()
        assert (frames == [frame_count(n, 16000, 30) for n in np.diff(a["audio_offsets"])]).all()
    utterances = load_split(tmp_path / "a", "test")
    assert sum(len(u.audio) for u in utterances) / 16000 >= 8.0
    for u in utterances:
        shut, total = closures(u.teacher, u.phones)
        assert shut == total
        # the timings fit the (degraded) audio: louder at vowel middles than in the pauses
        env = loudness_envelope(u.audio, 16000, 30)
        vowels = [int((p.start + p.end) / 2 * latent.FPS) for p in u.phones
                  if articulations(p.name)[0].kind == "vowel"]
        pauses = [i for a, b in zip([None, *u.phones], u.phones) for i in
                  range(int((a.end if a else 0.0) * latent.FPS) + 2, int(b.start * latent.FPS) - 1)
                  if b.start - (a.end if a else 0.0) > 0.2]
        if vowels and pauses:
            assert env[vowels].mean() > env[pauses].mean() + 3, (u.language, u.voice)


@espeak
@festival_installed
def test_a_training_shard_speaks_with_festival_voices_too(tmp_path):
    from avatarcam.corpus import build, festival
    from avatarcam.training.evaluate import closures

    # every spoken utterance Festival's, sung ones espeak-ng's
    path = build.build_shard(tmp_path / "train-00000.npz", "train", 0, seed=3, seconds=20.0, festival_share=1.0)
    with np.load(path) as z:
        assert "audio" not in z  # the training split keeps only what training reads
        spoken = ~z["sung"]
        assert spoken.any() and set(z["voice"][spoken]) <= set(festival.VOICES)
        assert set(z["language"][spoken]) == {"en"}
        fo, mo = z["frame_offsets"], z["mel_offsets"]
        assert (np.diff(mo) >= np.diff(fo)).all()  # mel rows (100 a second) cover every video frame
        bilabials = 0
        for i in np.flatnonzero(spoken):
            mine = z["phone_utterance"] == i
            phones = [Phone(str(n), float(a), float(b)) for n, (a, b) in zip(z["phone_name"][mine], z["phone_span"][mine])]
            assert phones[-1].end <= (fo[i + 1] - fo[i]) / latent.FPS + 0.05
            shut, total = closures(z["motion"][fo[i]:fo[i + 1]].astype(np.float32), phones)
            assert shut == total  # the teacher shuts the lips on every bilabial Festival spoke
            bilabials += total
        assert bilabials > 5


def test_without_the_soundfont_the_band_says_what_to_install(tmp_path):
    from avatarcam.errors import AvatarCamError

    with pytest.raises(AvatarCamError, match="apt install libfluidsynth3 musescore-general-soundfont-small"):
        music.Instruments(tmp_path / "missing.sf3")


@band_installed
def test_the_soundfonts_notes_sound_at_their_pitch_and_the_same_in_every_process():
    notes = music.instruments()
    for program, key in ((25, 57), (0, 64), (33, 40)):  # steel guitar A3, piano E4, bass E2
        note = notes.note(0, program, key, 96)[:int(0.5 * music.RATE)]
        assert np.sqrt(np.mean(note ** 2)) > 1e-3
        # the strongest partial is a harmonic of the key's frequency
        spectrum = np.abs(np.fft.rfft(note * np.hanning(len(note))))
        peak = np.fft.rfftfreq(len(note), 1 / music.RATE)[np.argmax(spectrum)]
        f0 = 440.0 * 2 ** ((key - 69) / 12)
        assert abs(peak / f0 - round(peak / f0)) < 0.03 and round(peak / f0) >= 1, (program, key, peak, f0)
    # a fresh renderer, as in another corpus worker, makes the very same samples
    again = music.Instruments()
    for k in ((0, 25, 57, 96), (0, 46, 91, 120), (128, 0, music.DRUMS["snare"], 120)):
        np.testing.assert_array_equal(again.note(*k), notes.note(*k))


@pytest.mark.parametrize("shares", [{"band_share": 1.5}, {"festival_share": -0.1}])
def test_a_share_outside_0_to_1_is_refused_before_anything_is_written(tmp_path, shares):
    from avatarcam.corpus import build
    from avatarcam.errors import AvatarCamError

    with pytest.raises(AvatarCamError, match="is not a share: give 0 to 1"):
        build.build(tmp_path / "corpus", hours=0.01, test_hours=0.0, progress=False, **shares)
    assert not (tmp_path / "corpus").exists()


@band_installed
def test_a_band_plays_chords_in_time():
    seconds = 8
    a = music.band(np.random.default_rng(4), 16000 * seconds)
    np.testing.assert_array_equal(a, music.band(np.random.default_rng(4), 16000 * seconds))  # seeded
    assert abs(np.sqrt(np.mean(a ** 2)) - 1.0) < 1e-6
    assert not np.allclose(a[:16000], music.band(np.random.default_rng(5), 16000 * seconds)[:16000])
    # it plays from the first second to the last, in beats: the level rises and falls many times
    env = loudness_envelope((a * 0.05).astype(np.float32), 16000, 30)
    assert env[:30].max() > env.max() - 10 and env[-30:].max() > env.max() - 10
    onsets = np.sum((env[1:] - env[:-1]) > 4)
    assert onsets >= seconds, onsets
    # pitched: most of its energy lies under 2 kHz, in tones rather than noise
    spectrum = np.abs(np.fft.rfft(a)) ** 2
    hz = np.fft.rfftfreq(len(a), 1 / 16000)
    assert spectrum[hz < 2000].sum() > 0.8 * spectrum.sum()


@band_installed
def test_an_accompanied_voice_keeps_its_samples_and_the_band_sits_under_it():
    t = np.arange(16000 * 2) / 16000
    voice = (0.3 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    for seed in range(5):
        padded, band, lead = music.accompany(voice, np.random.default_rng(seed))
        start = int(round(lead * 16000))
        assert 1.0 <= lead <= 4.0 and len(band) == len(padded) > len(voice) + 2 * 16000
        np.testing.assert_array_equal(padded[start:start + len(voice)], voice)
        assert not padded[:start].any() and not padded[start + len(voice):].any()
        spoken = np.abs(voice) > 0.03
        below_db = 20 * np.log10(np.sqrt(np.mean(voice[spoken] ** 2)) / np.sqrt(np.mean(band ** 2)))
        assert -0.5 <= below_db <= 15.5, below_db


@espeak
@band_installed
def test_a_band_before_the_voice_leaves_the_teacher_mouth_shut(tmp_path):
    from avatarcam.corpus import build

    # a band around every training utterance
    path = build.build_shard(tmp_path / "train-00000.npz", "train", 0, seed=3, seconds=15.0, band_share=1.0)
    with np.load(path) as z:
        fo, mo = z["frame_offsets"], z["mel_offsets"]
        for i in range(len(fo) - 1):
            first = z["phone_span"][z["phone_utterance"] == i][:, 0].min()
            assert first >= 1.0  # the voice comes in after the band's bars
            before = slice(fo[i], fo[i] + int((first - 0.2) * latent.FPS))  # the teacher anticipates
            motion = z["motion"][before].astype(np.float32)
            assert motion[:, JAW].max() < 0.1 and lips.shapes(motion)[:, 0].all()
            # and the band is heard there: its rows stand well above the silence floor
            rows = z["mel"][mo[i]:mo[i] + int((first - 0.2) * 100)].astype(np.float32)
            level = 10 * np.log10(np.sum(10 ** (rows / 10), axis=1))
            assert np.median(level) > mel.FLOOR_DB + 40
