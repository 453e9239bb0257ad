"""A sweep's output directory:

    OUT/jobs/<job_id>.json   each finished job's result row, written as it arrives
                             (atomically), with the key it was computed for: a sweep
                             run again reuses a row whose key matches (resumable)
    OUT/results.parquet      one row per job (parameters, window, every report.json
                             metric, PnL exact as decimals, fills, wall time)
    OUT/summary.html         the HTML summary (daemon.research.summary_html)
    OUT/runs/<job_id>/       each job's full run directory, with --keep-runs

`results.parquet` reads with DuckDB: `SELECT "sma.fast", "sma.slow", sharpe FROM
'OUT/results.parquet' ORDER BY sharpe DESC`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

JOBS_DIR = "jobs"
RESULTS_PARQUET = "results.parquet"
SUMMARY_HTML = "summary.html"
RUNS_DIR = "runs"

METRIC_COLUMNS = ("total_return", "sharpe", "sortino", "max_drawdown", "profit_factor",
                  "win_rate", "trades", "returns", "return_period_s")
MONEY_COLUMNS = ("realized", "fees", "funding", "unrealized", "net")
MC_PERCENTILES = ("p5", "p25", "p50", "p75", "p95")


class ResultsDir:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.jobs = out / JOBS_DIR
        self.jobs.mkdir(parents=True, exist_ok=True)

    def stored(self, job_id: str, key: str) -> dict[str, Any] | None:
        """The finished row of `job_id` computed for `key`, if one is stored."""
        try:
            row = json.loads((self.jobs / f"{job_id}.json").read_text())
        except (OSError, ValueError):
            return None
        if row.get("key") != key or row.get("status") != "ok":
            return None
        return dict(row)

    def save(self, row: dict[str, Any], key: str) -> None:
        path = self.jobs / f"{row['job_id']}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**row, "key": key}, sort_keys=True))
        os.replace(tmp, path)


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """One results.parquet row of a result row."""
    out: dict[str, Any] = {
        "job_id": row["job_id"], "phase": row["phase"], "window": row["window"],
        "date_from": row["date_from"], "date_to": row["date_to"],
        "status": row["status"], "error": row.get("error"),
    }
    for sid, params in sorted(row["params"].items()):
        for name, value in sorted(params.items()):
            out[f"{sid}.{name}"] = value
    metrics = row.get("metrics") or {}
    for name in METRIC_COLUMNS:
        value = metrics.get(name)
        out[name] = None if value is None else float(value)
    pnl = row.get("pnl") or {}
    for name in MONEY_COLUMNS:
        out[f"pnl_{name}"] = pnl.get(name)
    for name in ("initial_equity", "final_equity", "currency", "fills", "events_in", "wall_s",
                 "loop_s"):
        out[name] = row.get(name)
    mc = row.get("monte_carlo")
    if mc and mc.get("final_return"):
        for stat in ("final_return", "max_drawdown"):
            for p in MC_PERCENTILES:
                out[f"mc_{stat}_{p}"] = mc[stat].get(p)
        out["mc_loss_probability"] = mc.get("loss_probability")
    return out


def write_parquet(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """results.parquet: money as exact decimals (the scale its values need)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    flats = [flat(r) for r in rows]
    names: list[str] = []
    for f in flats:
        names.extend(n for n in f if n not in names)
    money = {f"pnl_{n}" for n in MONEY_COLUMNS} | {"initial_equity", "final_equity"}
    columns = {}
    for name in names:
        values = [f.get(name) for f in flats]
        if name in money:
            columns[name] = _decimals(values)
        elif name in ("date_from", "date_to"):
            columns[name] = pa.array(values, pa.string()).cast(pa.date32())
        elif name in ("window", "trades", "returns", "fills", "events_in"):
            columns[name] = pa.array([None if v is None else int(v) for v in values], pa.int64())
        elif name in METRIC_COLUMNS or name.startswith("mc_") or name in ("wall_s", "loop_s"):
            columns[name] = pa.array(values, pa.float64())
        else:
            columns[name] = _inferred(values)
    table = pa.table(columns)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _decimals(values: Iterable[Any]):  # type: ignore[no-untyped-def]
    """Exact decimals at the smallest scale that holds every value; strings when no
    decimal128 can (more than 38 digits)."""
    import pyarrow as pa

    parsed: list[Decimal | None] = []
    for v in values:
        try:
            parsed.append(None if v is None else Decimal(str(v)))
        except InvalidOperation:
            return pa.array([None if v is None else str(v) for v in values], pa.string())
    exps = [-d.as_tuple().exponent for d in parsed if d is not None and d.is_finite()]
    scale = max([0, *exps])  # type: ignore[operator]
    digits = max([1, *(len(str(abs(d.to_integral_value(rounding="ROUND_DOWN"))))
                       for d in parsed if d is not None)])
    if scale + digits > 38:
        return pa.array([None if d is None else str(d) for d in parsed], pa.string())
    return pa.array(parsed, pa.decimal128(38, scale))


def _inferred(values: list[Any]):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types in one parameter
        return pa.array([None if v is None else str(v) for v in values], pa.string())
