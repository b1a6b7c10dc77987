"""What content credentials cost: signing's share of a 60-second render's wall time, in one run.

One render of 60 s of real speech at 1280x720 into an MP4, as `avatarcam render` makes it (the
chain, the provenance stage, the H.264 + AAC sink), with its content credentials. The signer is
wrapped to time its own steps: making the signer (loading or creating the installation's
certificate, once per render) and signing the finished file (hashing it, signing the claim, writing
the signed copy and renaming it). Signing's share is their sum over the rest of the wall time,
which is what the render would take without them. The DSP motion driver is used: the fastest
engine, so the render is shortest and signing's share the largest (a bound for the learned model).

The signed file is then read back (`credentials.read_credentials`) to check what was measured
is a valid manifest. Bar (issue 35): signing adds at most 2%.

    python -m bench.c2pa [--seconds 60] [--size 1280x720] [--name c2pa]
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

from bench import judge  # noqa: E402

BAR = 0.02


class TimedSigner:
    """A content signer whose file signing is timed (sinks.FileSigner)."""

    def __init__(self, signer) -> None:
        self.signer = signer
        self.sign_s = 0.0

    def sign_file(self, source: Path, final: Path) -> list[Path]:
        start = time.perf_counter()
        try:
            return self.signer.sign_file(source, final)
        finally:
            self.sign_s += time.perf_counter() - start

    def sign_png(self, png: bytes, title: str) -> bytes:
        return self.signer.sign_png(png, title)


def speech(seconds: float) -> np.ndarray:
    """`seconds` of the shared speech clips, one after another (16 kHz mono)."""
    from avatarcam.audio.io import load_audio

    clips = [load_audio(p, rate=16000) for p in sorted(judge.SPEECH.iterdir())
             if p.suffix in (".wav", ".ogg") and not p.stem.startswith("sing")]
    need = int(seconds * 16000)
    out = np.concatenate(clips * (need // sum(map(len, clips)) + 1))
    return out[:need]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--name", default="c2pa", help="results file stem")
    args = parser.parse_args(argv)

    from avatarcam import chain
    from avatarcam.camera.file import VideoSink
    from avatarcam.config import Settings, parse_size
    from avatarcam.profiles import load_profile
    from avatarcam.provenance.credentials import content_signer, read_credentials
    from avatarcam.provenance.stamp import Provenance
    from avatarcam.render import open_renderer

    size = parse_size(args.size)
    samples = speech(args.seconds)
    with tempfile.TemporaryDirectory(prefix="avatarcam-c2pa-bench-") as tmp:
        # a fresh installation: the first render also makes the certificate (the costlier case)
        settings = Settings(data_dir=Path(tmp) / "data")
        out = Path(tmp) / "talk.mp4"
        print(f"rendering {args.seconds:.0f} s at {args.size} into {out.name} with content credentials", flush=True)
        start = time.perf_counter()
        profile = load_profile("default", settings)
        renderer = open_renderer(profile, size, settings.renderer, settings.framing, settings.backdrop)
        t0 = time.perf_counter()
        signer = TimedSigner(content_signer(profile, settings))
        setup_s = time.perf_counter() - t0
        with VideoSink(out, size, 30, audio=samples, audio_rate=16000, signer=signer) as sink:
            frames = chain.run(chain.file_chunks(samples, 16000), chain.motion_engine("dsp", seed=0), renderer,
                               renderer.scene.rig.rest, sink, provenance=Provenance.for_profile(profile, size, settings))
        wall_s = time.perf_counter() - start
        report = read_credentials(out)
        size_bytes = out.stat().st_size
    signing_s = setup_s + signer.sign_s
    share = signing_s / (wall_s - signing_s)
    data = {"seconds": args.seconds, "size": args.size, "frames": frames, "engine": "dsp",
            "render_wall_s": wall_s, "signer_setup_s": setup_s, "sign_file_s": signer.sign_s,
            "signing_s": signing_s, "signing_share": share, "bar": BAR, "passes": share <= BAR,
            "file_bytes": size_bytes, "manifest_state": report.state, "manifest_by_avatarcam": report.by_avatarcam}
    lines = [f"# Content credentials: signing's cost ({args.seconds:.0f} s render, {args.size})", "",
             "One render with the DSP driver (the fastest engine: the largest share for signing), its signing "
             "steps timed inside it.", "",
             "| what | value |", "|---|---|",
             f"| render wall time (all of it) | {wall_s:.2f} s ({frames} frames) |",
             f"| making the signer (certificate made on first use) | {setup_s * 1000:.1f} ms |",
             f"| signing the finished file ({size_bytes / 1e6:.1f} MB) | {signer.sign_s * 1000:.1f} ms |",
             f"| signing's share of the render without it | **{share * 100:.2f}%** (bar: <= {BAR * 100:.0f}%: "
             f"{'passes' if share <= BAR else 'FAILS'}) |",
             f"| manifest read back | {report.state} ({'AvatarCam' if report.by_avatarcam else 'not AvatarCam'}) |"]
    json_path, md_path = judge.write_results(args.name, data, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")
    return 0 if share <= BAR and report.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
