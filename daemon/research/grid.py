"""The grid file of `tapeloop sweep`: which parameters, over which days.

    # per strategy id of the config: each parameter's values
    [strategies.sma]
    fast = [5, 10, 20]                          # a list
    slow = { start = 40, stop = 120, step = 20 }  # a range; stop included when on the step
    qty = 100                                   # one value: fixed

    [sample]                # optional: `count` parameter sets drawn from the grid
    count = 20              # (without replacement) with a seed; a parameter may then be
    seed = 7                # { low = 1, high = 50 }: drawn uniformly (ints: inclusive)

    [dates]                 # optional: the days as a dimension
    split = "day"           # one job per day of --from..--to, or
    # split = "window"      # windows of `days` days every `step` days
    # days = 2
    # step = 1

    [walk_forward]          # optional (not with [dates]): see daemon.research.walkforward
    train_days = 3
    test_days = 1
    step_days = 1           # default: test_days
    mode = "rolling"        # or "anchored" (the training window always starts at day one)

    [rank]                  # optional
    metric = "sharpe"       # what ranks jobs (walk-forward's choice too)
    top = 10                # equity curves overlaid in the summary; Monte Carlo'd jobs
    monte_carlo = 0         # bootstrap paths per top job (0: none)

A job is one parameter set over one window. Its id is a hash of what it runs, so the
same job has the same id in every sweep (what makes a sweep resumable).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from daemon.errors import EXIT_CONFIG, UserError
from daemon.research.ranking import METRICS

Params = dict[str, dict[str, Any]]  # strategy id -> parameter -> value


class GridError(UserError):
    """A grid file mistake: one line `FILE: [table] key: message`, exit EXIT_CONFIG."""

    def __init__(self, file: str, where: str, message: str) -> None:
        super().__init__(f"{file}: {where}: {message}" if where else f"{file}: {message}",
                         EXIT_CONFIG)


@dataclass(frozen=True, slots=True)
class Job:
    """One replay: `params` over `date_from`..`date_to` (None: the store's first/last day)."""

    params: Params
    date_from: date | None = None
    date_to: date | None = None
    phase: Literal["sweep", "train", "test"] = "sweep"
    window: int | None = None  # walk-forward window index
    job_id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.job_id:
            object.__setattr__(self, "job_id", job_id(self.params, self.date_from,
                                                      self.date_to, self.phase, self.window))

    @property
    def data_key(self) -> tuple[date | None, date | None]:
        """Jobs with the same key read the same days (grouped onto one worker)."""
        return self.date_from, self.date_to


def job_id(params: Params, date_from: date | None, date_to: date | None, phase: str,
           window: int | None) -> str:
    text = json.dumps([params, str(date_from), str(date_to), phase, window], sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Sample:
    count: int
    seed: int


@dataclass(frozen=True, slots=True)
class DateSplit:
    days: int  # 1: one job per day
    step: int


@dataclass(frozen=True, slots=True)
class WalkForward:
    train_days: int
    test_days: int
    step_days: int
    mode: Literal["rolling", "anchored"]


@dataclass(frozen=True, slots=True)
class Grid:
    file: str
    # strategy -> parameter -> values (a list) or a uniform draw (low, high) when sampled
    space: dict[str, dict[str, list[Any] | tuple[Any, Any]]]
    sample: Sample | None = None
    dates: DateSplit | None = None
    walk_forward: WalkForward | None = None
    metric: str = "sharpe"
    top: int = 10
    monte_carlo: int = 0

    @property
    def varied(self) -> list[str]:
        """The parameters that take more than one value, as "strategy.param"."""
        return [f"{sid}.{name}" for sid, params in self.space.items()
                for name, values in params.items()
                if isinstance(values, tuple) or len(values) > 1]

    def param_sets(self) -> list[Params]:
        """Every parameter set of the grid, or the seeded sample of it, in a stable order."""
        names = [(sid, name) for sid, params in self.space.items() for name in params]
        choices = [self.space[sid][name] for sid, name in names]
        if self.sample is None:
            combos: Sequence[Sequence[Any]] = list(itertools.product(*choices))  # type: ignore[arg-type]
        else:
            combos = _sampled(choices, self.sample)
        out = []
        for combo in combos:
            params: Params = {}
            for (sid, name), value in zip(names, combo, strict=True):
                params.setdefault(sid, {})[name] = value
            out.append(params)
        return out

    def windows(self, days: Sequence[date]) -> list[tuple[date | None, date | None]]:
        """The date windows of a sweep over `days` (the store's days in range)."""
        if self.dates is None:
            return [(days[0], days[-1])] if days else [(None, None)]
        out = []
        for start in range(0, len(days), self.dates.step):
            chunk = days[start:start + self.dates.days]
            if len(chunk) < self.dates.days:
                break
            out.append((chunk[0], chunk[-1]))
        return out

    def jobs(self, days: Sequence[date]) -> list[Job]:
        """The sweep's jobs, grouped by window (jobs on the same days are adjacent)."""
        sets = self.param_sets()
        return [Job(params, lo, hi) for lo, hi in self.windows(days) for params in sets]


def _sampled(choices: list[Any], sample: Sample) -> list[tuple[Any, ...]]:
    rng = random.Random(sample.seed)
    if not any(isinstance(c, tuple) for c in choices):
        total = 1
        for c in choices:
            total *= len(c)
        picked = rng.sample(range(total), min(sample.count, total))
        out = []
        for index in picked:
            combo = []
            for c in reversed(choices):
                index, k = divmod(index, len(c))
                combo.append(c[k])
            out.append(tuple(reversed(combo)))
        return out
    out, seen = [], set()
    for _ in range(sample.count * 20):
        combo = tuple(_draw(rng, c) for c in choices)
        key = json.dumps(combo, default=str)
        if key not in seen:
            seen.add(key)
            out.append(combo)
            if len(out) == sample.count:
                break
    return out


def _draw(rng: random.Random, choice: list[Any] | tuple[Any, Any]) -> Any:
    if isinstance(choice, list):
        return rng.choice(choice)
    low, high = choice
    if isinstance(low, int) and isinstance(high, int):
        return rng.randint(low, high)
    return round(rng.uniform(float(low), float(high)), 6)


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


# -- reading the file ---------------------------------------------------------------

_TABLES = {"strategies", "sample", "dates", "walk_forward", "rank"}


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file; a mistake is a GridError naming the file and key."""
    file = str(path)
    try:
        with open(file, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise GridError(file, "", f"cannot read grid: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError(file, "", f"TOML syntax error: {exc}") from None
    except UnicodeDecodeError as exc:
        raise GridError(file, "", f"not UTF-8 text: {exc.reason}") from None
    unknown = sorted(set(raw) - _TABLES)
    if unknown:
        raise GridError(file, f"[{unknown[0]}]",
                        f"unknown table (known: {', '.join(sorted(_TABLES))})")
    reader = _Reader(file)
    sample = reader.sample(raw.get("sample"))
    space = reader.space(raw.get("strategies"), sampled=sample is not None)
    dates = reader.dates(raw.get("dates"))
    walk = reader.walk_forward(raw.get("walk_forward"))
    if dates is not None and walk is not None:
        raise GridError(file, "[dates]", "walk-forward makes its own windows: use [dates] "
                        "or [walk_forward], not both")
    rank = reader.table(raw.get("rank"), "rank", {"metric", "top", "monte_carlo"})
    metric = rank.get("metric", "sharpe")
    if metric not in METRICS:
        raise GridError(file, "[rank] metric", f"{metric!r} is not one of {', '.join(METRICS)}")
    top = reader.positive(rank, "rank", "top", 10)
    runs = reader.positive(rank, "rank", "monte_carlo", 0, zero=True)
    return Grid(file, space, sample, dates, walk, metric, top, runs)


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, message: str) -> GridError:
        return GridError(self.file, where, message)

    def table(self, value: Any, name: str, keys: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"[{name}]", "must be a table")
        unknown = sorted(set(value) - keys)
        if unknown:
            raise self.fail(f"[{name}] {unknown[0]}",
                            f"unknown key (known: {', '.join(sorted(keys))})")
        return value

    def positive(self, table: dict[str, Any], name: str, key: str, default: int,
                 *, zero: bool = False) -> int:
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if zero else 1):
            raise self.fail(f"[{name}] {key}", f"must be an integer >= {0 if zero else 1}, "
                            f"got {value!r}")
        return value

    def space(self, value: Any, *, sampled: bool) -> dict[str, dict[str, Any]]:
        if not value:
            raise self.fail("[strategies]", "missing: name at least one strategy id and "
                            "its parameters, e.g. [strategies.sma] fast = [5, 10]")
        if not isinstance(value, dict):
            raise self.fail("[strategies]", "must be a table of strategy ids")
        space: dict[str, dict[str, Any]] = {}
        for sid, params in value.items():
            if not isinstance(params, dict) or not params:
                raise self.fail(f"[strategies.{sid}]", "must be a table of parameters")
            space[sid] = {name: self.values(f"[strategies.{sid}] {name}", v, sampled)
                          for name, v in params.items()}
        return space

    def values(self, where: str, value: Any, sampled: bool) -> list[Any] | tuple[Any, Any]:
        if isinstance(value, list):
            if not value:
                raise self.fail(where, "an empty list gives no job")
            if any(isinstance(v, (dict, list)) for v in value):
                raise self.fail(where, "values must be numbers, strings or booleans")
            return value
        if isinstance(value, dict):
            if set(value) == {"low", "high"}:
                if not sampled:
                    raise self.fail(where, "{ low, high } is drawn at random: add a [sample] "
                                    "table with count and seed")
                low, high = value["low"], value["high"]
                if not all(_number(v) for v in (low, high)) or low > high:
                    raise self.fail(where, f"low and high must be numbers, low <= high, got "
                                    f"{low!r}, {high!r}")
                return (low, high)
            if set(value) in ({"start", "stop", "step"}, {"start", "stop"}):
                return self.range(where, value)
            raise self.fail(where, "a range is { start, stop, step } (or { low, high } "
                            f"with [sample]), got keys {', '.join(sorted(value))}")
        return [value]

    def range(self, where: str, value: dict[str, Any]) -> list[Any]:
        start, stop, step = value["start"], value["stop"], value.get("step", 1)
        if not all(_number(v) for v in (start, stop, step)) or step <= 0 or start > stop:
            raise self.fail(where, f"a range needs numbers with start <= stop and step > 0, got "
                            f"start={start!r} stop={stop!r} step={step!r}")
        integral = all(isinstance(v, int) for v in (start, stop, step))
        lo, hi, inc = (Decimal(str(v)) for v in (start, stop, step))
        count = int((hi - lo) / inc) + 1
        if count > 100_000:
            raise self.fail(where, f"{count} values: too many for one parameter")
        values = [lo + k * inc for k in range(count)]
        return [int(v) for v in values] if integral else [float(v) for v in values]

    def sample(self, value: Any) -> Sample | None:
        if value is None:
            return None
        table = self.table(value, "sample", {"count", "seed"})
        if "seed" not in table:
            raise self.fail("[sample] seed", "missing: a sample needs a seed to be repeatable")
        seed = table["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise self.fail("[sample] seed", f"must be an integer, got {seed!r}")
        if "count" not in table:
            raise self.fail("[sample] count", "missing: how many parameter sets to draw")
        return Sample(self.positive(table, "sample", "count", 1), seed)

    def dates(self, value: Any) -> DateSplit | None:
        if value is None:
            return None
        table = self.table(value, "dates", {"split", "days", "step"})
        split = table.get("split", "day")
        if split == "day":
            if "days" in table:
                raise self.fail("[dates] days", 'only with split = "window"')
            return DateSplit(1, self.positive(table, "dates", "step", 1))
        if split != "window":
            raise self.fail("[dates] split", f'must be "day" or "window", got {split!r}')
        if "days" not in table:
            raise self.fail("[dates] days", 'missing: split = "window" needs days')
        days = self.positive(table, "dates", "days", 1)
        return DateSplit(days, self.positive(table, "dates", "step", days))

    def walk_forward(self, value: Any) -> WalkForward | None:
        if value is None:
            return None
        table = self.table(value, "walk_forward",
                           {"train_days", "test_days", "step_days", "mode"})
        for key in ("train_days", "test_days"):
            if key not in table:
                raise self.fail(f"[walk_forward] {key}", "missing")
        train = self.positive(table, "walk_forward", "train_days", 1)
        test = self.positive(table, "walk_forward", "test_days", 1)
        step = self.positive(table, "walk_forward", "step_days", test)
        mode = table.get("mode", "rolling")
        if mode not in ("rolling", "anchored"):
            raise self.fail("[walk_forward] mode", f'must be "rolling" or "anchored", got {mode!r}')
        return WalkForward(train, test, step, mode)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
