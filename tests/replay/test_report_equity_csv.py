"""equity.csv is written row by row as text (issue 15: the report's writing is
part of a replay's cost); it must equal what the csv module writes from
`iso_ns`, `dec` and the drawdown's repr, for any samples: repeated Decimal
objects, values equal but differently written (1.0 and 1.00), negative zero,
strategies missing from some samples, samples with no breakdown at all."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.metrics import drawdowns
from replay.report import ReportBuilder
from replay.report_text import dec, float_text, iso_ns, iso_ns_many

MONEY = st.decimals(min_value=Decimal("-1e6"), max_value=Decimal("1e7"), places=4,
                    allow_nan=False, allow_infinity=False) | st.sampled_from(
    [Decimal("1.0"), Decimal("1.00"), Decimal("-0"), Decimal("0E-8"), Decimal("1E+3")])


def _reference(b: ReportBuilder) -> str:
    """The writer as it was: the csv module, cell by cell."""
    eq = np.asarray([float(e) for e in b._equity], dtype=np.float64)
    dd = drawdowns(eq)
    strategies = sorted({s for by in b._by_strategy if by for s in by})
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(("ts", "ts_ns", "equity", "drawdown", *strategies))
    for i, ts in enumerate(b._equity_ts):
        by = b._by_strategy[i] or {}
        w.writerow((iso_ns(ts), ts, dec(b._equity[i]), float_text(dd[i]),
                    *(dec(by[s]) if s in by else "" for s in strategies)))
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=st.integers(0, 40), names=st.lists(
    st.sampled_from(["sma", "b,q", "mom"]), unique=True, max_size=3))
def test_equity_csv_equals_the_csv_modules(tmp_path_factory, data, n: int,
                                          names: list[str]) -> None:
    b = ReportBuilder(period_ns=60_000_000_000)
    ts = 1_381_132_800_000_000_000
    prev: Decimal | None = None
    for _ in range(n):
        ts += data.draw(st.sampled_from([0, 1, 60_000_000_000, 60_000_000_123]))
        equity = prev if prev is not None and data.draw(st.booleans()) else data.draw(MONEY)
        prev = equity
        by = None if not names or data.draw(st.booleans()) else {
            s: data.draw(MONEY) for s in names if data.draw(st.booleans())}
        b.add_equity(ts, equity, by)
    path: Path = tmp_path_factory.mktemp("eq") / "equity.csv"
    b._write_equity(path, drawdowns(np.asarray([float(e) for e in b._equity])))
    assert path.read_text(encoding="utf-8") == _reference(b)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-2_000_000_000_000_000_000, 9_000_000_000_000_000_000)
                | st.integers(0, 10**9).map(lambda s: s * 1_000_000_000), max_size=30))
def test_iso_ns_many_is_iso_ns_of_each(ts: list[int]) -> None:
    assert iso_ns_many(ts) == [iso_ns(t) for t in ts]
