"""Lip sync on real speech: does the rendered mouth follow the voice, and stay shut in silence?

For every clip in ../shared/assets/speech and each motion engine (the diffusion model and the DSP
driver), over SEEDS seeds (`--seeds`, from `--seed`): the motion placed on the portrait's rest,
rendered at 512x512, encoded to H.264 as `avatarcam render` would, decoded and measured by the judge
in video mode. Each figure is the mean over the seeds: the seed moves the head, the gaze and the
blinks of both engines, and the judge's jawOpen with them (r against the loudness 0.70-0.76 over
eight seeds of the DSP driver on one clip), more than the engines differ. Reported per clip:
- r between the judge's jawOpen and the loudness envelope (audio.features.loudness_envelope, dB),
  at lag 0 and at the best lag in [-5, 5] frames (bars: r ≥ 0.6, best lag within ±1; a positive
  lag means the mouth moves after the sound);
- the share of silent frames (audio.features.silent_frames) where the judge's jawOpen < 0.1
  (bar ≥ 90%);
- the r ceiling: the highest r any mouth shut on every silent frame can reach, which says whether
  the two bars can be met together on a clip at all;
- for diagnosis: the same r for the commanded jawOpen (the driver alone), r between commanded
  and measured jawOpen (the renderer alone), and the share of speech frames with rounded lips
  (mouthFunnel + mouthPucker over ROUNDED_OVER): the judge reads a rounded mouth as more open,
  so lips rounded where the speech is not pull its jawOpen off the loudness;
- whether the face looks alive, as the judge sees it: head yaw standard deviation over speaking
  frames (bar 2-8 degrees), blinks per minute (eyeBlink crossing 0.5; bar 10-25), and jitter: the
  median absolute second difference of jawOpen and of the head angles from frame to frame.

    python -m bench.lipsync [--quick] [--engines diffusion dsp] [--portrait grace_hopper] [--clips a b] [--no-encode]
                            [--seed N] [--seeds N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from avatarcam import latent
from bench import judge

SIZE = (512, 512)
MAX_LAG = 5
R_BAR, LAG_BAR, CLOSED_BAR = 0.6, 1, 0.90
CLOSED_BELOW = 0.1  # judge jawOpen under this counts as a closed mouth
ROUNDED_OVER = 0.3  # commanded mouthFunnel + mouthPucker over this: rounded lips
QUICK_SECONDS = 30.0
SEEDS = 8
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


def clip_paths(names: list[str] | None) -> list[Path]:
    if not judge.SPEECH.is_dir():
        raise SystemExit(f"the shared speech clips are not at {judge.SPEECH}")
    paths = sorted(p for p in judge.SPEECH.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
    if names:
        paths = [p for p in paths if p.stem in names or p.name in names]
        if not paths:
            raise SystemExit(f"no clip named {names} in {judge.SPEECH}")
    return paths


def render_and_measure(renderer, frames: np.ndarray, encode: bool) -> tuple[judge.Measurements, dict]:
    """Render the frames, optionally through an H.264 file, and judge them in video mode."""
    timing = {}
    start = time.perf_counter()
    if not encode:
        with judge.Judge(video=True) as j:
            seen = j.measure(renderer.render(f) for f in judge.progress(frames, "render+judge"))
        timing["total_s"] = time.perf_counter() - start
        return seen, timing
    from avatarcam.camera.file import VideoSink
    from avatarcam.video import iter_frames

    with tempfile.TemporaryDirectory(prefix="avatarcam-lipsync-") as tmp:
        path = Path(tmp) / "clip.mp4"
        with VideoSink(path, size=SIZE, fps=latent.FPS) as sink:
            for frame in judge.progress(frames, "render"):
                sink.write(renderer.render(frame))
        timing["render_encode_s"] = time.perf_counter() - start
        start = time.perf_counter()
        with judge.Judge(video=True) as j:
            seen = j.measure(judge.progress(iter_frames(path), "judge", total=len(frames)))
        timing["judge_s"] = time.perf_counter() - start
    return seen, timing


def generate(engine: str, samples: np.ndarray, seed: int = 0, **options) -> np.ndarray:
    """The engine's motion for a clip, fed as a microphone would; `options` go to chain.motion_engine
    (default: the offline chunk, as `avatarcam render`)."""
    from avatarcam import chain
    from avatarcam.motion import diffusion

    options = {"chunk": diffusion.OFFLINE_CHUNK, **options}
    return np.stack(list(chain.frames(chain.file_chunks(samples, 16000),
                                      chain.motion_engine(engine, seed=seed, **options))))


def alive(seen: judge.Measurements, silent: np.ndarray, blink_at: float) -> dict:
    """Head motion, blinks (the judge's eyeBlink rising through `blink_at`) and jitter as the
    judge sees them."""
    yaw = np.degrees(seen.pose[:, 0])
    speaking = ~silent[: len(yaw)] & np.isfinite(yaw)
    blink = eyes_closing(seen)
    blinks = int(np.sum((blink[1:] > blink_at) & (blink[:-1] <= blink_at)))
    second = lambda x: float(np.nanmedian(np.abs(np.diff(x, 2))))  # noqa: E731
    return {"head_yaw_std_deg": float(np.nanstd(yaw[speaking])) if speaking.any() else float("nan"),
            "blinks_per_min": blinks / (len(blink) / latent.FPS / 60),
            "jitter_jaw": second(seen.channel("jawOpen")),
            "jitter_head_deg": float(np.mean([second(np.degrees(seen.pose[:, k])) for k in range(3)]))}


def eyes_closing(seen: judge.Measurements) -> np.ndarray:
    """The judge's eyeBlink per frame, both eyes' mean."""
    return (seen.channel("eyeBlinkLeft") + seen.channel("eyeBlinkRight")) / 2


def rest_readings(renderer, rest: np.ndarray) -> tuple[float, float, float]:
    """What the judge reads on the portrait's rest frame: jawOpen and eyeBlink, and eyeBlink with
    both eyes shut. It reads this renderer's fully shut eyes well under 1 (0.1-0.35:
    bench/results/roundtrip.md), so a blink is counted halfway between the two eyeBlinks."""
    shut = rest.copy()
    shut[[latent.index("eyeBlinkLeft"), latent.index("eyeBlinkRight")]] = 1.0
    seen = judge.measure_frames([renderer.render(rest), renderer.render(shut)])
    blink = eyes_closing(seen)
    return float(seen.channel("jawOpen")[0]), float(blink[0]), float(blink[1])


def r_ceiling(envelope: np.ndarray, silent: np.ndarray) -> float:
    """The highest r against the envelope that any mouth shut on every silent frame can reach (at lag
    0): among mouths at rest (0) on the silent frames and open no less than that on the others, the best
    follows the loudness above some level, max(0, envelope - c), there; c is searched. Silence is
    defined by the level, so on a song over a band it is the band's quieter half, and a mouth that
    stays shut through it cannot pass the r bar when this is under it. (The silence bar counts a
    judged jawOpen under 0.1 as shut: a mouth opening a little with the band there, a level meter,
    could go higher.)"""
    levels = np.linspace(float(envelope.min()), float(envelope[~silent].max()), 400) if (~silent).any() else []
    values = [judge.pearson(np.where(silent, 0.0, np.maximum(envelope - c, 0.0)), envelope) for c in levels]
    return float(np.nanmax(values)) if values else float("nan")


def run_clip(path: Path, portrait: judge.Portrait, renderer, quick: bool, encode: bool, engine: str,
             blink_at: float, seed: int = 0) -> dict:
    from avatarcam.audio.features import loudness_envelope, silent_frames, speech_loudness
    from avatarcam.audio.io import load_audio

    rate = 16000
    samples = load_audio(path, rate=rate)
    full_seconds = len(samples) / rate
    if quick and full_seconds > QUICK_SECONDS:
        samples = samples[: int(QUICK_SECONDS * rate)]
    motion = generate(engine, samples, seed)
    frames = judge.compose(motion, portrait.rig.rest)
    envelope = loudness_envelope(samples, rate, latent.FPS)
    silent = silent_frames(samples, rate, latent.FPS)
    seen, timing = render_and_measure(renderer, frames, encode)

    n = min(len(frames), len(envelope), len(seen))
    jaw_seen = seen.channel("jawOpen")[:n]
    jaw_cmd = frames[:n, latent.index("jawOpen")]
    envelope, silent = envelope[:n], silent[:n]
    lag, r_best, by_lag = judge.best_lag(jaw_seen, envelope, MAX_LAG)
    r0 = by_lag[0]
    cmd_lag, cmd_r_best, _ = judge.best_lag(jaw_cmd, envelope, MAX_LAG)
    closed = jaw_seen[silent] < CLOSED_BELOW
    rounded = frames[:n, latent.index("mouthFunnel")] + frames[:n, latent.index("mouthPucker")] > ROUNDED_OVER
    closed_share = float(closed.mean()) if silent.any() else float("nan")
    return {
        "seconds": n / latent.FPS, "full_seconds": full_seconds, "frames": n, "faces_found": int(seen.found[:n].sum()),
        "r_lag0": r0, "best_lag": lag, "r_best": r_best, "r_by_lag": by_lag,
        "r_speech_loudness": judge.pearson(jaw_seen, speech_loudness(envelope)),
        "r_ceiling": r_ceiling(envelope, silent),
        "silent_frames": int(silent.sum()), "closed_in_silence": closed_share,
        "silent_jaw_p90": float(np.nanpercentile(jaw_seen[silent], 90)) if silent.any() else float("nan"),
        "commanded_r_lag0": judge.pearson(jaw_cmd, envelope), "commanded_best_lag": cmd_lag,
        "commanded_r_best": cmd_r_best, "commanded_vs_measured_r": judge.pearson(jaw_cmd, jaw_seen),
        "commanded_vs_measured_gain": judge.gain(jaw_cmd, jaw_seen)[0],
        "rounded_share": float(rounded[~silent].mean()) if (~silent).any() else float("nan"),
        "pass_r": bool(np.isfinite(r_best) and r_best >= R_BAR), "pass_lag": abs(lag) <= LAG_BAR,
        "pass_closed": bool(np.isfinite(closed_share) and closed_share >= CLOSED_BAR),
        "timing": timing, **alive(seen, silent, blink_at),
    }


def _mean(runs: list[dict], key: str) -> float:
    return float(np.mean([run[key] for run in runs]))


def _spread(runs: list[dict], key: str = "r_best") -> str:
    values = [run[key] for run in runs]
    return f"{_mean(runs, key):.3f}" + (f" ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 else "")


def compare(model: list[dict], dsp: list[dict]) -> dict:
    """The model's r against the DSP driver's on one clip, seed by seed (the same seeds)."""
    difference = np.array([m["r_best"] - d["r_best"] for m, d in zip(model, dsp)])
    error = float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else float("nan")
    return {"difference": float(difference.mean()), "standard_error": error,
            "pass": bool(difference.mean() >= 0.0)}


def report(results: dict, comparison: dict, portrait: str, rest_jaw: float, blink: tuple[float, float, float],
           encode: bool, quick: bool, seeds: list[int]) -> str:
    lines = ["# Lip sync on real speech", "",
             f"Portrait {portrait} at 512x512, motion composed with the portrait's rest, "
             + ("encoded to H.264 and decoded, " if encode else "not encoded, ")
             + "judged by the Face Landmarker in video mode. Envelope: audio.features.loudness_envelope (dB). "
             f"Bars: r ≥ {R_BAR} (at the best lag), best lag within ±{LAG_BAR} frame in [-{MAX_LAG}, {MAX_LAG}] "
             f"(positive: mouth after sound), judge jawOpen < {CLOSED_BELOW} in ≥ {CLOSED_BAR:.0%} of silent frames."
             + (f" Quick run: clips cut to the first {QUICK_SECONDS:.0f} s." if quick else ""), "",
             f"Seeds {', '.join(map(str, seeds))}: every figure is the mean over them (r: the range in brackets), "
             "every bar is judged on the mean; the best lag of every seed is listed.", "",
             f"The judge reads jawOpen {rest_jaw:.3f} on the rest frame. Blinks: the judge's eyeBlink (mean of both "
             f"eyes) rising through {blink[0]:.2f}, halfway from its reading of the rest frame ({blink[1]:.2f}) to "
             f"that of both eyes shut ({blink[2]:.2f}).", ""]
    summaries = {engine: {name: summary(runs) for name, runs in clips.items()} for engine, clips in results.items()}
    for engine, clips in results.items():
        rows = []
        for name, runs in clips.items():
            c = summaries[engine][name]
            rows.append([name, f"{c['seconds']:.1f}", c["r_lag0"], _spread(runs), c["pass_r"], c["r_ceiling"],
                         "/".join(str(run["best_lag"]) for run in runs), c["pass_lag"],
                         f"{c['closed_in_silence']:.1%} of {c['silent_frames']:.0f}", c["pass_closed"],
                         c["commanded_r_lag0"], c["commanded_vs_measured_r"], f"{c['rounded_share']:.0%}",
                         c["head_yaw_std_deg"], c["blinks_per_min"], c["jitter_jaw"], c["jitter_head_deg"],
                         f"{c['faces_found']:.0f}/{c['frames']:.0f}"])
        lines += [f"## Engine: {engine}", "",
                  judge.table(["clip", "s", "r lag0", "r best", "r bar", "r ceiling", "lags", "lag bar", "closed in silence",
                               "silence bar", "cmd r", "cmd~seen r", "rounded", "yaw std °", "blinks/min",
                               "jitter jaw", "jitter head °", "faces"], rows, 3), ""]
    if comparison:
        model, dsp = results["diffusion"], results["dsp"]
        names = list(comparison)
        rows = []
        for name, c in comparison.items():
            rows.append([name, _spread(dsp[name]), _spread(model[name]),
                         f"{c['difference']:+.3f} ± {c['standard_error']:.3f}", c["pass"],
                         summaries["dsp"][name]["closed_in_silence"],
                         summaries["diffusion"][name]["closed_in_silence"]])
        mean = lambda e: float(np.mean([_mean(e[n], "r_best") for n in names]))  # noqa: E731
        lines += ["## Diffusion model against the DSP driver", "",
                  judge.table(["clip", "DSP r", "model r", "model - DSP (± s.e.)", "model ≥ DSP", "DSP closed",
                               "model closed"], rows, 3), "",
                  f"Mean r: DSP {mean(dsp):.3f}, model {mean(model):.3f}. model - DSP: the difference seed by seed "
                  "(the same seed for both), its mean and standard error.", ""]
    lines += ["r ceiling: the highest r against the envelope of any mouth shut on every silent frame (`r_ceiling`); "
              "cmd r: the driver's commanded jawOpen against the envelope (no renderer, no judge); "
              "cmd~seen: commanded against judged jawOpen (the renderer and judge alone); rounded: the share "
              f"of speech frames whose commanded mouthFunnel + mouthPucker is over {ROUNDED_OVER}. Jitter: median "
              "|second difference| per frame of the judge's jawOpen and head angles (mean of yaw, pitch, roll)."]
    return "\n".join(lines)


def summary(runs: list[dict]) -> dict:
    """One clip's runs (one per seed) as one: numbers averaged, bars judged on the averages."""
    numbers = {k: _mean(runs, k) for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {**numbers, "pass_r": bool(np.isfinite(numbers["r_best"]) and numbers["r_best"] >= R_BAR),
            "pass_lag": all(abs(run["best_lag"]) <= LAG_BAR for run in runs),
            "pass_closed": bool(np.isfinite(numbers["closed_in_silence"]) and numbers["closed_in_silence"] >= CLOSED_BAR)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"cut long clips to {QUICK_SECONDS:.0f} s")
    parser.add_argument("--engines", nargs="+", default=["diffusion", "dsp"], help="motion engines to compare")
    parser.add_argument("--portrait", default=judge.DEFAULT_PORTRAIT, help="portrait file stem (default grace_hopper)")
    parser.add_argument("--clips", nargs="+", help="clip file stems (default: all)")
    parser.add_argument("--no-encode", action="store_true", help="judge the rendered frames directly, skipping H.264")
    parser.add_argument("--seed", type=int, default=0, help="first motion seed")
    parser.add_argument("--seeds", type=int, default=SEEDS, help=f"seeds from --seed on (default {SEEDS}): head "
                        "motion, gaze and blinks, and so the judge's view of the mouth, vary with the seed")
    parser.add_argument("--name", default="lipsync", help="results file stem")
    args = parser.parse_args(argv)
    seeds = list(range(args.seed, args.seed + args.seeds))
    portrait = judge.load_portrait(args.portrait)
    renderer = judge.make_renderer(portrait, SIZE)
    rest_jaw, blink_rest, blink_shut = rest_readings(renderer, portrait.rig.rest)
    blink_at = (blink_rest + blink_shut) / 2
    results: dict[str, dict[str, list[dict]]] = {}
    for engine in args.engines:
        results[engine] = {}
        for path in clip_paths(args.clips):
            runs = results[engine][path.stem] = []
            for seed in seeds:
                start = time.perf_counter()
                c = run_clip(path, portrait, renderer, args.quick, not args.no_encode, engine, blink_at, seed)
                runs.append({"seed": seed, **c})
                print(f"{engine} {path.stem} seed {seed}: r {c['r_best']:.3f} at lag {c['best_lag']}, closed in "
                      f"silence {c['closed_in_silence']:.0%}, yaw std {c['head_yaw_std_deg']:.1f}°, "
                      f"{c['blinks_per_min']:.0f} blinks/min ({time.perf_counter() - start:.0f} s)", flush=True)
    comparison = ({name: compare(results["diffusion"][name], results["dsp"][name]) for name in results["diffusion"]
                   if name in results["dsp"]} if {"diffusion", "dsp"} <= set(results) else {})
    markdown = report(results, comparison, portrait.name, rest_jaw, (blink_at, blink_rest, blink_shut),
                      not args.no_encode, args.quick, seeds)
    judge.write_results(args.name, {"portrait": portrait.name, "seeds": seeds, "enrolled_by": portrait.how,
                                    "size": SIZE, "quick": args.quick, "encoded": not args.no_encode, "rest_jaw_open": rest_jaw,
                                    "blink": {"threshold": blink_at, "rest": blink_rest, "shut": blink_shut},
                                    "bars": {"r": R_BAR, "lag": LAG_BAR, "closed_in_silence": CLOSED_BAR},
                                    "product_compose": judge.uses_product_compose(), "engines": results,
                                    "model_against_dsp": comparison}, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
