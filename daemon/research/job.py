"""One sweep job, as a worker runs it: the config with the job's parameters, replayed
over the job's days by `daemon.backtest.run_replay` (exactly what `tapeloop replay`
runs), and the result row the sweep keeps.

Also what identifies a result so a sweep run again can skip it: the config, the
job (parameters and window), the data's fingerprint and the code's version.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import traceback
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from daemon.config import Config
from daemon.research.grid import Job, Params
from replay.report import ReportBuilder, dec

EQUITY_POINTS = 500  # an equity curve kept per job, for the summary's overlay

_worker_ready = False


class ParamsError(ValueError):
    """The strategy refuses a parameter set (e.g. fast >= slow): the job is skipped."""


def with_params(config: Config, params: Params) -> Config:
    """`config` with each strategy's params updated by `params` and checked as
    `tapeloop check-config` checks them; ParamsError names the first problem."""
    from daemon.config_checks import check

    ids = {s.id for s in config.strategies}
    for sid in params:
        if sid not in ids:
            raise ParamsError(f"no strategy {sid!r} in the config "
                              f"(it has {', '.join(sorted(ids))})")
    strategies = [
        msgspec.structs.replace(s, params={**s.params, **params[s.id]}) if s.id in params else s
        for s in config.strategies
    ]
    config = msgspec.structs.replace(config, strategies=strategies)
    problem = check(config)
    if problem is not None:
        raise ParamsError(f"{problem[0]}: {problem[1]}")
    return config


def run_job(config: Config, job: Job, data: str, run_dir: str | None = None) -> dict[str, Any]:
    """Replay `job` and return its result row (see `row`); never raises for a job's
    own failure: that is a row with status "error" and the error's one line."""
    _ready_worker()
    t0 = time.perf_counter()
    try:
        cfg = with_params(config, job.params)
        if run_dir is None:
            with tempfile.TemporaryDirectory(prefix="tapeloop-job-") as tmp:
                out = _replay(cfg, job, data, Path(tmp) / "run", keep=False)
        else:
            out = _replay(cfg, job, data, Path(run_dir), keep=True)
    except ParamsError as exc:
        return failed_row(job, "skipped", str(exc), t0)
    except Exception as exc:  # a job's failure is its row; the sweep goes on
        return failed_row(job, "error", one_line(exc), t0, traceback.format_exc())
    out["wall_s"] = time.perf_counter() - t0
    return out


def _replay(config: Config, job: Job, data: str, out_dir: Path, keep: bool
            ) -> dict[str, Any]:
    from daemon.backtest import ReplaySpec, replay_report
    from events.registry import MARKET_TYPES
    from events.remote import local_store

    # a local store as it is; an s3:// one mirrored (these days' market data) on
    # this worker's disk, shared by the jobs it runs
    data_dir = local_store(data, date_from=job.date_from, date_to=job.date_to,
                           types=[t.__name__ for t in MARKET_TYPES])
    spec = ReplaySpec(data_dir=data_dir, out_dir=out_dir, date_from=job.date_from,
                      date_to=job.date_to, data_name=data.split("?", 1)[0])
    builder, extra, events_in, wall_s = replay_report(config, spec)
    if keep:  # the whole run directory, as `tapeloop replay` leaves it
        report = builder.write(out_dir, events_in=events_in, wall_s=wall_s, extra=extra)
    else:  # the figures only: no report files to render for a directory thrown away
        report = builder.build(events_in=events_in, wall_s=wall_s, extra=extra)
    return row(job, report, builder)


def row(job: Job, report: dict[str, Any], builder: ReportBuilder) -> dict[str, Any]:
    """The result row of a finished replay (its report dict and report builder)."""
    return {
        **_head(job), "status": "ok", "error": None,
        "metrics": report["metrics"],
        "pnl": report["pnl"],
        "initial_equity": report["initial_equity"],
        "final_equity": report["final_equity"],
        "currency": report["account_currency"],
        "fills": len(report["fills"]),
        "events_in": report["events_in"],
        "loop_s": report["wall_s"],
        "equity": _equity_curve(builder.equity_curve()),
        # trades.csv's "pnl" column, as written there
        "trade_pnls": [dec(t.pnl) for t in builder.closed_trades()],
    }


def _head(job: Job) -> dict[str, Any]:
    return {"job_id": job.job_id, "params": job.params,
            "date_from": _iso(job.date_from), "date_to": _iso(job.date_to),
            "phase": job.phase, "window": job.window}


def failed_row(job: Job, status: str, error: str, t0: float, tb: str | None = None
               ) -> dict[str, Any]:
    return {**_head(job), "status": status, "error": error, "traceback": tb,
            "wall_s": time.perf_counter() - t0}


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _iso(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


def _equity_curve(samples: list[tuple[int, Decimal]], points: int = EQUITY_POINTS
                  ) -> list[list[float]]:
    """(ts_ns, equity) at most `points` samples, evenly spaced, the last one kept."""
    if len(samples) > points:
        step = len(samples) / (points - 1)
        samples = [samples[int(k * step)] for k in range(points - 1)] + [samples[-1]]
    return [[ts, float(eq)] for ts, eq in samples]


def _ready_worker() -> None:
    """Once per worker process: quiet logs, the interpreter's GIL switch interval
    kept, and the column cache on (a worker runs many jobs over the same days;
    `TAPELOOP_COLUMN_CACHE_MB`, 0 turns it off)."""
    global _worker_ready
    if _worker_ready:
        return
    _worker_ready = True
    import sys

    from daemon.logging import configure_logging
    from replay import cache
    from replay.driver import share_cpus

    share_cpus()  # a sweep's workers fill the cores: no short GIL switch interval

    configure_logging("warning", stream=sys.stderr)
    text = os.environ.get("TAPELOOP_COLUMN_CACHE_MB", "")
    budget_mb = int(text) if text.strip().isdigit() else 1024
    if budget_mb > 0:
        cache.enable(budget_mb << 20)


# -- what a result depends on ---------------------------------------------------------

_CODE_DIRS = ("daemon", "events", "adapters", "replay")
_code_version: str | None = None


def code_version() -> str:
    """A hash of the package's source: a result from other code is not reused."""
    global _code_version
    if _code_version is None:
        root = Path(__file__).resolve().parents[2]
        h = hashlib.sha256()
        for top in _CODE_DIRS:
            for path in sorted((root / top).rglob("*.py")):
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
        _code_version = h.hexdigest()[:16]
    return _code_version


def config_digest(config: Config) -> str:
    return hashlib.sha256(msgspec.json.encode(config, enc_hook=str)).hexdigest()[:16]


def result_key(config_hash: str, job: Job, data_fingerprint: str) -> str:
    """What a stored result must match to be reused."""
    text = "\n".join([config_hash, job.job_id, data_fingerprint, code_version()])
    return hashlib.sha256(text.encode()).hexdigest()[:24]
