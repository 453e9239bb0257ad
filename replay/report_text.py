"""How the report's values print as text, in every file it writes: exact
fixed-point money (`dec`), ISO-8601 UTC times with nanoseconds (`iso_ns`, and
`iso_ns_many` for a column of them), floats as their shortest round-trip text
(`float_text`), and report.json's layout (`dumps_report`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np


def dumps_report(report: Mapping[str, Any]) -> str:
    """report.json's text: sorted keys, 2-space indent, trailing newline.
    NaN/inf raise: an undefined metric must already be None."""
    return json.dumps(report, sort_keys=True, indent=2, allow_nan=False) + "\n"


def dec(value: Decimal) -> str:
    """Exact fixed-point text of a Decimal ("0.00000100", never "1.00E-6"); a
    negative zero prints as zero."""
    if value == 0:
        value = abs(value)
    return format(value, "f")


def iso_ns(ts_ns: int) -> str:
    """ISO-8601 UTC with a nanosecond fraction when there is one."""
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    day, second = divmod(seconds, 86_400)
    hour, second = divmod(second, 3_600)
    minute, second = divmod(second, 60)
    # the date from datetime once a day; the time of day is arithmetic (an equity
    # curve's thousands of rows spent most of their writing in strftime)
    text = f"{_iso_day(day)}T{hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{ns:09d}Z" if ns else f"{text}Z"


def iso_ns_many(ts_ns: list[int]) -> list[str]:
    """`iso_ns` of each of `ts_ns`, through numpy's datetime64 text (the
    equity curve's thousands of rows); equal to `iso_ns` row by row."""
    if not ts_ns:
        return []
    raw = np.datetime_as_string(np.asarray(ts_ns, dtype="datetime64[ns]"), unit="ns").tolist()
    whole = (np.asarray(ts_ns, dtype=np.int64) % 1_000_000_000 == 0).tolist()
    return [f"{r[:19]}Z" if w else f"{r}Z" for r, w in zip(raw, whole, strict=True)]


@lru_cache(maxsize=64)
def _iso_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


def float_text(x: float) -> str:
    # repr is the shortest text that round-trips: stable and exact for floats.
    return "" if x != x else repr(float(x))
