"""A worker killed (SIGKILL) with a job in flight: Dask reruns the job on a worker
that lives, and every result equals the job run alone, in this process."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from daemon.config import load_config
from daemon.research.cluster import connect, run_jobs
from daemon.research.grid import Job
from daemon.research.job import run_job
from tests.research.conftest import config_with

pytestmark = pytest.mark.timeout(300)

COMPARED = ("status", "metrics", "pnl", "final_equity", "fills", "events_in", "trade_pnls",
            "equity")


def test_a_killed_worker_loses_no_job(spy_store: Path, tmp_path: Path) -> None:
    from datetime import date

    config = load_config(config_with(tmp_path))
    day = date(2013, 10, 7)
    jobs = [Job({"sma": {"fast": fast, "slow": 60}}, day, day) for fast in (5, 10, 15, 20, 25, 30)]
    killed = []
    rows = {}
    with connect(workers=2) as client:
        pids = client.run(os.getpid)
        for job, row in run_jobs(client, config, jobs, str(spy_store)):
            rows[job.job_id] = row
            if not killed:
                # both workers are busy with the next jobs: kill one of them mid-job
                victim = sorted(pids.values())[0]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
        after = client.run(os.getpid)
    assert killed and killed[0] not in after.values(), "the worker was replaced"
    assert len(rows) == len(jobs)
    for job in jobs:
        alone = run_job(config, job, str(spy_store))
        got = rows[job.job_id]
        assert got["status"] == "ok", got.get("error")
        assert {k: got[k] for k in COMPARED} == {k: alone[k] for k in COMPARED}
