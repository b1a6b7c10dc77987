"""`avatarcam batch` end to end: real jobs files, real renders decoded back and verified, a real
pool of worker processes and a real local Ray (started by the test), workers killed mid-batch."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avatarcam import cli
from avatarcam.config import Settings
from avatarcam.profiles import load_profile, stored_records
from avatarcam.provenance.stamp import payload_for
from avatarcam.provenance.verify import verify_file
from avatarcam.video import iter_frames

from conftest import FACE_MODEL, PORTRAITS, SPEECH

SIZE = "256x144"
HAS_RAY = importlib.util.find_spec("ray") is not None
NO_RAY = "Ray is not installed (pip install 'avatarcam[batch]'; .ci/run installs it)"
REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> int:
    return cli.main(list(args))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A data home with a shared portrait enrolled as 'boy' (the bundled 'default' is there too)."""
    from avatarcam.enroll import enroll

    if not (PORTRAITS / "cartoon_boy.jpg").exists() or not FACE_MODEL.exists():
        pytest.skip("the shared portraits and face model live in ../shared beside the checkout")
    root = tmp_path_factory.mktemp("home")
    settings = Settings(data_dir=root / "data" / "avatarcam", cache_dir=root / "cache", face_model=FACE_MODEL)
    enroll(PORTRAITS / "cartoon_boy.jpg", "boy", consent="permission", subject="Cartoon Boy", settings=settings)
    return root


@pytest.fixture
def env(home, monkeypatch) -> dict[str, str]:
    """This test's process (and its children) use `home`'s profiles and installation key."""
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """A folder of short speech clips (2.5 s of two shared recordings: enough for the watermark) and
    one file that is not audio."""
    folder = tmp_path_factory.mktemp("clips")
    for name, source in (("one.wav", "en_ljspeech_LJ001-0001.wav"), ("two.wav", "en_codec2_speech_orig_16k.wav")):
        samples, rate = soundfile.read(SPEECH / source, dtype="float32")
        soundfile.write(folder / name, samples[: int(2.5 * rate)], rate)
    (folder / "noise.wav").write_bytes(os.urandom(3000))
    return folder


def write_jobs(folder: Path, rows: list[str], name: str = "jobs.csv") -> Path:
    path = folder / name
    path.write_text("\n".join(["profile,audio,output,size,seed,emotion", *rows]) + "\n")
    return path


GOOD = [f"boy,one.wav,boy-one,{SIZE},1,", f"default,two.wav,default-two.mp4,{SIZE},2,happy",
        f"boy,two.wav,boy-two.mp4,{SIZE},0,"]
BAD = [f"nobody,one.wav,nobody.mp4,{SIZE},0,", f"boy,noise.wav,noise.mp4,{SIZE},0,"]


def frames(path: Path) -> list[np.ndarray]:
    return list(iter_frames(path))


def same_frames(a: Path, b: Path) -> bool:
    fa, fb = frames(a), frames(b)
    return len(fa) == len(fb) > 0 and all(np.array_equal(x, y) for x, y in zip(fa, fb))


def summary(out: Path) -> dict[str, dict]:
    return {job["output"]: job for job in json.loads((out / "batch_summary.json").read_text())["jobs"]}


def assert_verifies(path: Path, profile: str) -> None:
    settings = Settings()
    verdict = verify_file(path, records=stored_records(settings))
    assert verdict.detection.found and verdict.credentials.holds, path
    assert verdict.detection.payload == payload_for(load_profile(profile, settings).consent, settings)
    assert [m.profile for m in verdict.matches] == [profile]


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def test_pool_writes_what_render_writes_reports_failures_and_resumes(env, clips, tmp_path, capsys):
    jobs = write_jobs(clips, GOOD + BAD)
    out = tmp_path / "out"
    assert run("batch", str(jobs), "-o", str(out), "--workers", "2", "-q") == 1  # two jobs fail
    captured = capsys.readouterr()
    jobs_by_output = summary(out)
    assert [jobs_by_output[o]["status"] for o in ("boy-one.mp4", "default-two.mp4", "boy-two.mp4")] == ["done"] * 3
    missing, noise = jobs_by_output["nobody.mp4"], jobs_by_output["noise.mp4"]
    assert (missing["status"], missing["row"]) == ("failed", 5) and "no profile named 'nobody'" in missing["reason"]
    assert (noise["status"], noise["row"]) == ("failed", 6) and "noise.wav" in noise["reason"]
    assert "row 5 (nobody.mp4) failed" in captured.err and "2 failed" in captured.out
    assert sorted(p.name for p in out.glob("*.mp4")) == ["boy-one.mp4", "boy-two.mp4", "default-two.mp4"]
    assert leftovers(out) == []
    for output, profile in (("boy-one.mp4", "boy"), ("default-two.mp4", "default"), ("boy-two.mp4", "boy")):
        assert_verifies(out / output, profile)

    # each job writes what `avatarcam render` writes for it (the seed, the emotion)
    for args, output in ((["--profile", "boy", "--audio", str(clips / "one.wav"), "--seed", "1"], "boy-one.mp4"),
                         (["--profile", "default", "--audio", str(clips / "two.wav"), "--seed", "2", "--emotion",
                           "happy"], "default-two.mp4")):
        rendered = tmp_path / f"render-{output}"
        assert run("render", *args, "-o", str(rendered), "--size", SIZE, "-q") == 0
        assert same_frames(rendered, out / output), output
    assert not same_frames(out / "boy-one.mp4", out / "boy-two.mp4")  # another clip and seed: another video

    # a rerun skips what is there and verifies, redoes a missing output and one that was changed
    (out / "boy-one.mp4").unlink()
    damaged = out / "boy-two.mp4"
    damaged.write_bytes(damaged.read_bytes()[:-5000])
    kept = (out / "default-two.mp4").stat().st_mtime_ns
    assert run("batch", str(write_jobs(clips, GOOD, "good.csv")), "-o", str(out), "--workers", "1", "-q") == 0
    again = summary(out)
    assert [again[o]["status"] for o in ("boy-one.mp4", "default-two.mp4", "boy-two.mp4")] == \
        ["done", "skipped", "done"]
    assert (out / "default-two.mp4").stat().st_mtime_ns == kept
    assert_verifies(damaged, "boy")


@pytest.mark.skipif(not HAS_RAY, reason=NO_RAY)
def test_local_ray_renders_the_same_frames_on_loopback_only(env, clips, tmp_path):
    """A real local Ray of 2 CPUs: the outputs are the pool's frame for frame, and while it runs no
    Ray process listens beyond loopback."""
    jobs = write_jobs(clips, GOOD + BAD[:1])
    pool, on_ray = tmp_path / "pool", tmp_path / "ray"
    assert run("batch", str(jobs), "-o", str(pool), "--workers", "2", "-q") == 1
    batch = subprocess.Popen([sys.executable, "-m", "avatarcam.cli", "batch", str(jobs), "-o", str(on_ray), "--ray",
                              "--workers", "2", "-q"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    listening: set[tuple[str, str]] = set()
    while batch.poll() is None:
        listening |= ray_listeners()
        time.sleep(0.2)
    log = batch.stdout.read()
    assert batch.returncode == 1, log  # the missing profile
    assert listening, "no Ray server was seen listening"
    assert {address for _, address in listening} <= {"127.0.0.1", "::1"}, listening
    by_output = summary(on_ray)
    assert by_output["nobody.mp4"]["status"] == "failed" and "no profile named 'nobody'" in by_output["nobody.mp4"]["reason"]
    for output in ("boy-one.mp4", "default-two.mp4", "boy-two.mp4"):
        assert by_output[output]["status"] == "done"
        assert same_frames(on_ray / output, pool / output), output
    assert_verifies(on_ray / "default-two.mp4", "default")
    assert leftovers(on_ray) == []


def ray_listeners() -> set[tuple[str, str]]:
    """(process name, address) of every listening TCP socket a Ray process holds (/proc)."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                sockets[fields[9]] = _address(fields[1].split(":")[0])
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            if "ray" not in name and "gcs_server" not in name:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in sockets:
                    found.add((name, sockets[target[8:-1]]))
        except OSError:  # the process ended while being looked at
            continue
    return found


def _address(hex_ip: str) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_ip)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    address = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return str(address.ipv4_mapped or address)  # an IPv4 address on a dual-stack socket as itself


def _kill_a_worker_mid_batch(command: list[str], out: Path, env: dict[str, str], is_worker) -> str:
    """Start the batch, kill one worker process (`is_worker(pid, cmdline)`) while it renders, and
    return the batch's output; the batch must still succeed."""
    batch = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and batch.poll() is None and time.monotonic() < deadline:
        if out.is_dir() and any(p.name.endswith(".part") for p in out.iterdir()):  # a job is being written
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                if is_worker(int(pid), cmdline, status, batch.pid):
                    os.kill(int(pid), signal.SIGKILL)
                    killed = pid
                    break
        time.sleep(0.05)
    log, _ = batch.communicate(timeout=300)
    assert killed is not None, f"no worker was found to kill\n{log}"
    assert batch.returncode == 0, log
    return log


KILL_JOBS = [f"boy,one.wav,k1.mp4,{SIZE},1,", f"boy,two.wav,k2.mp4,{SIZE},2,", f"default,one.wav,k3.mp4,{SIZE},3,",
             f"default,two.wav,k4.mp4,{SIZE},4,"]


def _pool_worker(pid: int, cmdline: str, status: str, batch: int) -> bool:
    return f"PPid:\t{batch}\n" in status and "multiprocessing" in cmdline and "resource_tracker" not in cmdline


def _ray_worker(pid: int, cmdline: str, status: str, batch: int) -> bool:
    return cmdline.startswith("ray::_ray_job")


@pytest.mark.parametrize("backend", ["pool", "ray"])
def test_a_worker_killed_mid_batch_loses_nothing(env, clips, tmp_path, backend):
    """SIGKILL a worker while it writes a video: its job runs again, the batch finishes with every
    output whole and verified, and no temporary file is left."""
    if backend == "ray" and not HAS_RAY:
        pytest.skip(NO_RAY)
    jobs = write_jobs(clips, KILL_JOBS)
    out = tmp_path / "out"
    options = ["--workers", "2"] if backend == "pool" else ["--ray", "--workers", "2"]
    _kill_a_worker_mid_batch([sys.executable, "-m", "avatarcam.cli", "batch", str(jobs), "-o", str(out), "-q",
                              *options], out, env, _pool_worker if backend == "pool" else _ray_worker)
    by_output = summary(out)
    assert all(job["status"] == "done" for job in by_output.values()), by_output
    assert leftovers(out) == []
    for row in KILL_JOBS:
        profile, _, output = row.split(",")[:3]
        assert_verifies(out / output, profile)


@pytest.mark.parametrize("name, text, error", [
    ("jobs.csv", "profile,audio,colour\nboy,one.wav,red\n", "jobs.csv:1: unknown column 'colour'"),
    ("jobs.csv", "profile,output\nboy,a.mp4\n", "jobs.csv:1: no 'audio' column"),
    ("jobs.csv", "profile,audio,size\nboy,one.wav,1280x720\nboy,two.wav,big\n", "jobs.csv:3: size 'big' is not WxH"),
    ("jobs.csv", "profile,audio\nboy,one.wav,extra\n", "jobs.csv:2: 3 cells, but the header names 2 columns"),
    ("jobs.csv", "profile,audio,seed\nboy,one.wav,x\n", "jobs.csv:2: seed 'x' is not a whole number"),
    ("jobs.csv", "profile,audio\nboy,one.wav\nboy,one.wav\n", "jobs.csv:3: writes boy-one.mp4, as line 2 does"),
    ("jobs.csv", "profile,audio\n", "jobs.csv: holds no jobs"),
    ("jobs.csv", "", "jobs.csv: is empty"),
    ("jobs.csv", "profile,audio,output\nboy,one.wav,../up.mp4\n", "jobs.csv:2: output '../up.mp4' is not a file name"),
    ("jobs.jsonl", '{"profile": "boy", "audio": "one.wav"}\n{"profile": "boy", "audio": \n',
     "jobs.jsonl:2: not JSON"),
    ("jobs.jsonl", '["boy", "one.wav"]\n', "jobs.jsonl:1: each line is one JSON object"),
    ("jobs.jsonl", '{"profile": "boy", "audio": "one.wav", "emotion": "bored"}\n',
     "jobs.jsonl:1: emotion 'bored' is not one of"),
    ("jobs.jsonl", '{"profile": "../boy", "audio": "one.wav"}\n', "jobs.jsonl:1: profile name '../boy' is not allowed"),
    ("jobs.txt", "profile,audio\nboy,one.wav\n", "a jobs file is .csv"),
])
def test_a_bad_jobs_file_is_one_error_line_and_writes_nothing(tmp_path, capsys, name, text, error):
    jobs = tmp_path / name
    jobs.write_text(text)
    out = tmp_path / "out"
    assert run("batch", str(jobs), "-o", str(out), "-q") == 2
    err = capsys.readouterr().err
    assert err.startswith("avatarcam: error: ") and error in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_no_workers_is_one_error_line(tmp_path, capsys, workers):
    """`--workers 0` asks for no workers: refused like -1, never taken for "all the cores"."""
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("profile,audio\nboy,one.wav\n")
    out = tmp_path / "out"
    assert run("batch", str(jobs), "-o", str(out), "-q", "--workers", workers) == 2
    err = capsys.readouterr().err
    assert err == "avatarcam: error: --workers must be 1 or more\n" and not out.exists()


def test_a_killed_workers_part_files_go_whatever_the_output_is_called(tmp_path):
    """The temporary files left behind are found by the output's name taken literally, brackets and
    all (as a pattern, "a[1].mp4" matches "a1.mp4" and never itself)."""
    from avatarcam.batch.jobs import Job
    from avatarcam.batch.runner import remove_partial

    parts = [tmp_path / ".a[1].mp4.x7.part", tmp_path / ".a1.mp4.x7.part"]
    for part in parts:
        part.write_bytes(b"half")
    job = Job(2, "boy", tmp_path / "one.wav", "a[1].mp4", (320, 180), 30, "dsp", 0, None, "head", "photo")
    remove_partial(tmp_path, [job])
    assert not parts[0].exists() and parts[1].exists()  # its own part gone, another output's left alone


def test_jobs_take_the_settings_defaults_and_read_paths_beside_the_jobs_file(tmp_path, monkeypatch):
    from avatarcam.batch.jobs import read_jobs

    (tmp_path / "clips").mkdir()
    jobs = tmp_path / "clips" / "jobs.jsonl"
    jobs.write_text('{"profile": "ada", "audio": "hi.wav"}\n\n'
                    '{"profile": "ada", "audio": "/abs/hi.ogg", "output": "b", "fps": 60, "seed": 7, '
                    '"engine": "dsp", "size": "640x360", "backdrop": "#203040", "framing": "shoulders"}\n')
    monkeypatch.chdir(tmp_path)
    first, second = read_jobs(Path("clips/jobs.jsonl"), Settings())
    assert (first.row, first.audio, first.output) == (1, tmp_path / "clips" / "hi.wav", "ada-hi.mp4")
    assert (first.size, first.fps, first.engine, first.seed, first.emotion, first.framing, first.backdrop) == \
        ((1280, 720), 30, "diffusion", 0, None, "head", "photo")
    assert (second.row, second.audio, second.output, second.size, second.fps, second.engine, second.seed) == \
        (3, Path("/abs/hi.ogg"), "b.mp4", (640, 360), 60, "dsp", 7)
    assert (second.framing, second.backdrop) == ("shoulders", "#203040")


def test_ray_missing_is_a_clear_error(env, clips, tmp_path, capsys, monkeypatch):
    """Without the extra, --ray says how to install it, before anything is written."""
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    out = tmp_path / "out"
    assert run("batch", str(write_jobs(clips, GOOD[:1], "one.csv")), "-o", str(out), "--ray", "-q") == 2
    assert "pip install 'avatarcam[batch]'" in capsys.readouterr().err
    assert not out.exists()


def test_a_worker_opens_a_profiles_renderer_once(env, clips, tmp_path, monkeypatch):
    """Two jobs of one profile at one size: the profile is loaded and its renderer opened once."""
    import avatarcam.profiles
    import avatarcam.render
    from avatarcam.batch.jobs import read_jobs
    from avatarcam.batch.worker import Worker

    opened = []
    open_renderer = avatarcam.render.open_renderer
    monkeypatch.setattr(avatarcam.render, "open_renderer", lambda profile, *a: opened.append(profile.name) or
                        open_renderer(profile, *a))
    settings = Settings()
    jobs = read_jobs(write_jobs(clips, [f"boy,one.wav,r1.mp4,{SIZE},1,", f"boy,two.wav,r2.mp4,{SIZE},2,",
                                        f"default,one.wav,r3.mp4,{SIZE},3,"]), settings)
    worker = Worker()
    results = [worker.run(job, tmp_path, settings) for job in jobs]
    assert [r.status for r in results] == ["done"] * 3 and all(r.frames == 75 for r in results)
    assert opened == ["boy", "default"]


def test_a_render_is_the_same_frame_for_frame_whatever_the_cores(env, clips, tmp_path):
    """The encoder runs a fixed number of threads: a Ray node with other cores, or a worker limited
    to one, writes the frames this machine writes (FFmpeg's own choice follows the cores, and
    x264's picture depends on its threads)."""
    outputs = {}
    for cores in ("all", "one"):
        outputs[cores] = tmp_path / f"{cores}.mp4"
        first = min(os.sched_getaffinity(0))
        subprocess.run([sys.executable, "-m", "avatarcam.cli", "render", "--profile", "default", "--audio",
                        str(clips / "one.wav"), "-o", str(outputs[cores]), "--size", SIZE, "-q"], env=env, check=True,
                       preexec_fn=None if cores == "all" else lambda: os.sched_setaffinity(0, {first}))
    assert same_frames(outputs["all"], outputs["one"])
