"""`tapeloop replay --monte-carlo N [--mc-seed S]` end to end on one real SPY day:
the section resamples exactly the run's trades.csv, the same seed gives the same
report, and bad values are one line."""

from __future__ import annotations

import csv
import json
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from daemon.research.montecarlo import monte_carlo
from tests.conftest import REPO, SHARED_DATA, cli_env, import_spy, tapeloop_cmd

SPY_DAY = SHARED_DATA / "lean" / "equity" / "usa" / "tick" / "spy" / "20131007_trade.zip"
CONFIG = REPO / "configs" / "replay-spy.toml"
pytestmark = pytest.mark.skipif(not SPY_DAY.is_file(), reason=f"{SPY_DAY} absent (shared data)")


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tapeloop_cmd(*map(str, args)), capture_output=True, text=True,
                          env=cli_env(), cwd=REPO, timeout=300)


@pytest.fixture(scope="module")
def spy_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_spy(tmp_path_factory.mktemp("spy") / "data", "20131007")


def test_replay_with_monte_carlo_resamples_the_runs_closed_trades(
        spy_day: Path, tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        out = run_cli("replay", "--config", CONFIG, "--data", spy_day, "--out", tmp_path / name,
                      "--monte-carlo", "2000", "--mc-seed", "3")
        assert out.returncode == 0, out.stderr
        runs.append(out)
    assert "monte carlo 2,000 paths of " in runs[0].stdout and ", seed 3: " in runs[0].stdout
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    with (tmp_path / "a" / "trades.csv").open() as f:
        pnls = [Decimal(r["pnl"]) for r in csv.DictReader(f)]
    assert len(pnls) >= 2, "the day closes trades"
    expected = monte_carlo(pnls, Decimal(report["initial_equity"]), 2000, 3)
    assert report["monte_carlo"] == json.loads(json.dumps(expected))
    assert report["metrics"]["trades"] == report["monte_carlo"]["trades"]
    assert "<h2>Monte Carlo</h2>" in (tmp_path / "a" / "report.html").read_text()
    # the same seed: the same section, in both files
    again = json.loads((tmp_path / "b" / "report.json").read_text())
    assert again["monte_carlo"] == report["monte_carlo"]
    html = [(tmp_path / n / "report.html").read_text().split("\n") for n in ("a", "b")]
    sections = [[x for x in h if x.startswith("<h2>Monte Carlo</h2>")] for h in html]
    assert sections[0] == sections[1] and len(sections[0]) == 1


@pytest.mark.parametrize("args, message", [
    (("--monte-carlo", "0"), "--monte-carlo '0': not a positive integer"),
    (("--monte-carlo", "ten"), "--monte-carlo 'ten': not a positive integer"),
    (("--monte-carlo", "10", "--mc-seed", "-1"),
     "--mc-seed '-1': not an integer from 0 to 2**64-1"),
    (("--mc-seed", "4"), "--mc-seed 4: needs --monte-carlo N"),
])
def test_bad_monte_carlo_options_are_one_line(tmp_path: Path, args, message) -> None:
    out = run_cli("replay", "--config", CONFIG, "--data", tmp_path, "--out", tmp_path / "run",
                  *args)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [f"tapeloop replay: {message}"]
    assert not (tmp_path / "run").exists()
