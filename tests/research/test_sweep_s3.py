"""A sweep over a store on S3 (a real S3-compatible server on loopback, moto in server
mode): its workers mirror the days they need, and the results equal the same sweep
over the local store."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.events.test_remote import _s3fs, bucket, run_cli, s3_env, spy_store  # noqa: F401
from tests.research.conftest import SPY_CONFIG

pytestmark = pytest.mark.timeout(300)

GRID = "[strategies.sma]\nfast = [10, 20]\nslow = [60]\n[dates]\nsplit = 'day'\n"


def _rows(out: Path) -> list[tuple]:
    return duckdb.sql(f"SELECT * EXCLUDE (wall_s, loop_s) FROM '{out / 'results.parquet'}' "
                      "ORDER BY job_id").fetchall()


def test_a_sweep_on_s3_equals_the_sweep_on_the_local_store(
        s3_env: dict[str, str], spy_store: Path, bucket: str,  # noqa: F811
        tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    cache = tmp_path / "cache"
    local = run_cli("sweep", "--config", SPY_CONFIG, "--grid", grid, "--data", spy_store,
                    "--out", tmp_path / "local", "--workers", "2", env=s3_env, cache=cache)
    assert local.returncode == 0, local.stderr
    remote = run_cli("sweep", "--config", SPY_CONFIG, "--grid", grid, "--data", bucket,
                     "--out", tmp_path / "s3", "--workers", "2", env=s3_env, cache=cache)
    assert remote.returncode == 0, remote.stderr
    rows = _rows(tmp_path / "s3")
    assert len(rows) == 4 and {r[5] for r in rows} == {"ok"}
    assert rows == _rows(tmp_path / "local")
    assert len(list(cache.rglob("*.parquet"))) == 2  # the two days, mirrored once
    # run again: every result reused, from the listing alone
    again = run_cli("sweep", "--config", SPY_CONFIG, "--grid", grid, "--data", bucket,
                    "--out", tmp_path / "s3", "--workers", "1", env=s3_env, cache=cache)
    assert again.returncode == 0, again.stderr
    assert "4 ok (4 reused)" in again.stderr


def test_a_sweep_on_a_missing_bucket_is_one_line(s3_env: dict[str, str],  # noqa: F811
                                                 tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    proc = run_cli("sweep", "--config", SPY_CONFIG, "--grid", grid, "--data",
                   "s3://no-such-bucket/spy", "--out", tmp_path / "out", env=s3_env,
                   cache=tmp_path / "cache")
    assert proc.returncode == 6, proc.stderr
    assert proc.stderr.count("\n") == 1 and "s3://no-such-bucket/spy" in proc.stderr
