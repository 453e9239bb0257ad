"""A sweep from start to finish: jobs checked, reused or run on the cluster, each
result saved as it arrives and reported (a progress bar on a terminal, a JSON line
per job otherwise), then results.parquet and the HTML summary.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from daemon.config import Config
from daemon.research.data import StoreListing
from daemon.research.grid import Grid, Job
from daemon.research.job import ParamsError, config_digest, failed_row, result_key, with_params
from daemon.research.ranking import finished, metric_value, ranked
from daemon.research.results import (
    RESULTS_PARQUET,
    RUNS_DIR,
    SUMMARY_HTML,
    ResultsDir,
    write_parquet,
)


@dataclass
class SweepSpec:
    config: Config
    grid: Grid
    data: str
    out: Path
    date_from: date | None = None
    date_to: date | None = None
    workers: int | None = None
    scheduler: str | None = None
    keep_runs: bool = False


@dataclass
class Tally:
    total: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    reused: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


class Runner:
    """Runs jobs for a sweep (and for walk-forward's two rounds) on one cluster."""

    def __init__(self, spec: SweepSpec, listing: StoreListing, client: Any,
                 progress: Progress) -> None:
        self.spec = spec
        self.listing = listing
        self.client = client
        self.progress = progress
        self.results = ResultsDir(spec.out)
        self.config_hash = config_digest(spec.config)
        self.tally = Tally()
        self._fingerprints: dict[tuple[date | None, date | None], str] = {}

    def key(self, job: Job) -> str:
        window = job.data_key
        if window not in self._fingerprints:
            self._fingerprints[window] = self.listing.fingerprint(*window)
        return result_key(self.config_hash, job, self._fingerprints[window])

    def run(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        """Every job's row, in `jobs` order: refused parameters are "skipped", stored
        results reused, the rest run on the cluster."""
        from daemon.research.cluster import run_jobs

        rows: dict[str, dict[str, Any]] = {}
        todo: list[Job] = []
        reused_before, skipped_before = self.tally.reused, self.tally.skipped
        refused: dict[str, str] = {}
        for job in jobs:
            text = json.dumps(job.params, sort_keys=True, default=str)
            if text not in refused:
                try:
                    with_params(self.spec.config, job.params)
                    refused[text] = ""
                except ParamsError as exc:
                    refused[text] = str(exc)
            if refused[text]:
                rows[job.job_id] = failed_row(job, "skipped", refused[text], time.perf_counter())
                rows[job.job_id]["wall_s"] = None
                self.tally.skipped += 1
                continue
            stored = self.results.stored(job.job_id, self.key(job))
            if stored is not None:
                stored.pop("key", None)
                rows[job.job_id] = stored
                self.tally.reused += 1
                self.tally.ok += 1
                continue
            todo.append(job)
        self.tally.total += len(jobs)
        # this round's counts (walk-forward runs two rounds on one tally)
        self.progress.start(len(todo), reused=self.tally.reused - reused_before,
                            skipped=self.tally.skipped - skipped_before)
        runs = self.spec.out / RUNS_DIR if self.spec.keep_runs else None
        for job, row in run_jobs(self.client, self.spec.config, todo, self.spec.data, runs):
            if row["status"] == "ok":
                self.results.save(row, self.key(job))
                self.tally.ok += 1
            else:
                self.tally.failed += 1
            rows[job.job_id] = row
            self.progress.job(row)
        self.progress.stop()
        ordered = [rows[j.job_id] for j in jobs]
        self.tally.rows.extend(ordered)
        return ordered


class Progress:
    """A bar with ETA on a terminal; otherwise one JSON line per finished job."""

    def __init__(self, stream: IO[str] | None = None, tty: bool | None = None,
                 metric: str = "sharpe") -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.metric = metric
        self.total = 0
        self.done = 0
        self.t0 = 0.0
        self._bar: Any = None
        self._task: Any = None

    def start(self, total: int, *, reused: int = 0, skipped: int = 0) -> None:
        self.total, self.done, self.t0 = total, 0, time.monotonic()
        if reused or skipped:
            self._note(f"{reused} job(s) reused from an earlier sweep, {skipped} skipped "
                       "(parameters the strategy refuses)")
        if self.tty and total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[last]}"), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("sweep", total=total, last="")

    def job(self, row: dict[str, Any]) -> None:
        self.done += 1
        value = metric_value(row, self.metric)
        if self._bar is not None:
            last = f"{row['status']} {_params_text(row['params'])}"
            self._bar.update(self._task, completed=self.done, last=last)
            if row["status"] != "ok":
                self._bar.console.print(f"job {row['job_id']} {row['status']}: {row['error']}")
            return
        elapsed = time.monotonic() - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        line = {"event": "sweep.job", "job_id": row["job_id"], "status": row["status"],
                "params": row["params"], "date_from": row["date_from"],
                "date_to": row["date_to"], "phase": row["phase"], self.metric: value,
                "error": row.get("error"), "wall_s": _round(row.get("wall_s")),
                "done": self.done, "total": self.total, "eta_s": _round(eta)}
        print(json.dumps(line, default=str), file=self.stream, flush=True)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _note(self, text: str) -> None:
        if self.tty:
            print(text, file=self.stream)
        else:
            print(json.dumps({"event": "sweep.note", "message": text}), file=self.stream,
                  flush=True)


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _params_text(params: dict[str, dict[str, Any]]) -> str:
    return " ".join(f"{k}={v}" for p in params.values() for k, v in p.items())


def run_sweep(spec: SweepSpec, progress: Progress,
              extra: Callable[[Runner], dict[str, Any] | None] | None = None) -> Tally:
    """The whole sweep (or walk-forward, via `extra`); writes results and summary."""
    from daemon.errors import UserError
    from daemon.research.cluster import connect

    listing = StoreListing(spec.data)
    days = listing.days(spec.date_from, spec.date_to)
    if not days:
        raise UserError(f"--data {spec.data}: no day of data in the date range")
    spec.out.mkdir(parents=True, exist_ok=True)
    with connect(spec.workers, spec.scheduler) as client:
        runner = Runner(spec, listing, client, progress)
        if spec.grid.walk_forward is not None:
            from daemon.research.walkforward import run_walk_forward

            walk = run_walk_forward(runner, spec.grid, days)
        else:
            runner.run(spec.grid.jobs(days))
            walk = None
    rows = runner.tally.rows
    _monte_carlo(rows, spec.grid)
    write_parquet(rows, spec.out / RESULTS_PARQUET)
    _write_summary(rows, spec, walk)
    if walk is not None:
        (spec.out / "walk_forward.json").write_text(json.dumps(walk, indent=1, default=str))
    return runner.tally


def _monte_carlo(rows: list[dict[str, Any]], grid: Grid) -> None:
    """Bootstrap the top jobs' closed trades (`[rank] monte_carlo` paths each)."""
    if not grid.monte_carlo:
        return
    from decimal import Decimal

    from daemon.research.montecarlo import monte_carlo

    for row in ranked(finished(r for r in rows if r["phase"] != "train"), grid.metric
                      )[:grid.top]:
        # trades.csv's PnLs are in the account currency, as is the initial equity
        row["monte_carlo"] = monte_carlo([Decimal(p) for p in row["trade_pnls"]],
                                         Decimal(row["initial_equity"]), grid.monte_carlo,
                                         seed=0)


def _write_summary(rows: list[dict[str, Any]], spec: SweepSpec,
                   walk: dict[str, Any] | None) -> None:
    from daemon.research.summary_html import render_summary

    shown = sorted(rows, key=lambda r: r["job_id"])
    html = render_summary(shown, title=f"sweep of {Path(spec.grid.file).name}",
                          metric=spec.grid.metric, top_n=spec.grid.top, walk_forward=walk)
    (spec.out / SUMMARY_HTML).write_text(html, encoding="utf-8")


def leaderboard_lines(rows: Sequence[dict[str, Any]], metric: str, n: int = 5) -> Iterator[str]:
    best = ranked(finished(r for r in rows if r["phase"] == "sweep"), metric)[:n]
    for i, row in enumerate(best, 1):
        value = metric_value(row, metric)
        shown = "n/a" if value is None else f"{value:.4g}"
        window = f" {row['date_from']}..{row['date_to']}" if row["date_from"] else ""
        yield (f"{i}. {metric} {shown}  return {float(row['metrics']['total_return'] or 0):.4%}"
               f"  net {row['pnl']['net']}  {_params_text(row['params'])}{window}")
