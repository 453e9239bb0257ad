"""The grid file: lists, ranges, seeded samples, the dates as a dimension, walk-forward
windows; a mistake is one line naming the file and the key."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.research.grid import GridError, WalkForward, load_grid
from daemon.research.walkforward import windows
from tests.conftest import REPO
from tests.research.conftest import run_cli

DAYS = [date(2013, 10, 7) + timedelta(days=k) for k in range(5)]


def grid(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return load_grid(path)


def test_lists_and_ranges_make_the_cartesian_product(tmp_path: Path) -> None:
    g = grid(tmp_path, """
[strategies.sma]
fast = [5, 10]
slow = { start = 40, stop = 100, step = 30 }
qty = 100
[strategies.other]
threshold = { start = 0.1, stop = 0.3, step = 0.1 }
""")
    sets = g.param_sets()
    assert len(sets) == 2 * 3 * 3
    assert sets[0] == {"sma": {"fast": 5, "slow": 40, "qty": 100}, "other": {"threshold": 0.1}}
    assert [s["other"]["threshold"] for s in sets[:3]] == [0.1, 0.2, 0.3]  # no float drift
    assert g.varied == ["sma.fast", "sma.slow", "other.threshold"]
    jobs = g.jobs(DAYS)
    assert len(jobs) == 18 and {(j.date_from, j.date_to) for j in jobs} == {(DAYS[0], DAYS[-1])}
    assert len({j.job_id for j in jobs}) == 18


def test_the_same_job_has_the_same_id_in_every_sweep(tmp_path: Path) -> None:
    text = "[strategies.sma]\nfast = [5, 10]\nslow = [40]\n[dates]\nsplit = 'day'\n"
    assert [j.job_id for j in grid(tmp_path, text).jobs(DAYS)] == \
        [j.job_id for j in grid(tmp_path, text).jobs(DAYS)]


@given(st.integers(1, 30), st.integers(0, 2**32))
def test_a_sample_is_seeded_distinct_and_inside_the_grid(count: int, seed: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        text = (f"[strategies.sma]\nfast = {{ start = 1, stop = 5 }}\nslow = [10, 20, 30]\n"
                f"[sample]\ncount = {count}\nseed = {seed}\n")
        a = grid(Path(tmp), text).param_sets()
        b = grid(Path(tmp), text).param_sets()
    assert a == b
    assert len(a) == min(count, 15)
    keys = [(p["sma"]["fast"], p["sma"]["slow"]) for p in a]
    assert len(set(keys)) == len(keys)
    assert all(1 <= f <= 5 and s in (10, 20, 30) for f, s in keys)


def test_uniform_draws_need_a_sample_and_stay_in_bounds(tmp_path: Path) -> None:
    with pytest.raises(GridError, match=r"grid.toml: \[strategies.sma\] fast: .*\[sample\]"):
        grid(tmp_path, "[strategies.sma]\nfast = { low = 2, high = 9 }\n")
    g = grid(tmp_path, "[strategies.sma]\nfast = { low = 2, high = 9 }\n"
                       "x = { low = 0.5, high = 1.5 }\n[sample]\ncount = 7\nseed = 1\n")
    sets = g.param_sets()
    assert len(sets) == 7
    assert all(2 <= s["sma"]["fast"] <= 9 and isinstance(s["sma"]["fast"], int) for s in sets)
    assert all(0.5 <= s["sma"]["x"] <= 1.5 for s in sets)


def test_dates_as_a_dimension(tmp_path: Path) -> None:
    g = grid(tmp_path, "[strategies.sma]\nfast = [5, 10]\n[dates]\nsplit = 'day'\n")
    assert g.windows(DAYS) == [(d, d) for d in DAYS]
    assert len(g.jobs(DAYS)) == 10
    g = grid(tmp_path, "[strategies.sma]\nfast = [5]\n[dates]\nsplit = 'window'\ndays = 2\n"
                       "step = 2\n")
    assert g.windows(DAYS) == [(DAYS[0], DAYS[1]), (DAYS[2], DAYS[3])]


def test_walk_forward_windows_rolling_and_anchored() -> None:
    rolling = windows(DAYS, WalkForward(2, 1, 1, "rolling"))
    assert [(len(tr), tr[0], te) for tr, te in rolling] == [
        (2, DAYS[0], [DAYS[2]]), (2, DAYS[1], [DAYS[3]]), (2, DAYS[2], [DAYS[4]])]
    anchored = windows(DAYS, WalkForward(2, 1, 1, "anchored"))
    assert [(tr[0], tr[-1], te) for tr, te in anchored] == [
        (DAYS[0], DAYS[1], [DAYS[2]]), (DAYS[0], DAYS[2], [DAYS[3]]),
        (DAYS[0], DAYS[3], [DAYS[4]])]
    assert windows(DAYS, WalkForward(4, 2, 1, "rolling")) == []


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.sampled_from(
    ["rolling", "anchored"]), st.integers(1, 12))
def test_walk_forward_never_tests_on_a_day_it_trained_on(train: int, test: int, step: int,
                                                         mode: str, n: int) -> None:
    days = [date(2020, 1, 1) + timedelta(days=k) for k in range(n)]
    for tr, te in windows(days, WalkForward(train, test, step, mode)):  # type: ignore[arg-type]
        assert len(te) == test and max(tr) < min(te)
        assert te[0] == days[days.index(tr[-1]) + 1]  # the test follows its training


@pytest.mark.parametrize(("text", "message"), [
    ("[strategies.sma]\nfast = []\n", r"\[strategies.sma\] fast: an empty list"),
    ("[strategies]\n", r"\[strategies\]: missing"),
    ("[strategie.sma]\nfast = [1]\n", r"\[strategie\]: unknown table"),
    ("[strategies.sma]\nfast = { start = 9, stop = 1 }\n", r"fast: a range needs"),
    ("[strategies.sma]\nfast = [1]\n[sample]\ncount = 3\n", r"\[sample\] seed: missing"),
    ("[strategies.sma]\nfast = [1]\n[rank]\nmetric = 'alpha'\n", r"\[rank\] metric: 'alpha'"),
    ("[strategies.sma]\nfast = [1]\n[dates]\nsplit='day'\n[walk_forward]\ntrain_days=1\n"
     "test_days=1\n", r"\[dates\]: walk-forward"),
    ("[strategies.sma]\nfast = [1]\n[walk_forward]\ntrain_days = 0\ntest_days = 1\n",
     r"\[walk_forward\] train_days: must be an integer >= 1"),
    ("[strategies.sma\n", r"TOML syntax error"),
])
def test_mistakes_are_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(GridError, match=message):
        grid(tmp_path, text)


def test_the_cli_says_a_grid_mistake_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text("[strategies.sma]\nfast = { start = 9, stop = 1 }\n")
    proc = run_cli("sweep", "--config", "configs/replay-spy.toml", "--grid",
                   tmp_path / "grid.toml", "--data", tmp_path, "--out", tmp_path / "out")
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "grid.toml: [strategies.sma] fast:" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "grids").glob("*.toml")),
                         ids=lambda p: p.name)
def test_every_shipped_grid_loads_and_fits_the_spy_config(path: Path) -> None:
    from daemon.config import load_config
    from daemon.research.job import with_params

    g = load_grid(path)
    config = load_config(REPO / "configs" / "replay-spy.toml")
    sets = g.param_sets()
    assert sets
    for params in sets:
        with_params(config, params)  # every set is one the strategy takes
    assert len(sets) == (64 if path.name == "sweep-spy.toml" else len(sets))
