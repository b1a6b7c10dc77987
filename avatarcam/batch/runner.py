"""Running a batch: the backends, the progress bar, the summary.

A backend takes the jobs and yields a `JobResult` for each as it finishes, in any order:

- `in_process`: one worker, in this process (``--workers 1``);
- `process_pool`: N worker processes on this machine (the default, N = the cores); nothing listens
  on the network, the workers talk to this process through pipes;
- ``cluster.on_ray``: Ray tasks, on a local Ray started for the run or on a cluster (``--ray``).

Each worker keeps to about one core (`worker.setup_process`: OpenCV on one thread), so ``--workers
N`` takes about N cores: the workers, not each worker's own threads, share the machine.

Longest clips go first, so the last jobs to finish are short ones and no worker idles long while
another finishes a long clip. A worker process that dies (killed, out of memory) takes its job
with it: the job is run again, up to `ATTEMPTS` times in all, then reported as failed. Outputs are
written under a temporary name and renamed when complete, so a killed job leaves no file under
its name; the temporary files a killed worker leaves are removed when the batch ends.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..config import Settings
from .jobs import Job
from .worker import DONE, FAILED, SKIPPED, JobResult, Worker, failed, one_core, setup_process

ATTEMPTS = 3  # tries a job gets when worker processes die under it
SUMMARY = "batch_summary.json"

Backend = Callable[[list[Job]], Iterator[JobResult]]


def default_workers() -> int:
    """The machine's cores."""
    return os.cpu_count() or 1


def longest_first(jobs: list[Job]) -> list[Job]:
    """The jobs, longest audio first (unreadable audio counts as none: that job fails at once)."""
    import soundfile

    def seconds(job: Job) -> float:
        try:
            return float(soundfile.info(str(job.audio)).duration)
        except Exception:  # noqa: BLE001 - a missing or odd file: its job reports why when it runs
            return 0.0
    return sorted(jobs, key=lambda j: (-seconds(j), j.row))


# --- local backends ---------------------------------------------------------------------------

def in_process(out_dir: Path, settings: Settings) -> Backend:
    def run(jobs: list[Job]) -> Iterator[JobResult]:
        worker = Worker()
        with one_core():  # one worker, one core, as each of the pool's
            for job in jobs:
                yield worker.run(job, out_dir, settings)
    return run


def process_pool(out_dir: Path, settings: Settings, workers: int) -> Backend:
    def run(jobs: list[Job]) -> Iterator[JobResult]:
        tries = {job.row: 0 for job in jobs}
        todo = jobs
        while todo:
            again: list[Job] = []
            # spawn, not fork: a fresh interpreter per worker, no copy of this process's threads
            # (tqdm's monitor) or locks in a state only they could release
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_start_pool_worker, initargs=(settings,)) as pool:
                pending = {pool.submit(_pool_job, job, out_dir): job for job in todo}
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        job = pending.pop(future)
                        tries[job.row] += 1
                        try:
                            yield future.result()
                        except BrokenProcessPool:
                            # a worker died: every job not finished is lost with the pool (Python
                            # cannot tell which was the dying one's), so each is tried again
                            if tries[job.row] < ATTEMPTS:
                                again.append(job)
                            else:
                                yield failed(job, f"its worker process died each of the {ATTEMPTS} times it ran "
                                                  f"(killed, or out of memory?)")
            todo = again
    return run


# A pool's initializer can hand its work to the tasks that follow only through the module: each
# worker process holds its Worker (the renderers it opened) and the batch's settings here.
_POOL_WORKER: tuple[Worker, Settings] | None = None


def _start_pool_worker(settings: Settings) -> None:
    global _POOL_WORKER
    setup_process()
    _POOL_WORKER = Worker(), settings


def _pool_job(job: Job, out_dir: Path) -> JobResult:
    assert _POOL_WORKER is not None, "_start_pool_worker runs first in every pool process"
    worker, settings = _POOL_WORKER
    return worker.run(job, out_dir, settings)


# --- the batch --------------------------------------------------------------------------------

@dataclass
class Summary:
    backend: str
    workers: int
    started: str
    seconds: float  # the whole batch's wall time, start-up of workers or Ray included
    results: list[JobResult]
    jobs: list[Job]

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def ok(self) -> bool:
        return self.count(FAILED) == 0

    def to_dict(self) -> dict:
        by_row = {job.row: job for job in self.jobs}
        return {"backend": self.backend, "workers": self.workers, "started": self.started,
                "seconds": round(self.seconds, 3), "frames": self.frames, "fps": round(self.fps, 2),
                "done": self.count(DONE), "skipped": self.count(SKIPPED), "failed": self.count(FAILED),
                "jobs": [{**by_row[r.row].to_dict(), **r.to_dict(), "seconds": round(r.seconds, 3)}
                         for r in self.results]}


def run_batch(jobs: list[Job], out_dir: Path, backend: Backend, name: str, workers: int,
              progress: bool = True) -> Summary:
    """Run every job through `backend` with a progress bar; returns the summary (also written as
    JSON in `out_dir`). `out_dir` must exist."""
    from tqdm import tqdm

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    results: list[JobResult] = []
    frames = failed = 0
    try:
        with tqdm(total=len(jobs), unit="job", desc="batch", disable=not progress, file=sys.stderr) as bar:
            for result in backend(longest_first(jobs)):
                results.append(result)
                frames += result.frames
                failed += result.status == FAILED
                if result.status == FAILED:
                    bar.write(f"row {result.row} ({result.output}) failed: {result.reason}", file=sys.stderr)
                bar.set_postfix(done=len(results) - failed, failed=failed,
                                fps=f"{frames / max(time.perf_counter() - start, 1e-9):.1f}", refresh=False)
                bar.update()
    finally:
        remove_partial(out_dir, jobs)
    results.sort(key=lambda r: r.row)
    summary = Summary(name, workers, started, time.perf_counter() - start, results, jobs)
    write_summary(out_dir / SUMMARY, summary)
    return summary


def remove_partial(out_dir: Path, jobs: list[Job]) -> None:
    """Remove the temporary files of this batch's outputs (`camera.sinks.temp_file`'s and the
    signer's ``.NAME.*.part``) that a killed worker left: no worker of the batch runs any more."""
    for job in jobs:
        for part in out_dir.glob(f".{glob.escape(job.output)}.*.part"):
            part.unlink(missing_ok=True)


def write_summary(path: Path, summary: Summary) -> None:
    """The summary as JSON, written whole or not at all."""
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def table(summary: Summary) -> str:
    """The summary for people: a line per job, then the totals."""
    width = max([len("output")] + [len(r.output) for r in summary.results])
    lines = [f"{'row':>5}  {'output':<{width}}  {'status':<7}  {'frames':>6}  {'seconds':>7}  reason"]
    for r in summary.results:
        lines.append(f"{r.row:>5}  {r.output:<{width}}  {r.status:<7}  {r.frames:>6}  {r.seconds:>7.1f}  {r.reason}")
    lines.append(f"{len(summary.results)} jobs: {summary.count(DONE)} done, {summary.count(SKIPPED)} skipped "
                 f"(already there and verified), {summary.count(FAILED)} failed; {summary.frames} frames in "
                 f"{summary.seconds:.1f} s ({summary.fps:.1f} frames/s) on {summary.backend}")
    return "\n".join(lines)
