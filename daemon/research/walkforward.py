"""Walk-forward: is what was best in-sample still good on the days that follow?

The store's days in range (days with data: weekends and holidays are not counted)
are cut into windows of `train_days` followed by `test_days`, moved on by
`step_days`; "rolling" windows keep `train_days`, "anchored" ones always start at
the first day. Every parameter set of the grid is replayed on each training window
(round one, all windows at once on the cluster); the best by the grid's metric is
then replayed on its test window (round two). The test windows' equity curves are
stitched into one out-of-sample curve: each starts where the previous one ended
(scaled by its return), so the curve compounds as the strategy would have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from daemon.errors import UserError
from daemon.research.grid import Grid, Job, WalkForward


def windows(days: Sequence[date], wf: WalkForward) -> list[tuple[list[date], list[date]]]:
    """(training days, test days) per window, in order."""
    out = []
    start = 0
    while True:
        train = list(days[0 if wf.mode == "anchored" else start:start + wf.train_days])
        test = list(days[start + wf.train_days:start + wf.train_days + wf.test_days])
        if len(test) < wf.test_days:
            return out
        out.append((train, test))
        start += wf.step_days


def run_walk_forward(runner: Any, grid: Grid, days: Sequence[date]) -> dict[str, Any]:
    """Both rounds on `runner` (a `daemon.research.sweep.Runner`); the walk-forward
    report: per window, the best in-sample parameters and both sides' results."""
    from daemon.research.ranking import finished, metric_value, ranked

    wf = grid.walk_forward
    assert wf is not None
    wins = windows(days, wf)
    if not wins:
        raise UserError(f"{grid.file}: [walk_forward] needs {wf.train_days + wf.test_days} "
                        f"days of data, the range has {len(days)}")
    sets = grid.param_sets()
    train_rows = runner.run([Job(p, train[0], train[-1], "train", k)
                             for k, (train, _) in enumerate(wins) for p in sets])
    best: dict[int, dict[str, Any]] = {}
    for k in range(len(wins)):
        top = ranked(finished(r for r in train_rows if r["window"] == k), grid.metric)
        if top:
            best[k] = top[0]
    test_jobs = [Job(best[k]["params"], test[0], test[-1], "test", k)
                 for k, (_, test) in enumerate(wins) if k in best]
    tests = {r["window"]: r for r in runner.run(test_jobs)}

    def side(row: dict[str, Any] | None) -> dict[str, Any] | None:
        if row is None or row.get("status") != "ok":
            return None
        return {grid.metric: metric_value(row, grid.metric),
                "total_return": row["metrics"].get("total_return"),
                "net": row["pnl"]["net"], "trades": row["metrics"].get("trades")}

    table = []
    for k, (train, test) in enumerate(wins):
        table.append({
            "window": k, "train": [train[0].isoformat(), train[-1].isoformat()],
            "test": [test[0].isoformat(), test[-1].isoformat()],
            "best_params": best[k]["params"] if k in best else None,
            "train_days": len(train),
            "in_sample": side(best.get(k)), "out_of_sample": side(tests.get(k)),
        })
    ok_tests = [tests[k] for k in sorted(tests) if tests[k].get("status") == "ok"]
    return {"metric": grid.metric, "mode": wf.mode, "train_days": wf.train_days,
            "test_days": wf.test_days, "step_days": wf.step_days, "windows": table,
            "overall": _overall(table, wf, ok_tests), "equity": stitched(ok_tests)}


def stitched(rows: Sequence[dict[str, Any]]) -> list[list[float]]:
    """The test windows' equity curves end to end, each scaled to start where the
    previous one ended (the first starts at its own initial equity)."""
    curve: list[list[float]] = []
    capital: Decimal | None = None
    for row in rows:
        initial = Decimal(row["initial_equity"])
        if capital is None:
            capital = initial
        scale = float(capital / initial) if initial else 0.0
        curve.extend([ts, eq * scale] for ts, eq in row["equity"])
        if initial:
            capital = capital * Decimal(row["final_equity"]) / initial
    return curve


def _overall(table: list[dict[str, Any]], wf: WalkForward,
             tests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """In-sample against out-of-sample over all windows: the mean in-sample return of
    the chosen parameters, the compounded out-of-sample return, each as a daily
    geometric mean too, and their ratio (walk-forward efficiency)."""
    chosen = [(w["in_sample"]["total_return"], w["train_days"]) for w in table
              if w["in_sample"] and w["in_sample"]["total_return"] is not None]
    is_returns = [r for r, _ in chosen]
    oos = 1.0
    for row in tests:
        initial = Decimal(row["initial_equity"])
        oos *= float(Decimal(row["final_equity"]) / initial) if initial else 1.0
    is_daily = _daily([(1 + r, n) for r, n in chosen])
    oos_daily = (oos ** (1 / (wf.test_days * len(tests))) - 1) if tests else None
    return {
        "in_sample_return": sum(is_returns) / len(is_returns) if is_returns else None,
        "out_of_sample_return": oos - 1 if tests else None,
        "in_sample_daily": is_daily, "out_of_sample_daily": oos_daily,
        "efficiency": (oos_daily / is_daily) if is_daily and oos_daily is not None
        and is_daily > 0 else None,
        "windows": len(table), "tested": len(tests),
    }


def _daily(growths: list[tuple[float, int]]) -> float | None:
    """The geometric mean daily return of windows of (growth, days)."""
    if not growths or any(g <= 0 for g, _ in growths):
        return None
    return math.exp(sum(math.log(g) for g, _ in growths) / sum(n for _, n in growths)) - 1
