"""How closely could a model follow the phones of real speech if it copied its teacher exactly?

The teacher's jaw (`avatarcam.corpus.teacher.track`: each phoneme's opening scaled by the clean
voice's loudness, never under `lips.MIN_SHAPE` of an open vowel) is made here from real speech: the
phones pocketsphinx aligns to each English clip of `bench.phonemes` and the clip's own loudness.
It is then scored as `bench.phonemes` scores a rendered lip gap: phone_r against each phone's
openness, and env_r against the loudness (diagnostic). A model trained on the teacher cannot be
expected to follow the phones better than this ceiling; people filmed speaking score phone_r median
0.47 and env_r 0.16-0.64 (`bench/results/phonemes.md`).

    python -m bench.teacher [--shapes 0.7,0.3] [--name teacher]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from avatarcam import latent
from bench import judge, phonemes


def teacher_jaw(labels: list[str], loudness_db: np.ndarray, min_shape: float) -> np.ndarray:
    """The teacher's jawOpen at each frame from its phone and the voice's loudness (the teacher's
    rule, `teacher.jaw_opening`, without its coarticulation: a two-frame mean stands in for it)."""
    from avatarcam.corpus.festival import ipa  # Festival's phones are ARPAbet too, pocketsphinx's a subset
    from avatarcam.corpus.phonemes import articulations
    from avatarcam.corpus.teacher import jaw_opening, speech_level

    opening = np.array([articulations(ipa(l.lower()))[0].targets[0] if l in phonemes.OPENNESS else 0.0
                        for l in labels])
    jaw = jaw_opening(speech_level(loudness_db), opening, min_shape)
    return np.convolve(jaw, [0.5, 0.5])[: len(jaw)]


def main(argv: list[str] | None = None) -> int:
    from avatarcam.audio.features import loudness_envelope
    from avatarcam.motion import lips

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default=f"0.7,{lips.MIN_SHAPE}",
                        help="MIN_SHAPE values to score (default: the one before and the shipped one)")
    parser.add_argument("--name", default="teacher", help="results file stem")
    args = parser.parse_args(argv)
    shapes = [float(s) for s in args.shapes.split(",")]
    clips = {}
    for speech in phonemes.speech_material(quick=False):
        alignment = phonemes.align(speech.samples, speech.text)
        loudness = loudness_envelope(speech.samples, phonemes.RATE, latent.FPS)
        labels = phonemes.phone_labels(alignment, np.arange(len(loudness)) / latent.FPS)
        clips[speech.name] = {}
        for shape in shapes:
            jaw = teacher_jaw(labels, loudness, shape)
            figures = phonemes.phone_measures(jaw, np.ones_like(jaw), labels, loudness)
            clips[speech.name][str(shape)] = {"phone_r": figures["phone_r"], "env_r": figures["env_r"]}
        print(speech.name, " ".join(f"{s}: phone_r {v['phone_r']:.2f} env_r {v['env_r']:.2f}"
                                    for s, v in clips[speech.name].items()), flush=True)
    headers = ["clip"] + [f"{k} (MIN_SHAPE {s})" for s in shapes for k in ("phone_r", "env_r")]
    rows = [[name] + [v[str(s)][k] for s in shapes for k in ("phone_r", "env_r")] for name, v in clips.items()]
    markdown = "\n".join([
        "# The teacher's jaw on real speech", "",
        __doc__.split("\n\n")[1].replace("\n", " "), "",
        judge.table(headers, rows), ""])
    print(markdown)
    json_path, md_path = judge.write_results(args.name, {"shapes": shapes, "clips": clips}, markdown)
    print(f"{json_path}, {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
