"""How jobs are ranked: the metrics a grid may name, each with its better direction,
and the ranking itself (the sweep's leaderboard, walk-forward's choice, the summary)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# report.json's metrics and the net PnL, with the direction that is better
# (max_drawdown is a positive fraction: lower is better).
METRICS: dict[str, int] = {
    "total_return": 1, "sharpe": 1, "sortino": 1, "profit_factor": 1, "win_rate": 1,
    "net": 1, "trades": 1, "max_drawdown": -1,
}


def metric_value(row: Mapping[str, Any], metric: str) -> float | None:
    """A row's value of `metric` ("net" is the net PnL), None if it has none (no
    trades, or the job did not finish)."""
    if metric == "net":
        net = (row.get("pnl") or {}).get("net")
        return None if net is None else float(net)
    value = (row.get("metrics") or {}).get(metric)
    return None if value is None else float(value)


def ranked(rows: Iterable[dict], metric: str) -> list[dict]:
    """Best first by `metric` in its better direction, rows without a value last,
    ties by job id (so the ranking never depends on the order jobs finished in)."""
    sign = METRICS[metric]

    def key(r: dict) -> tuple[bool, float, str]:
        v = metric_value(r, metric)
        return (v is None, 0.0 if v is None else -sign * v, str(r.get("job_id")))

    return sorted(rows, key=key)


def finished(rows: Iterable[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok"]
