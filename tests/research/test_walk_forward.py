"""Walk-forward on three real SPY days: the best in-sample parameters of each window
are the ones its training jobs rank first, they are what the test window runs, and
the stitched out-of-sample equity compounds the test windows' returns."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.research.conftest import config_with, run_cli

pytestmark = pytest.mark.timeout(300)

GRID = """
[strategies.sma]
fast = [5, 10, 20]
slow = [60, 120]
qty = 100

[walk_forward]
train_days = 1
test_days = 1
mode = "{mode}"

[rank]
metric = "total_return"
"""


@pytest.mark.parametrize("mode", ["rolling", "anchored"])
def test_walk_forward_runs_the_best_in_sample_parameters_out_of_sample(
        spy_store: Path, tmp_path: Path, mode: str) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.replace("{mode}", mode))
    out = tmp_path / "out"
    proc = run_cli("sweep", "--config", config_with(tmp_path), "--grid", grid,
                   "--data", spy_store, "--out", out, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    walk = json.loads((out / "walk_forward.json").read_text())
    assert [(w["train"], w["test"]) for w in walk["windows"]] == (
        [(["2013-10-07", "2013-10-07"], ["2013-10-08", "2013-10-08"]),
         (["2013-10-08", "2013-10-08"], ["2013-10-09", "2013-10-09"])] if mode == "rolling" else
        [(["2013-10-07", "2013-10-07"], ["2013-10-08", "2013-10-08"]),
         (["2013-10-07", "2013-10-08"], ["2013-10-09", "2013-10-09"])])
    results = out / "results.parquet"
    capital = Decimal(1)
    for w in walk["windows"]:
        best = duckdb.sql(f"""SELECT "sma.fast", "sma.slow", total_return FROM '{results}'
                              WHERE phase = 'train' AND "window" = {w['window']}
                              ORDER BY total_return DESC, job_id LIMIT 1""").fetchall()[0]
        assert (best[0], best[1]) == (w["best_params"]["sma"]["fast"],
                                      w["best_params"]["sma"]["slow"])
        assert w["in_sample"]["total_return"] == best[2]
        test = duckdb.sql(f"""SELECT "sma.fast", "sma.slow", total_return, final_equity,
                              initial_equity FROM '{results}' WHERE phase = 'test'
                              AND "window" = {w['window']}""").fetchall()
        assert len(test) == 1 and test[0][:2] == best[:2]
        assert w["out_of_sample"]["total_return"] == test[0][2]
        capital *= test[0][3] / test[0][4]
    assert walk["overall"]["out_of_sample_return"] == pytest.approx(float(capital - 1),
                                                                    rel=1e-12, abs=1e-15)
    curve = walk["equity"]
    assert [p[0] for p in curve] == sorted(p[0] for p in curve)
    assert curve[-1][1] == pytest.approx(1_000_000 * float(capital), rel=1e-12)


def test_walk_forward_run_again_reuses_each_round_and_says_so_per_round(
        spy_store: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.replace("{mode}", "rolling"))
    args = ["sweep", "--config", config_with(tmp_path), "--grid", grid, "--data", spy_store,
            "--out", tmp_path / "out", "--workers", "1"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    notes = [json.loads(line)["message"] for line in again.stdout.splitlines()
             if line.startswith("{") and json.loads(line)["event"] == "sweep.note"]
    # round one: 6 parameter sets x 2 training windows; round two: the 2 test jobs
    assert [n.split(" job(s)")[0] for n in notes] == ["12", "2"], notes
    assert "14 ok (14 reused)" in again.stderr
