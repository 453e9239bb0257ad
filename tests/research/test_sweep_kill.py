"""A sweep killed (SIGKILL of its whole process group: the client, the local cluster's
nannies and workers, as systemd or an OOM would) and run again: the jobs that had
finished are reused, the others run, and the results equal an uninterrupted sweep's."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO, cli_env, eventually, tapeloop_cmd
from tests.research.conftest import config_with, run_cli

pytestmark = pytest.mark.timeout(300)

GRID = "[strategies.sma]\nfast = [5, 10, 15, 20, 25, 30]\nslow = [60]\n"


def _rows(out: Path) -> list[tuple]:
    return duckdb.sql(f"SELECT * EXCLUDE (wall_s, loop_s) FROM '{out / 'results.parquet'}' "
                      "ORDER BY job_id").fetchall()


def test_a_killed_sweep_resumes_where_it_stopped(spy_store: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    config = config_with(tmp_path)
    out = tmp_path / "out"
    args = ["sweep", "--config", str(config), "--grid", str(grid), "--data", str(spy_store),
            "--out", str(out), "--from", "2013-10-07", "--to", "2013-10-07", "--workers", "1"]
    proc = subprocess.Popen(tapeloop_cmd(*args), cwd=REPO, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        eventually(lambda: len(list((out / "jobs").glob("*.json"))) >= 2, timeout=120,
                   message="two jobs finished")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    done = len(list((out / "jobs").glob("*.json")))
    assert 2 <= done < 6, "killed mid-sweep"
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"6 ok ({done} reused)" in again.stderr
    whole = tmp_path / "whole"
    clean = run_cli(*[a if a != str(out) else str(whole) for a in args])
    assert clean.returncode == 0, clean.stderr
    assert _rows(out) == _rows(whole)
