"""The Dask side of a sweep: a cluster to run on, jobs submitted grouped by data, and
results streamed back as jobs finish.

By default a `LocalCluster` of N worker processes (one thread each: a replay is
single-threaded Python), or an existing cluster by address (`tcp://HOST:PORT`), whose
workers must run the same tapeloop code (checked before anything is submitted).

Jobs reading the same days are sent to the same worker first (its column cache
holds those days decoded), spreading the groups over the workers; the scheduler
still moves work to an idle worker. A job lost with its worker (killed, out of
memory) is rescheduled by Dask, up to `distributed.scheduler.allowed-failures`
times; a job's own failure is its result row (`job.run_job` never raises), so it
is not retried: a replay is deterministic and would fail again.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.config import Config
from daemon.errors import UserError, one_line
from daemon.research.grid import Job
from daemon.research.job import code_version, run_job

if TYPE_CHECKING:
    from distributed import Client


@contextmanager
def connect(workers: int | None = None, scheduler: str | None = None) -> Iterator[Client]:
    """A client on a new LocalCluster of `workers` processes (default: one per core),
    or on the cluster at `scheduler`."""
    import dask
    from distributed import Client, LocalCluster

    # Quiet: the sweep reports its own progress; Dask's own warnings stay on stderr.
    for name in ("distributed", "distributed.nanny", "distributed.worker",
                 "distributed.scheduler", "distributed.core"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with dask.config.set({"distributed.worker.daemon": False,
                          "distributed.admin.tick.limit": "60s"}):
        if scheduler is not None:
            _reachable(scheduler)
            try:
                client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise UserError(f"--scheduler {scheduler}: cannot connect ({_first_line(exc)})"
                                ) from None
            try:
                _check_versions(client, scheduler)
                yield client
            finally:
                client.close()
            return
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()


def _check_versions(client: Client, scheduler: str) -> None:
    """Every worker runs the code this client runs (else results would differ)."""
    if not client.scheduler_info().get("workers"):
        client.wait_for_workers(1, timeout=30)
    try:
        theirs = client.run(code_version)
    except Exception as exc:  # a worker without tapeloop installed
        raise UserError(f"--scheduler {scheduler}: a worker cannot import tapeloop "
                        f"({_first_line(exc)}); install the same version on every worker"
                        ) from None
    ours = code_version()
    stale = sorted(addr for addr, v in theirs.items() if v != ours)
    if stale:
        raise UserError(f"--scheduler {scheduler}: worker {stale[0]} runs other tapeloop code "
                        f"({theirs[stale[0]]}, here {ours}); install this version there")


def _reachable(scheduler: str) -> None:
    """A refused or unknown TCP address is told at once: Dask's client retries it
    until its timeout (10 s). Other schemes are left to Dask's own connect."""
    from urllib.parse import urlsplit

    parts = urlsplit(scheduler if "://" in scheduler else f"tcp://{scheduler}")
    try:
        host, port = parts.hostname, parts.port or 8786  # Dask's default port
    except ValueError:  # a port that is not a number: Dask says so
        return
    if parts.scheme not in ("tcp", "tls") or not host:
        return
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as exc:
        raise UserError(f"--scheduler {scheduler}: cannot connect ({one_line(exc)})"
                        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def run_jobs(client: Client, config: Config, jobs: Sequence[Job], data: str,
             runs_dir: Path | None = None) -> Iterator[tuple[Job, dict[str, Any]]]:
    """Submit `jobs` and yield (job, result row) as each finishes, in finishing order.
    With `runs_dir`, each job's run directory is kept as `runs_dir/<job_id>`."""
    from distributed import as_completed

    if not jobs:
        return
    shared = client.scatter(config, broadcast=True, hash=False)
    workers = sorted(client.scheduler_info()["workers"])
    by_key: dict[str, Job] = {}
    futures = []
    groups = [list(g) for _, g in groupby(jobs, key=lambda j: j.data_key)]
    for index, group in enumerate(groups):
        # one group on one worker first; a lone group is left to the scheduler
        target = [workers[index % len(workers)]] if len(groups) > 1 and workers else None
        for job in group:
            run_dir = None if runs_dir is None else str(runs_dir / job.job_id)
            key = f"tapeloop-job-{job.job_id}"
            by_key[key] = job
            where = {} if target is None else {"workers": target, "allow_other_workers": True}
            futures.append(client.submit(run_job, shared, job, data, run_dir, key=key,
                                         pure=False, **where))
    try:
        for future, result in as_completed(futures, with_results=True, raise_errors=False):
            job = by_key[future.key]
            if isinstance(result, BaseException):  # lost with its workers too often
                yield job, _lost(job, result)
            else:
                yield job, result
    finally:
        client.cancel(futures)


def _lost(job: Job, exc: BaseException) -> dict[str, Any]:
    from daemon.research.job import failed_row, one_line

    row = failed_row(job, "error", f"not run: {one_line(exc)}", 0.0)
    row["wall_s"] = None
    return row
