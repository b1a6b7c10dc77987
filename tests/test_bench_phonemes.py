"""bench.phonemes: the alignment, the measures on tracks whose answer is known, and its honesty on
real material (a real speaker scores, a still portrait does not, renders keep time)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pocketsphinx", reason="pocketsphinx is in the test extra: pip install -e '.[test]'")

from avatarcam.audio.io import load_audio  # noqa: E402
from bench import phonemes  # noqa: E402


def _need(path):
    if not path.exists():
        pytest.skip(f"test material {path} is absent (it lives in ../shared beside the checkout)")
    return path


def _aligned_to_its_text(path):
    """A shared clip's samples, its alignment to TRANSCRIPTS and the words spoken, which must be
    the transcript's, in order."""
    samples = load_audio(_need(path), rate=phonemes.RATE)
    alignment = phonemes.align(samples, phonemes.TRANSCRIPTS[path.stem])
    words = phonemes.spoken(alignment)
    assert [w.name for w in words] == phonemes.TRANSCRIPTS[path.stem].lower().replace(",", "").split()
    return samples, alignment, words


def test_alignment_finds_the_transcript_in_order_where_the_voice_is(speech_dir):
    samples, alignment, words = _aligned_to_its_text(speech_dir / "en_ljspeech_LJ001-0001.wav")
    starts = np.array([w.start for w in words])
    ends = np.array([w.end for w in words])
    assert np.all(np.diff(starts) > 0) and np.all(ends[:-1] <= starts[1:] + 1e-9)
    assert 0.0 <= starts[0] < 1.0 and ends[-1] <= len(samples) / phonemes.RATE + 0.05
    # about three words a second, none instantaneous or drawn out
    assert 0.03 < (ends - starts).min() and (ends - starts).max() < 1.2
    sanity = phonemes.silence_agreement(alignment, samples)
    assert sanity["phones_in_sound"] > 0.85 and sanity["silences_quiet"] > 0.6
    # the first word's phones, within its time
    first = [p for p in alignment.phones if words[0].start - 1e-9 <= p.start < words[0].end]
    assert [p.name for p in first] == ["P", "R", "IH", "N", "T", "IH", "NG"]
    assert first[-1].end == pytest.approx(words[0].end)


def test_the_librispeech_text_aligns_with_the_names_the_dictionary_lacks(speech_dir):
    samples, alignment, words = _aligned_to_its_text(speech_dir / "en_librispeech_5703-47212-0000.ogg")
    for named in ("inverashiel", "crianan"):
        for word in (w for w in words if w.name == named):
            phones = [p.name for p in alignment.phones if word.start - 1e-9 <= p.start < word.end]
            assert phones == phonemes.PRONUNCIATIONS[named].split()
    # the text is the clip's: its pauses fall where the audio is quiet (recognised words: 0.96)
    sanity = phonemes.silence_agreement(alignment, samples)
    assert sanity["phones_in_sound"] > 0.9 and sanity["silences_quiet"] > 0.98


def test_every_phone_of_the_model_has_an_openness():
    from pocketsphinx import Decoder

    decoder = Decoder()
    phones = {p for word in ("mister", "john", "rather", "young", "voice", "vision", "bought", "chew")
              for p in decoder.lookup_word(word).split()}
    assert phones <= set(phonemes.OPENNESS)
    assert phonemes.OPENNESS["M"] == 0.0 and phonemes.OPENNESS["AA"] == 1.0 and phonemes.OPENNESS["F"] == 0.1


def _labels(pattern: str, repeat: int) -> list[str]:
    return pattern.split() * repeat


def test_a_mouth_that_follows_the_phones_late_scores_one_at_its_lag():
    labels = ["SIL"] + _labels("M AA T IY P UW S EH B AE F OW", 20)
    openness = np.array([phonemes.OPENNESS.get(l, 0.0) for l in labels])
    gap = np.roll(openness, 2) * 0.4 + 0.02  # the mouth two frames after the sound
    width = np.ones(len(labels))
    figures = phonemes.phone_measures(gap, width, labels)
    assert figures["phone_lag"] == 2 and figures["phone_r"] > 0.95
    assert figures["phone_r_lag0"] < figures["phone_r"] - 0.3


def test_closure_rounding_and_the_vowel_ratio_on_known_tracks():
    labels = _labels("AA M AA T IY UW K AE", 30)
    gap = np.array([{"M": 0.0, "AA": 0.5}.get(l, 0.3) for l in labels])
    width = np.array([{"UW": 0.9, "IY": 1.0, "AE": 1.0}.get(l, 0.95) for l in labels])
    figures = phonemes.phone_measures(gap, width, labels)
    assert figures["bilabials"] == 30
    assert figures["closure"] == pytest.approx(0.0)
    assert figures["closure_chance"] > 0.5  # a random three frames rarely hold an /m/
    assert figures["rounding"] == pytest.approx(0.9)
    assert figures["open_over_bilabial"] == np.inf
    # a mouth that never shuts closes to its own smallest gap, no deeper than chance
    still = phonemes.phone_measures(np.full(len(labels), 0.3), width, labels)
    assert still["closure"] == pytest.approx(1.0) and still["closure_chance"] == pytest.approx(1.0)


def test_a_still_portrait_with_speech_muxed_scores_nothing_and_renders_keep_time(tmp_path, face_model, speech_dir):
    from bench import judge

    _need(judge.PORTRAITS)
    name = "en_ljspeech_LJ001-0001"
    samples = load_audio(_need(speech_dir / f"{name}.wav"), rate=phonemes.RATE)[: 4 * phonemes.RATE]
    portrait = judge.load_portrait(judge.DEFAULT_PORTRAIT, cache=True)
    renderer = judge.make_renderer(portrait, phonemes.SIZE)
    still = renderer.render(judge.compose(np.zeros(len(portrait.rig.rest), np.float32), portrait.rig.rest))
    path = tmp_path / "still.mp4"
    phonemes.write_video(path, (still for _ in range(4 * 30)), samples)
    figures, clip, _ = phonemes.measure_file(path, None)  # the first 4 s have no transcript of their own
    assert figures["speech_frames"] > 40
    assert not np.isfinite(figures["phone_r"]) or abs(figures["phone_r"]) < 0.3
    assert np.nanstd(clip.gap) < 0.01  # nothing moves
    # a step through the renderer, the muxer and the reader lands on the click that marks it
    timing = phonemes.timing_checks(renderer, portrait.rig.rest)
    assert timing["opened_at_frame"] == timing["step_frame"] and abs(timing["lag_frames"]) < 0.5


def test_a_real_speaker_shuts_the_lips_on_p_b_m_and_opens_them_on_vowels():
    path = _need(phonemes.TALKING / "grid_pwij3p.mpg")
    figures, _, alignment = phonemes.measure_file(path, phonemes.transcript_file(path))
    assert [w.name for w in phonemes.spoken(alignment)] == "place white in j three please".split()
    assert figures["phone_r"] > 0.3 and abs(figures["phone_lag"]) <= 1
    assert figures["closure"] < 0.5 * figures["closure_chance"]
    assert 0.8 < figures["rounding"] < 1.0
