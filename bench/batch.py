"""Many videos at once (issue 36): `avatarcam batch` in one process, on a local pool and on a local Ray.

Three shared portraits are enrolled (`avatarcam enroll`, consent public-domain) into a throw-away
data dir, and a jobs file is written: every portrait with every shared speech clip (the sung one
left out: at 133 s it would be most of the batch) and two seeds, 24 jobs. The same jobs file is
then run by the real command, each time into its own folder:

- ``process``: ``--workers 1``, one process on one core (the baseline);
- ``process_threaded`` (``--threaded``): the same worker with OpenCV's own threads, as `avatarcam
  render` runs (a diagnostic: it takes a share of the second core);
- ``pool``: ``--workers 2``, the local pool of worker processes;
- ``ray``: ``--ray --workers 2``, a local Ray of 2 CPUs started for the run.

Throughput is frames per second over the whole batch, as each batch's summary reports it: its
frames over its wall time, starting the workers (or Ray) included. Bar: the pool and Ray reach at
least 1.7x the one process.

Then the outputs are checked: every one verifies (watermark found, the payload of its profile's
consent record and this installation, content credentials that hold), the runs' outputs are
the same frame for frame (decoded: each file's C2PA signature differs), and so are `avatarcam
render`'s of the first job of each portrait.

    python -m bench.batch [--size 1280x720] [--workers 2] [--threaded] [--quick] [--name batch]

~10 min at 1280x720 (the default size of `render`) on the 2-core machine, ~5 min at 640x360;
--quick (12 jobs at 320x180) ~2 min.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import judge  # noqa: E402

BAR = 1.7
PORTRAITS = ("grace_hopper.jpg", "mona_lisa.jpg", "cartoon_boy.jpg")
SEEDS = (0, 1)


RAY_START_STOP = """
import sys, time
from avatarcam.batch import cluster
ray = cluster.import_ray(local=True)
start = time.perf_counter()
cluster.connect(ray, None, int(sys.argv[1]))
ray.shutdown()
print(time.perf_counter() - start)
"""


# One process as `avatarcam render` runs, OpenCV's own threads and all: the batch's worker without
# its one-core settings (a diagnostic beside the bar's `--workers 1`).
THREADED = """
import sys
from pathlib import Path
import threadpoolctl
from avatarcam.batch.jobs import read_jobs
from avatarcam.batch.runner import run_batch
from avatarcam.batch.worker import Worker
from avatarcam.config import load_settings
threadpoolctl.threadpool_limits(1, user_api="blas")  # as avatarcam's main
settings, out = load_settings(), Path(sys.argv[2])
out.mkdir()
worker = Worker()
run_batch(read_jobs(Path(sys.argv[1]), settings), out, lambda jobs: (worker.run(j, out, settings) for j in jobs),
          "1 process, OpenCV's own threads", 1, progress=False)
"""


def clips() -> list[Path]:
    return sorted(p for p in judge.SPEECH.iterdir() if p.suffix in (".wav", ".ogg") and not p.stem.startswith("sing"))


def avatarcam(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avatarcam.cli", *args], env=env, cwd=judge.REPO,
                          capture_output=True, text=True, check=False)


def frame_digests(path: Path) -> list[str]:
    """sha256 of each decoded frame (RGB): equal lists are the same video frame for frame."""
    from avatarcam.video import iter_frames

    return [hashlib.sha256(frame.tobytes()).hexdigest() for frame in iter_frames(path)]


def check_output(args: tuple[Path, str, str]) -> dict:
    """Verify one output as `avatarcam verify` does; the payload must be its profile's."""
    from avatarcam.config import Settings
    from avatarcam.profiles import load_profile, stored_records
    from avatarcam.provenance.stamp import payload_for
    from avatarcam.provenance.verify import verify_file

    path, profile, data_dir = args
    settings = Settings(data_dir=Path(data_dir))
    verdict = verify_file(path, records=stored_records(settings))
    want = payload_for(load_profile(profile, settings).consent, settings)
    return {"file": f"{path.parent.name}/{path.name}", "found": verdict.detection.found,
            "payload_ok": verdict.detection.payload == want, "credentials": verdict.credentials.state,
            "consent_record_named": [m.profile for m in verdict.matches] == [profile],
            "ok": verdict.detection.found and verdict.detection.payload == want and verdict.credentials.holds
                  and [m.profile for m in verdict.matches] == [profile]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="12 jobs (one seed) at 320x180")
    parser.add_argument("--threaded", action="store_true",
                        help="also one process with OpenCV's own threads, as `avatarcam render` runs (a diagnostic)")
    parser.add_argument("--name", default=None, help="results file stem (default batch, batch_quick)")
    args = parser.parse_args(argv)
    size = "320x180" if args.quick else args.size
    seeds = SEEDS[:1] if args.quick else SEEDS
    name = args.name or ("batch_quick" if args.quick else "batch")

    with tempfile.TemporaryDirectory(prefix="avatarcam-batch-bench-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "XDG_DATA_HOME": str(root / "data"), "XDG_CONFIG_HOME": str(root / "config"),
               "XDG_CACHE_HOME": str(root / "cache"), "AVATARCAM_FACE_MODEL": str(judge.face_model()),
               "PYTHONPATH": str(judge.REPO)}
        data_dir = root / "data" / "avatarcam"
        names = {}
        for picture in PORTRAITS:
            profile = Path(picture).stem.replace("_", "-")
            print(f"enrolling {picture} as {profile}", flush=True)
            done = avatarcam(env, "enroll", str(judge.PORTRAITS / picture), "--name", profile, "--consent",
                             "public-domain", "--subject", profile, "--min-face", "64")
            if done.returncode != 0:
                raise SystemExit(f"enrolling {picture} failed: {done.stderr.strip()}")
            names[picture] = profile
        jobs_file = root / "jobs.csv"
        rows = [{"profile": names[p], "audio": str(c), "output": f"{names[p]}-{c.stem}-s{s}.mp4", "size": size,
                 "seed": s} for p in PORTRAITS for c in clips() for s in seeds]
        with jobs_file.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"{len(rows)} jobs at {size}", flush=True)

        runs = {"process": ["--workers", "1"], "process_threaded": ["(OpenCV's own threads, as render)"],
                "pool": ["--workers", str(args.workers)], "ray": ["--ray", "--workers", str(args.workers)]}
        if not args.threaded:
            del runs["process_threaded"]
        results: dict[str, dict] = {}
        for run, options in runs.items():
            load_before = os.getloadavg()
            start = time.perf_counter()
            if run == "process_threaded":
                done = subprocess.run([sys.executable, "-c", THREADED, str(jobs_file), str(root / run)], env=env,
                                      cwd=judge.REPO, capture_output=True, text=True, check=False)
            else:
                done = avatarcam(env, "batch", str(jobs_file), "-o", str(root / run), "-q", *options)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"batch {run} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
            summary = json.loads((root / run / "batch_summary.json").read_text())
            results[run] = {"options": " ".join(options), "seconds": summary["seconds"], "frames": summary["frames"],
                            "fps": summary["frames"] / summary["seconds"], "command_wall_s": wall,
                            "done": summary["done"], "failed": summary["failed"],
                            "load_before": [round(v, 2) for v in load_before],
                            "load_after": [round(v, 2) for v in os.getloadavg()]}
            print(f"{run}: {summary['frames']} frames in {summary['seconds']:.1f} s = "
                  f"{results[run]['fps']:.1f} frames/s (load before {load_before[0]:.1f})", flush=True)
        base = results["process"]["fps"]
        for run in results:
            results[run]["speedup"] = results[run]["fps"] / base
            if "process_threaded" in results:
                results[run]["speedup_over_threaded"] = results[run]["fps"] / results["process_threaded"]["fps"]
        # a diagnostic: what starting and stopping the local Ray alone costs (inside the ray run's time)
        done = subprocess.run([sys.executable, "-c", RAY_START_STOP, str(args.workers)], env=env, cwd=judge.REPO,
                              capture_output=True, text=True, check=False)
        ray_start_stop = float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else float("nan")
        ray = results["ray"]
        ray["start_stop_s"] = ray_start_stop
        ray["speedup_without_start_stop"] = ray["frames"] / (ray["seconds"] - ray_start_stop) / base

        print("checking: the same frames in every run, and `avatarcam render`'s", flush=True)
        with ProcessPoolExecutor(args.workers) as pool:
            digests = dict(zip([(run, row["output"]) for run in runs for row in rows],
                               pool.map(frame_digests, [root / run / row["output"] for run in runs for row in rows])))
        mismatched = [row["output"] for row in rows if len({tuple(digests[run, row["output"]]) for run in runs}) != 1]
        rendered = []
        for picture in PORTRAITS:
            row = next(r for r in rows if r["profile"] == names[picture])
            out = root / f"render-{row['output']}"
            done = avatarcam(env, "render", "--profile", row["profile"], "--audio", row["audio"], "-o", str(out),
                             "--size", size, "--seed", str(row["seed"]), "-q")
            same = done.returncode == 0 and frame_digests(out) == digests["pool", row["output"]]
            rendered.append({"output": row["output"], "identical": same})
        print("checking: every output verifies with its profile's payload", flush=True)
        with ProcessPoolExecutor(args.workers) as pool:
            checks = list(pool.map(check_output, [(root / run / row["output"], row["profile"], str(data_dir))
                                                  for run in runs for row in rows]))

    verified = sum(c["ok"] for c in checks)
    passes = {run: results[run]["speedup"] >= BAR for run in ("pool", "ray")}
    data = {"size": size, "jobs": len(rows), "portraits": list(PORTRAITS), "clips": [c.name for c in clips()],
            "seeds": list(seeds), "workers": args.workers, "runs": results, "bar": BAR, "passes": passes,
            "identical_across_runs": not mismatched, "mismatched": mismatched, "render_identical": rendered,
            "verified": verified, "outputs": len(checks), "failed_checks": [c for c in checks if not c["ok"]]}
    env_info = judge.environment()
    lines = [f"# Batch rendering throughput ({len(rows)} jobs, {size})", "",
             f"{len(PORTRAITS)} shared portraits x {len(clips())} speech clips x {len(seeds)} seeds, the same jobs "
             f"file run by `avatarcam batch` on {env_info['cores']} cores ({env_info['cpu']}). Throughput: "
             f"frames over the batch's whole wall time (starting workers or Ray included).", "",
             judge.table(["run", "options", "frames", "seconds", "frames/s", "x one process",
                          "x one threaded process", "load before"],
                         [[run, r["options"], r["frames"], r["seconds"], r["fps"], r["speedup"],
                           r.get("speedup_over_threaded"), r["load_before"][0]] for run, r in results.items()]), "",
             "`process` is `--workers 1`: one worker on one core, as each worker of the pool (the bar's baseline). "
             "`process_threaded` (with --threaded) is the same worker with OpenCV's own pool of threads, as "
             "`avatarcam render` runs: it takes a share of the second core (a diagnostic).", "",
             f"Bar: pool and Ray at least {BAR}x one process: pool {'passes' if passes['pool'] else 'FAILS'}, "
             f"Ray {'passes' if passes['ray'] else 'FAILS'}.", "",
             f"Starting and stopping the local Ray alone takes {results['ray']['start_stop_s']:.1f} s (measured apart, "
             f"after the runs); without it the Ray run would reach {results['ray']['speedup_without_start_stop']:.2f}x "
             f"(a diagnostic, not the bar).", "",
             f"- outputs verified (watermark, its profile's payload, credentials that hold, the consent record "
             f"found): {verified} of {len(checks)}",
             f"- the runs' outputs the same frame for frame: {'yes' if not mismatched else 'NO: ' + ', '.join(mismatched)}",
             f"- `avatarcam render` of the first job of each portrait the same frame for frame as the batch's: "
             f"{', '.join(('yes' if r['identical'] else 'NO') + ' (' + r['output'] + ')' for r in rendered)}"]
    json_path, md_path = judge.write_results(name, data, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {json_path} and {md_path}")
    ok = all(passes.values()) and not mismatched and verified == len(checks) and all(r["identical"] for r in rendered)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
