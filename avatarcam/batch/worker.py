"""One batch job in a worker process: resume check, render, result.

A job renders with `offline.render_clip`, the function `avatarcam render` calls, so its output is
what `render` writes for the same options. A `Worker` keeps the renderers it opened (a profile at a
size, framing and backdrop) for its next jobs: opening one reads and checks the profile and builds
its scene, work a batch of one portrait's clips should do once per process.

Whatever goes wrong in a job (a missing profile, unreadable audio, a full disk, a bug) becomes a
failed `JobResult` with the reason: one job's failure never stops the others.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import Settings, with_look
from ..errors import AvatarCamError
from .jobs import Job

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
RENDERERS_KEPT = 8  # renderers a worker keeps, least recently used dropped first (tens of MB each at 720p)


@dataclass
class JobResult:
    row: int
    output: str
    profile: str
    status: str  # DONE, SKIPPED (its output was there and verified) or FAILED
    frames: int = 0
    seconds: float = 0.0  # the job's own time in its worker
    reason: str = ""  # why it failed

    def to_dict(self) -> dict:
        return asdict(self)


def failed(job: Job, reason: str) -> JobResult:
    return JobResult(job.row, job.output, job.profile, FAILED, reason=reason)


def setup_process() -> None:
    """A pool or Ray worker process keeps to about one core, so that ``--workers N`` means N cores: one
    BLAS thread, as `avatarcam`'s main sets (the motion network's matrices are too small to share),
    and one OpenCV thread (OpenCV's own pool would take a share of another core, which belongs to
    another worker; its results do not depend on its threads, so the frames stay those `render`
    makes). Only warnings are logged: a line per job would tear the progress bar."""
    import cv2
    import threadpoolctl

    threadpoolctl.threadpool_limits(1, user_api="blas")
    cv2.setNumThreads(1)
    logging.getLogger("avatarcam").setLevel(logging.WARNING)


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """`setup_process`'s OpenCV thread and log level for a while, in the command's own process
    (``--workers 1``; `avatarcam`'s main already keeps BLAS on one thread), restored afterwards."""
    import cv2

    log = logging.getLogger("avatarcam")
    threads, level = cv2.getNumThreads(), log.level
    cv2.setNumThreads(1)
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)
        log.setLevel(level)


class Worker:
    """Runs jobs one after another, keeping the renderers it opens (see the module docstring)."""

    def __init__(self) -> None:
        self._renderers: OrderedDict[tuple, tuple[object, object]] = OrderedDict()

    def run(self, job: Job, out_dir: Path, settings: Settings) -> JobResult:
        """Render `job` into `out_dir` with `settings` (whose data dir holds the profile and keys);
        a job whose output is already there and verifies is skipped."""
        start = time.perf_counter()
        try:
            status, frames = self._run(job, out_dir / job.output, settings)
        except AvatarCamError as exc:
            return failed(job, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in one job is reported; the batch goes on
            return failed(job, f"{type(exc).__name__}: {exc}")
        return JobResult(job.row, job.output, job.profile, status, frames, time.perf_counter() - start)

    def _run(self, job: Job, output: Path, settings: Settings) -> tuple[str, int]:
        from ..audio.io import AUDIO_RATE, load_audio
        from ..offline import ClipOptions, render_clip

        settings = with_look(settings, job.framing, job.backdrop)
        profile, renderer = self._renderer(job, settings)
        if output.exists() and verifies(output, profile, settings):
            return SKIPPED, 0
        samples = load_audio(job.audio, AUDIO_RATE)
        options = ClipOptions(fps=job.fps, engine=job.engine, seed=job.seed, emotion=job.emotion)
        return DONE, render_clip(samples, profile, renderer, settings, options, output=output)

    def _renderer(self, job: Job, settings: Settings):
        from ..profiles import load_profile
        from ..render import open_renderer

        key = (job.profile, job.size, settings.framing, settings.backdrop, settings.renderer)
        if key in self._renderers:
            self._renderers.move_to_end(key)
            return self._renderers[key]
        profile = load_profile(job.profile, settings)
        opened = profile, open_renderer(profile, job.size, settings.renderer, settings.framing, settings.backdrop)
        self._renderers[key] = opened
        if len(self._renderers) > RENDERERS_KEPT:
            self._renderers.popitem(last=False)
        return opened


def verifies(output: Path, profile, settings: Settings) -> bool:
    """Whether `output` is a finished render of `profile` from this installation, as `avatarcam
    verify` reads it: its watermark carries the payload this job would write, and its content
    credentials hold (any change to the file since it was signed breaks them)."""
    from ..provenance.stamp import payload_for
    from ..provenance.verify import verify_file

    try:
        verdict = verify_file(output)  # the watermark and credentials alone: no consent record to name
    except AvatarCamError:
        return False
    return (verdict.detection.found and verdict.detection.payload == payload_for(profile.consent, settings)
            and verdict.credentials.holds)
