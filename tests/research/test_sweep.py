"""`tapeloop sweep` end to end on a real LocalCluster of 2 workers: its results equal
the same replays run one by one with `tapeloop replay`, exactly; run again it
resumes; a failing job is reported and the others finish; an existing cluster is
used by address."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import duckdb
import pytest

from tests.research.conftest import config_with, run_cli

pytestmark = pytest.mark.timeout(300)

GRID = """
[strategies.sma]
fast = [10, 20]
slow = [60]
qty = 100

[dates]
split = "day"
"""
TIMING = ("wall_s", "events_per_s")


def _report(run: Path) -> dict:
    report = json.loads((run / "report.json").read_text())
    for key in TIMING:
        report.pop(key)
    return report


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def swept(spy_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    tmp = tmp_path_factory.mktemp("sweep")
    grid = tmp / "grid.toml"
    grid.write_text(GRID)
    config = config_with(tmp)
    out = tmp / "out"
    proc = run_cli("sweep", "--config", config, "--grid", grid, "--data", spy_store,
                   "--out", out, "--from", "2013-10-07", "--to", "2013-10-08",
                   "--workers", "2", "--keep-runs")
    assert proc.returncode == 0, proc.stderr
    return config, out, proc.stdout


def test_a_sweep_equals_the_same_replays_one_by_one(
        swept: tuple[Path, Path, str], spy_store: Path, tmp_path: Path) -> None:
    config, out, stdout = swept
    jobs = [j for j in _lines(stdout) if j["event"] == "sweep.job"]
    assert len(jobs) == 4 and {j["status"] for j in jobs} == {"ok"}
    assert [j["done"] for j in jobs] == [1, 2, 3, 4]  # one line per job as it finishes
    table = duckdb.sql(f"""SELECT job_id, "sma.fast", "sma.slow", date_from, date_to, sharpe,
                           total_return, trades, pnl_net, final_equity, fills, status
                           FROM '{out / "results.parquet"}' ORDER BY job_id""").fetchall()
    assert len(table) == 4
    for job_id, fast, slow, day, last, sharpe, ret, trades, net, final, fills, status in table:
        assert status == "ok" and day == last
        by_hand = config_with(tmp_path, f"{job_id}.toml", fast=fast, slow=slow)
        run = tmp_path / job_id
        proc = run_cli("replay", "--config", by_hand, "--data", spy_store, "--from", str(day),
                       "--to", str(day), "--out", run)
        assert proc.returncode == 0, proc.stderr
        report = _report(run)
        assert report["fills"], "the job traded"
        # the job's kept run directory is the replay's, byte for byte
        kept = out / "runs" / job_id
        for name in ("fills.csv", "trades.csv", "equity.csv"):
            assert (kept / name).read_bytes() == (run / name).read_bytes(), name
        assert _report(kept) == report
        # the row's trades and equity curve are the run's trades.csv and equity.csv
        stored = json.loads((out / "jobs" / f"{job_id}.json").read_text())
        with (run / "trades.csv").open() as f:
            assert stored["trade_pnls"] == [r["pnl"] for r in csv.DictReader(f)]
        with (run / "equity.csv").open() as f:
            curve = [[int(r["ts_ns"]), float(r["equity"])] for r in csv.DictReader(f)]
        assert stored["equity"][-1] == curve[-1] and stored["equity"][0] == curve[0]
        assert all(p in curve for p in stored["equity"])
        # and results.parquet holds its numbers, money exact
        assert sharpe == report["metrics"]["sharpe"]
        assert ret == report["metrics"]["total_return"]
        assert trades == report["metrics"]["trades"]
        assert net == __import__("decimal").Decimal(report["pnl"]["net"])
        assert str(final) == report["final_equity"] or final == __import__(
            "decimal").Decimal(report["final_equity"])
        assert fills == len(report["fills"])
    summary = (out / "summary.html").read_text()
    assert "<html" in summary.lower()


def test_a_sweep_run_again_reuses_every_result_and_reruns_after_a_config_change(
        swept: tuple[Path, Path, str], spy_store: Path, tmp_path: Path) -> None:
    config, out, _ = swept
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    before = (out / "results.parquet").read_bytes()
    again = out.parent / "again"
    os.system(f"cp -r {out} {again}")  # a copy: the module's other tests read `out`
    proc = run_cli("sweep", "--config", config, "--grid", grid, "--data", spy_store,
                   "--out", again, "--from", "2013-10-07", "--to", "2013-10-08")
    assert proc.returncode == 0, proc.stderr
    assert not [j for j in _lines(proc.stdout) if j["event"] == "sweep.job"]
    assert "4 ok (4 reused)" in proc.stderr
    reused = duckdb.sql(f"SELECT * EXCLUDE (wall_s) FROM '{again / 'results.parquet'}' "
                        "ORDER BY job_id").fetchall()
    first = duckdb.sql(f"SELECT * EXCLUDE (wall_s) FROM '{out / 'results.parquet'}' "
                       "ORDER BY job_id").fetchall()
    assert reused == first and before
    # another fee is another config: nothing is reused
    changed = tmp_path / "fee.toml"
    changed.write_text(config.read_text().replace("taker_fee_bps = 0.5", "taker_fee_bps = 1.0"))
    proc = run_cli("sweep", "--config", changed, "--grid", grid, "--data", spy_store,
                   "--out", again, "--from", "2013-10-07", "--to", "2013-10-07")
    assert proc.returncode == 0, proc.stderr
    assert len([j for j in _lines(proc.stdout) if j["event"] == "sweep.job"]) == 2


def test_a_failing_job_is_reported_and_the_others_finish(
        spy_store: Path, tmp_path: Path) -> None:
    """One day's part is damaged: that day's jobs fail with the part's name, the
    other day's finish, results hold all four, and the exit status says so."""
    data = tmp_path / "data"
    os.system(f"cp -r {spy_store} {data}")
    part = next((data / "events" / "date=2013-10-08").rglob("*.parquet"))
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = b"\xff" * 64
    part.write_bytes(bytes(raw))
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    proc = run_cli("sweep", "--config", config_with(tmp_path), "--grid", grid, "--data", data,
                   "--out", tmp_path / "out", "--from", "2013-10-07", "--to", "2013-10-08",
                   "--workers", "2")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    jobs = {(j["date_from"], j["status"]) for j in _lines(proc.stdout)
            if j["event"] == "sweep.job"}
    assert jobs == {("2013-10-07", "ok"), ("2013-10-08", "error")}
    errors = duckdb.sql(f"SELECT date_from, error FROM '{tmp_path / 'out' / 'results.parquet'}'"
                        " WHERE status = 'error'").fetchall()
    assert len(errors) == 2 and all(part.name in e for _, e in errors)
    assert "2 failed" in proc.stderr


def test_parameters_the_strategy_refuses_are_skipped_not_failed(
        spy_store: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text("[strategies.sma]\nfast = [10, 70]\nslow = [60]\n")
    proc = run_cli("sweep", "--config", config_with(tmp_path), "--grid", grid,
                   "--data", spy_store, "--out", tmp_path / "out", "--from", "2013-10-07",
                   "--to", "2013-10-07", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    rows = duckdb.sql(f"SELECT \"sma.fast\", status, error FROM "
                      f"'{tmp_path / 'out' / 'results.parquet'}' ORDER BY 1").fetchall()
    assert rows[0][:2] == (10, "ok")
    assert rows[1][:2] == (70, "skipped") and "fast (70) must be less than slow (60)" in rows[1][2]


def test_an_existing_cluster_is_used_by_address(spy_store: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    grid = tmp_path / "grid.toml"
    grid.write_text("[strategies.sma]\nfast = [10, 20]\nslow = [60]\n")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        proc = run_cli("sweep", "--config", config_with(tmp_path), "--grid", grid,
                       "--data", spy_store, "--out", tmp_path / "out",
                       "--from", "2013-10-07", "--to", "2013-10-07",
                       "--scheduler", cluster.scheduler_address)
        assert proc.returncode == 0, proc.stderr
        assert len(cluster.workers) == 1
    assert "2 ok" in proc.stderr


def test_an_unreachable_scheduler_is_one_line(spy_store: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text("[strategies.sma]\nfast = [10]\nslow = [60]\n")
    proc = run_cli("sweep", "--config", config_with(tmp_path), "--grid", grid,
                   "--data", spy_store, "--out", tmp_path / "out",
                   "--scheduler", "tcp://127.0.0.1:9")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "--scheduler tcp://127.0.0.1:9" in proc.stderr
    # told at once that nothing listens there (Dask's client would retry for 10 s and
    # say it timed out)
    assert "Connection refused" in proc.stderr, proc.stderr
