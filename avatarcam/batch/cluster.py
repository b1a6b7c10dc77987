"""The batch on Ray: the same jobs as Ray tasks, on a local Ray started for the run or a cluster.

Ray is the optional extra ``avatarcam[batch]`` (pip install 'avatarcam[batch]'); every node of a
cluster needs AvatarCam and Ray installed, at the driver's versions.

A worker node may have no profiles and no keys of its own, so the driver sends what a job needs
through Ray's object store once per batch (`Kit`): the files of the profiles the jobs name, this
installation's key and its content-credentials signer (or the user's configured certificate and
key), and the settings. A task writes the files it needs into a private temporary folder (in
memory where /dev/shm exists), renders, and removes them: a job there is rendered exactly as here.
So portraits and keys leave this machine only when ``--ray`` names a remote cluster. Audio is read
and outputs are written at the paths the jobs file and ``-o`` give, which on a cluster must be a
folder every node shares.

A local Ray listens on loopback only: Ray binds its servers (GCS, raylets, workers, agents) to the
node's address and, on Linux, takes the machine's network address for it unless told the node is a
single machine (`LOCAL_ONLY`, read when Ray is imported). A local Ray whose node is not on
loopback is refused before any job runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import AvatarCamError
from .jobs import Job
from .runner import ATTEMPTS, Backend
from .worker import JobResult, Worker, failed, setup_process

# Ray's switch for a one-machine Ray (its default on macOS and Windows): the node address is the
# loopback one, so every server it starts binds there. Read by Ray at import time.
LOCAL_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Kit:
    """What a Ray task needs of this machine (see the module docstring): files by their path in
    the data dir, and the settings; `key` names its contents."""

    key: str
    files: dict[str, bytes]
    settings: Settings


def make_kit(settings: Settings, profiles: set[str]) -> Kit:
    """The kit for jobs naming `profiles`; a profile that does not exist is left out (its jobs fail
    on the worker saying so, as they would here)."""
    from ..profiles import available_profiles
    from ..provenance.consent import KEY_FILE, installation_key
    from ..provenance.credentials import SIGNER_FILE, signing_identity

    # made here when missing: each task would otherwise make an installation of its own
    installation_key(settings)
    signing_identity(settings)
    data = Path(settings.data_dir)
    files = {name: (data / name).read_bytes() for name in (KEY_FILE, SIGNER_FILE) if (data / name).is_file()}
    entries = {e.name: e for e in available_profiles(settings)}
    for name in sorted(profiles & entries.keys()):
        for f in sorted(entries[name].dir.iterdir()):
            if f.is_file():
                files[f"profiles/{name}/{f.name}"] = f.read_bytes()
    if settings.c2pa_cert is not None and settings.c2pa_key is not None:
        files["c2pa/cert.pem"], files["c2pa/key.pem"] = settings.c2pa_cert.read_bytes(), settings.c2pa_key.read_bytes()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return Kit(digest.hexdigest()[:16], files, settings)


@contextlib.contextmanager
def materialized(kit: Kit, profile: str) -> Iterator[Settings]:
    """The kit's keys and `profile` written into a private temporary data dir for one job; yields
    the settings that use it, and removes it afterwards."""
    from ..provenance.consent import private_dir, write_private

    memory = Path("/dev/shm")  # in memory: nothing of the portrait or the keys reaches the node's disk
    with tempfile.TemporaryDirectory(prefix="avatarcam-batch-", dir=memory if memory.is_dir() else None) as tmp:
        data = Path(tmp)  # mkdtemp makes it 0700
        for name, content in kit.files.items():
            if name.startswith("profiles/") and not name.startswith(f"profiles/{profile}/"):
                continue
            private_dir((data / name).parent)
            write_private(data / name, content)
        update: dict[str, Path] = {"data_dir": data}
        if "c2pa/cert.pem" in kit.files:
            update |= {"c2pa_cert": data / "c2pa/cert.pem", "c2pa_key": data / "c2pa/key.pem"}
        yield kit.settings.model_copy(update=update)


# A Ray worker process runs many tasks: it keeps one Worker (the renderers it opened) per kit.
_RAY_WORKERS: dict[str, Worker] = {}


def _ray_job(kit: Kit, job: Job, out_dir: str) -> JobResult:
    """A Ray task: one job, rendered as a local worker renders it."""
    if kit.key not in _RAY_WORKERS:
        setup_process()
        _RAY_WORKERS[kit.key] = Worker()
    with materialized(kit, job.profile) as settings:
        return _RAY_WORKERS[kit.key].run(job, Path(out_dir), settings)


def import_ray(local: bool):
    """Ray, or an error saying how to install it; for a local Ray, imported on loopback only."""
    if local:
        os.environ.update(LOCAL_ONLY)  # before Ray's first import in this process (see LOCAL_ONLY)
    try:
        import ray
    except ImportError:
        raise AvatarCamError("--ray needs Ray: pip install 'avatarcam[batch]' (or leave out --ray for the "
                             "local pool of processes)") from None
    return ray


def on_ray(out_dir: Path, settings: Settings, address: str | None, cpus: int) -> Backend:
    """Ray tasks on `address` (``auto``, ``ray://HOST:10001``, HOST:PORT), or on a local Ray of `cpus`
    CPUs started for the batch when `address` is None."""
    ray = import_ray(local=address is None)

    def run(jobs: list[Job]) -> Iterator[JobResult]:
        kit = make_kit(settings, {job.profile for job in jobs})
        connect(ray, address, cpus)
        try:
            kit_ref = ray.put(kit)
            # a task whose worker process dies is run again by Ray (max_retries); an error inside
            # a job is not an exception here but a failed JobResult, so it is never retried
            task = ray.remote(num_cpus=1, max_retries=ATTEMPTS - 1)(_ray_job)
            pending = {task.remote(kit_ref, job, str(out_dir)): job for job in jobs}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ready[0])
                try:
                    yield ray.get(ready[0])
                except ray.exceptions.RayError as exc:
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    yield failed(job, f"lost on Ray after {ATTEMPTS} tries: {reason}")
        finally:
            ray.shutdown()
    return run


def connect(ray, address: str | None, cpus: int) -> None:
    """Start a local Ray of `cpus` CPUs on loopback (`address` None; refused and stopped if it is not
    on loopback), or connect to the cluster at `address`."""
    if address is not None:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            # Ray's client sends the cluster's token only when told the cluster wants one
            hint = ("; a cluster with token authentication (Ray's default) needs RAY_AUTH_MODE=token and its "
                    "token (RAY_AUTH_TOKEN, or ~/.ray/auth_token)" if address.startswith("ray://") else "")
            raise AvatarCamError(f"cannot connect to the Ray cluster at {address}: {exc}{hint}") from None
        return
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        _check_loopback(ray)
    except AvatarCamError:
        ray.shutdown()
        raise


def _check_loopback(ray) -> None:
    """Refuse a local Ray whose node listens beyond loopback (Ray was imported before
    `import_ray` could keep it there)."""
    addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
    if not addresses <= set(LOOPBACK):
        raise AvatarCamError(f"the local Ray listens on {', '.join(sorted(addresses))}, not on loopback only: "
                             f"Ray was imported before avatarcam batch started it; run the batch in a process "
                             f"of its own, or set {', '.join(f'{k}={v}' for k, v in LOCAL_ONLY.items())}")
