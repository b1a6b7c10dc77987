"""Festival's free American English voices, with the time of every phone they speak.

espeak-ng's voices are formant synthesis: every one of them shapes vowels by the same rules, and
a model that learned lips from them alone took real voices' vowels for rounded ones. Festival's
voices are made from recordings of people (kal and ked: diphones; slt: an HTS voice trained on
the CMU ARCTIC recordings), so they bring natural vowel spectra to the corpus. All three are in
Debian main under free licences that allow training a model and distributing it (the Festival
and CSTR licence, CMU ARCTIC's and HTS's BSD-style ones).

Festival runs as one subprocess per utterance: a Scheme script selects the voice, sets the
speed, synthesises, saves the wave and prints each segment's end time and each word's start.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from avatarcam.corpus.espeak import Phone, Utterance
from avatarcam.errors import AvatarCamError

# voice name -> (Scheme call selecting it, how its speed is set: "stretch" or "hts")
VOICES = {"kal": ("(voice_kal_diphone)", "stretch"), "ked": ("(voice_ked_diphone)", "stretch"),
          "slt": ("(voice_cmu_us_slt_arctic_hts)", "hts")}
PACKAGES = "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
NORMAL_WPM = 175.0  # espeak-ng's default speed, which Festival's own speed stands for

# Festival's US English phones (the radio phone set) in IPA, for `avatarcam.corpus.phonemes`.
_IPA = {
    "aa": "ɑ", "ae": "æ", "ah": "ʌ", "ao": "ɔ", "aw": "aʊ", "ax": "ə", "axr": "ɚ", "ay": "aɪ", "eh": "ɛ",
    "er": "ɝ", "ey": "eɪ", "ih": "ɪ", "iy": "i", "ow": "oʊ", "oy": "ɔɪ", "uh": "ʊ", "uw": "u",
    "b": "b", "ch": "tʃ", "d": "d", "dh": "ð", "dx": "ɾ", "el": "l", "em": "m", "en": "n", "f": "f",
    "g": "ɡ", "hh": "h", "jh": "dʒ", "k": "k", "l": "l", "m": "m", "n": "n", "ng": "ŋ", "nx": "n",
    "p": "p", "r": "ɹ", "s": "s", "sh": "ʃ", "t": "t", "th": "θ", "v": "v", "w": "w", "y": "j",
    "z": "z", "zh": "ʒ",
}
_SILENCE = {"pau", "h#", "brth"}


def ipa(phone: str) -> str:
    """The IPA of one of Festival's US English phones."""
    try:
        return _IPA[phone]
    except KeyError:
        raise AvatarCamError(f"Festival spoke a phone AvatarCam does not know: {phone!r}") from None


def executable() -> str:
    """Festival's program, or an error that says how to install it and its voices."""
    path = shutil.which("festival")
    if path is None:
        raise AvatarCamError(f"Festival is not installed: the corpus needs it (apt-get install {PACKAGES})")
    return path


def _script(text: str, voice: str, speed: float, wave: Path) -> str:
    select, how = VOICES[voice]
    quoted = text.replace("\\", " ").replace('"', " ")
    rate = NORMAL_WPM / speed  # > 1: slower
    pace = (f"(Parameter.set 'Duration_Stretch {rate:.4f})" if how == "stretch" else
            f"(set! hts_engine_params (append hts_engine_params (list (list \"-r\" {1.0 / rate:.4f}))))")
    return f"""{select}
{pace}
(set! utt (Utterance Text "{quoted}"))
(utt.synth utt)
(utt.save.wave utt "{wave}" 'riff)
(mapcar (lambda (s) (format t "S %s %f\\n" (item.name s) (item.feat s "end"))) (utt.relation.items utt 'Segment))
(mapcar (lambda (w) (format t "W %f\\n" (item.feat w "word_start"))) (utt.relation.items utt 'Word))
"""


def parse(lines: list[str], duration: float) -> tuple[list[Phone], list[float]]:
    """Phones (IPA, spans in seconds, silences left out) and word starts from the script's output."""
    phones, words, start = [], [], 0.0
    for line in lines:
        kind, *fields = line.split()
        if kind == "S":
            name, end = fields[0], min(float(fields[1]), duration)
            if name not in _SILENCE and end > start:
                phones.append(Phone(ipa(name), start, end))
            start = max(start, end)
        elif kind == "W":
            words.append(float(fields[0]))
    return phones, words


def speak(text: str, voice: str, speed: float = NORMAL_WPM) -> Utterance:
    """Synthesise English `text` with one of VOICES at about `speed` words per minute."""
    if voice not in VOICES:
        raise AvatarCamError(f"no Festival voice {voice!r} (one of {', '.join(VOICES)})")
    with tempfile.TemporaryDirectory(prefix="avatarcam-festival-") as tmp:
        wave = Path(tmp) / "speech.wav"
        script = Path(tmp) / "speak.scm"
        script.write_text(_script(text, voice, speed, wave), encoding="utf-8")
        done = subprocess.run([executable(), "--batch", str(script)], capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not wave.exists():
            raise AvatarCamError(f"Festival could not speak {text[:40]!r} with {voice} "
                                 f"(is {PACKAGES} installed?): {done.stderr.strip()[-300:]}")
        samples, rate = soundfile.read(wave, dtype="float32")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    lines = [line for line in done.stdout.splitlines() if line[:2] in ("S ", "W ")]
    return Utterance(np.ascontiguousarray(samples), int(rate), *parse(lines, len(samples) / rate))
