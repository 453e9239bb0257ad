"""The replay report: metrics against hand-computed values, round-trip trade
extraction (partial closes, flips, exact Decimal sums), the files written and
their determinism."""

from __future__ import annotations

import csv
import json
import math
import re
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.orders import Fill
from replay.metrics import (
    TradeLedger,
    drawdowns,
    equity_metrics,
    infer_period_ns,
    max_drawdown,
    periods_per_year,
    resample,
    sharpe,
    simple_returns,
    sortino,
    total_return,
    trade_stats,
)
from replay.report import ReportBuilder, dec, dumps_report, iso_ns, summary_lines
from replay.report_html import MAX_POINTS, downsample, nice_ticks

D = Decimal
NS = 1_000_000_000
MIN = 60 * NS
T0 = 1_709_251_200 * NS  # 2024-03-01T00:00:00Z
PER_YEAR_1M = 365 * 24 * 60  # one-minute periods in a 365-day year


def fill(
    side: str,
    qty: str,
    price: str,
    fee: str = "0",
    *,
    ts: int = T0,
    strategy: str = "s1",
    symbol: str = "BTCUSDT",
    order: str = "c1",
) -> Fill:
    return Fill(
        ts_event=ts,
        ts_recv=ts + 1,
        venue="sim",
        symbol=symbol,
        strategy_id=strategy,
        client_order_id=order,
        trade_id=f"t-{order}",
        side=side,
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        fee_currency="USDT",
        liquidity="TAKER",
    )


def ledger_of(*fills: Fill) -> TradeLedger:
    """The fills folded in order, one second apart from T0."""
    ledger = TradeLedger()
    for i, f in enumerate(fills):
        ledger.apply(msgspec.structs.replace(f, ts_event=T0 + i * NS))
    return ledger


# -- equity series ---------------------------------------------------------------------


def test_sharpe_sortino_and_drawdown_match_hand_computed_values() -> None:
    # returns +10 %, -10 %, +10 %
    ts = [T0, T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN]
    eq = [D(100), D(110), D(99), D("108.9")]
    m = equity_metrics(ts, eq, MIN)
    # mean = 1/30; std (ddof=1) = sqrt(((1/15)^2 * 2 + (2/15)^2) / 2) = sqrt(1/75)
    assert m["sharpe"] == pytest.approx((1 / 30) / math.sqrt(1 / 75) * math.sqrt(PER_YEAR_1M))
    # downside deviation = sqrt(0.1^2 / 3)
    assert m["sortino"] == pytest.approx((1 / 30) / math.sqrt(0.01 / 3) * math.sqrt(PER_YEAR_1M))
    assert m["max_drawdown"] == pytest.approx(0.1)  # 110 -> 99
    assert m["return_period_s"] == 60.0
    assert m["returns"] == 3


def test_periods_per_year_uses_a_365_day_calendar() -> None:
    assert periods_per_year(MIN) == PER_YEAR_1M
    assert periods_per_year(86_400 * NS) == 365


def test_resample_forward_fills_onto_the_callers_grid() -> None:
    # an off-grid sample at 90 s, a quiet gap, a final sample at 4 min
    ts = np.array([0, 60, 90, 240], dtype=np.int64) * NS
    eq = np.array([1.0, 2.0, 3.0, 4.0])
    assert resample(ts, eq, MIN).tolist() == [1.0, 2.0, 3.0, 3.0, 4.0]
    # a final partial period rounds the grid up so the last sample is used
    ts = np.array([0, 60, 120, 150], dtype=np.int64) * NS
    assert resample(ts, eq, MIN).tolist() == [1.0, 2.0, 3.0, 4.0]


def test_the_period_is_inferred_as_the_median_gap() -> None:
    ts = np.array([0, 60, 120, 180, 200, 200], dtype=np.int64) * NS
    assert infer_period_ns(ts) == MIN
    assert infer_period_ns(np.array([5, 5], dtype=np.int64)) is None
    m = equity_metrics([T0, T0 + MIN, T0 + 2 * MIN], [D(100), D(101), D(100)], None)
    assert m["return_period_s"] == 60.0


def test_flat_equity_has_no_sharpe_or_sortino_and_zero_drawdown() -> None:
    ts = [T0 + i * MIN for i in range(10)]
    m = equity_metrics(ts, [D(1000)] * 10, MIN)
    assert m["sharpe"] is None and m["sortino"] is None
    assert m["max_drawdown"] == 0.0


def test_constant_growth_is_not_an_infinite_sharpe() -> None:
    # +10 % every period: std is float noise, not risk
    eq = [D(100), D(110), D(121), D("133.1"), D("146.41")]
    m = equity_metrics([T0 + i * MIN for i in range(5)], eq, MIN)
    assert m["sharpe"] is None
    assert m["sortino"] is None  # no negative return
    assert m["max_drawdown"] == 0.0


def test_all_positive_but_varying_returns_have_sharpe_but_no_sortino() -> None:
    r = simple_returns(np.array([100.0, 101.0, 103.0, 104.0]))
    assert r is not None
    ratio = sharpe(r, PER_YEAR_1M)
    assert ratio is not None and ratio > 0
    assert sortino(r, PER_YEAR_1M) is None


def test_too_few_samples_or_non_positive_equity_leave_ratios_undefined() -> None:
    one = equity_metrics([T0], [D(100)], MIN)
    assert one["sharpe"] is None and one["returns"] == 0 and one["max_drawdown"] == 0.0
    none = equity_metrics([], [], MIN)
    assert none["max_drawdown"] is None and none["return_period_s"] == 60.0
    assert equity_metrics([], [], None)["return_period_s"] is None
    bust = equity_metrics([T0 + i * MIN for i in range(4)], [D(10), D(0), D(5), D(6)], MIN)
    assert bust["sharpe"] is None and bust["sortino"] is None
    assert bust["max_drawdown"] == 1.0


def test_drawdown_is_undefined_until_equity_has_a_positive_peak() -> None:
    dd = drawdowns(np.array([-5.0, 0.0, 10.0, 5.0, 20.0, 15.0]))
    assert np.isnan(dd[:2]).all()
    assert dd[2:].tolist() == [0.0, 0.5, 0.0, 0.25]
    assert max_drawdown(dd) == 0.5
    assert max_drawdown(drawdowns(np.array([-1.0, -2.0]))) is None


def test_total_return_is_exact_until_the_float() -> None:
    assert total_return(D(100_000), D("100116.25")) == 0.0011625
    assert total_return(D(0), D(5)) is None


# -- round trips -----------------------------------------------------------------------


def test_a_simple_long_round_trip_nets_its_fees() -> None:
    ledger = ledger_of(fill("BUY", "1", "100", "0.1"), fill("SELL", "1", "110", "0.1"))
    (trade,) = ledger.closed
    assert (trade.direction, trade.realized, trade.fees, trade.pnl) == (
        "LONG", D(10), D("0.2"), D("9.8"),
    )  # fmt: skip
    assert trade.fills == 2 and trade.max_qty == D(1)
    assert trade.opened_ns == T0 and trade.closed_ns == T0 + NS


def test_partial_closes_use_average_cost() -> None:
    ledger = ledger_of(
        fill("BUY", "2", "100"),
        fill("BUY", "1", "103"),  # avg 101
        fill("SELL", "1", "104"),  # +3
        fill("SELL", "2", "98"),  # -6
    )
    (trade,) = ledger.closed
    assert trade.realized == D(-3) and trade.max_qty == D(3) and trade.fills == 4


def test_a_round_trip_is_exact_even_when_the_average_cost_is_not() -> None:
    ledger = ledger_of(
        fill("BUY", "1", "100"),
        fill("BUY", "2", "101"),  # avg 100.666...
        fill("SELL", "1", "102"),
        fill("SELL", "2", "99"),
    )
    (trade,) = ledger.closed
    # proceeds 300 - cost 302, with no rounding left over from the partial close
    assert trade.realized == D(-2)
    book = ledger.books[("s1", "sim", "BTCUSDT")]
    assert book.qty == 0 and book.cost == 0 and book.realized == D(-2)


def test_a_flip_closes_one_trade_and_opens_the_next_splitting_the_fee() -> None:
    ledger = ledger_of(
        fill("BUY", "1", "100", "0.1"),
        fill("SELL", "3", "110", "0.3"),  # closes the long with 1, opens a short of 2
        fill("BUY", "2", "105", "0.2"),
    )
    long, short = ledger.closed
    assert (long.direction, long.realized, long.fees, long.pnl) == (
        "LONG", D(10), D("0.2"), D("9.8"),
    )  # fmt: skip
    assert (short.direction, short.realized, short.fees, short.pnl) == (
        "SHORT", D(10), D("0.4"), D("9.6"),
    )  # fmt: skip
    assert long.closed_ns == short.opened_ns == T0 + NS
    assert long.fills == 2 and short.fills == 2


def test_a_fee_split_that_does_not_divide_still_sums_exactly() -> None:
    ledger = ledger_of(
        fill("SELL", "1", "50", "0.1"),
        fill("BUY", "3", "40", "0.1"),  # 1/3 of the fee closes the short
        fill("SELL", "2", "45", "0"),
    )
    short, long = ledger.closed
    assert short.fees + long.fees == D("0.2")
    assert short.realized == D(10) and long.realized == D(10)


def test_an_open_position_is_not_a_trade_and_books_are_per_strategy() -> None:
    ledger = ledger_of(
        fill("BUY", "1", "100", strategy="a"),
        fill("SELL", "1", "100", strategy="b"),  # another strategy: opens its own short
    )
    assert ledger.closed == []
    assert ledger.books[("a", "sim", "BTCUSDT")].qty == D(1)
    assert ledger.books[("b", "sim", "BTCUSDT")].qty == D(-1)
    stats = trade_stats(ledger.closed)
    assert stats.trades == 0 and stats.win_rate is None and stats.profit_factor is None


def test_win_rate_and_profit_factor() -> None:
    ledger = ledger_of(
        fill("BUY", "1", "100"), fill("SELL", "1", "103"),  # +3
        fill("BUY", "1", "100"), fill("SELL", "1", "99"),  # -1
        fill("BUY", "1", "100"), fill("SELL", "1", "101"),  # +1
        fill("BUY", "1", "100"), fill("SELL", "1", "100"),  # 0: a trade, not a win
    )  # fmt: skip
    stats = trade_stats(ledger.closed)
    assert stats.trades == 4 and stats.win_rate == 0.5 and stats.profit_factor == 4.0


def test_all_winners_have_no_profit_factor_and_all_losers_zero() -> None:
    wins = ledger_of(fill("BUY", "1", "1"), fill("SELL", "1", "2"))
    assert trade_stats(wins.closed).win_rate == 1.0
    assert trade_stats(wins.closed).profit_factor is None
    losses = ledger_of(fill("BUY", "1", "2"), fill("SELL", "1", "1"))
    assert trade_stats(losses.closed).win_rate == 0.0
    assert trade_stats(losses.closed).profit_factor == 0.0


_qty = st.integers(min_value=1, max_value=50).map(lambda n: D(n) / 10)
_price = st.integers(min_value=1, max_value=10_000).map(lambda n: D(n) / 7)


@given(st.lists(st.tuples(st.booleans(), _qty, _price, st.integers(0, 9)), max_size=40))
def test_closed_trades_account_for_every_cash_flow_exactly(
    steps: list[tuple[bool, Decimal, Decimal, int]],
) -> None:
    ledger = TradeLedger()
    pos = cash = fees = D(0)
    for i, (buy, qty, price, fee) in enumerate(steps):
        ledger.apply(fill("BUY" if buy else "SELL", str(qty), str(price), str(D(fee) / 3),
                          ts=T0 + i, order=f"c{i}"))  # fmt: skip
        pos += qty if buy else -qty
        cash += -qty * price if buy else qty * price
        fees += D(fee) / 3
    # Flatten at a known price so every fill belongs to a closed trade.
    if pos:
        ledger.apply(fill("SELL" if pos > 0 else "BUY", str(abs(pos)), "1", ts=T0 + 10**6))
        cash += pos * 1
    assert ledger.books == {} or all(b.qty == 0 and b.cost == 0 for b in ledger.books.values())
    realized = sum((t.realized for t in ledger.closed), D(0))
    trade_fees = sum((t.fees for t in ledger.closed), D(0))
    # Partial closes may round (28 digits); the round trips cancel it out.
    assert abs(realized - cash) < D("1e-20")
    assert abs(trade_fees - fees) < D("1e-20")


# -- the report files ------------------------------------------------------------------


def builder(by_strategy: bool = True) -> ReportBuilder:
    b = ReportBuilder(period_ns=MIN)
    fills = [
        fill("BUY", "0.1", "100.1", "0.01", ts=T0 + 10 * NS, strategy="sma", order="o1"),
        fill("SELL", "0.1", "100.3", "0.02", ts=T0 + 70 * NS, strategy="sma", order="o2"),
        fill("BUY", "2", "0.2", "0.001", ts=T0 + 80 * NS, strategy="mm", symbol="ETHUSDT",
             order="o3"),
    ]  # fmt: skip
    for f in fills:
        b.add_fill(f)
    for i, e in enumerate(["1000", "1000.01", "999.9", "1000.2"]):
        per = {"sma": D(e) - 1000, "mm": D(i)} if by_strategy else None
        b.add_equity(T0 + i * MIN, D(e), per)
    b.count_rejection("max_order_qty")
    b.count_rejection("max_order_qty")
    b.count_rejection("")
    b.set_final(
        {"BTCUSDT": D(0), "ETHUSDT": D(2)},
        realized=D("0.1"),
        unrealized=D("0.2"),
        fees=D("0.031"),
        initial_equity=D(1000),
    )
    return b


def test_report_json_holds_the_contract_fields(tmp_path: Path) -> None:
    report = builder().write(tmp_path, events_in=500, wall_s=2.0, extra={"config": "x.toml"})
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == report
    assert report["events_in"] == 500 and report["events_per_s"] == 250.0
    assert report["fills"][0] == {
        "ts_event": T0 + 10 * NS, "strategy_id": "sma", "order_id": "o1",
        "symbol": "BTCUSDT", "side": "BUY", "qty": "0.1", "price": "100.1", "fee": "0.01",
    }  # fmt: skip
    assert report["final_positions"] == {"BTCUSDT": "0", "ETHUSDT": "2"}
    # exact: 0.1 + 0.2 - 0.031 in float would not print as this
    assert report["pnl"] == {
        "realized": "0.1", "unrealized": "0.2", "fees": "0.031", "net": "0.269",
    }  # fmt: skip
    m = report["metrics"]
    assert set(m) >= {
        "total_return", "sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor",
        "trades",
    }  # fmt: skip
    # the one round trip made 0.02 and paid 0.03 in fees: a loser
    assert m["total_return"] == 0.000269 and m["trades"] == 1 and m["win_rate"] == 0.0
    assert m["profit_factor"] == 0.0
    assert report["rejections"] == {"max_order_qty": 2, "venue": 1}
    assert report["config"] == "x.toml"


def test_breakdowns_sum_exactly_and_mark_open_positions_only_when_priced(
    tmp_path: Path,
) -> None:
    report = builder().build(events_in=1, wall_s=1.0)
    sma = report["per_strategy"]["sma"]
    assert sma["fills"] == 2 and sma["trades"] == 1 and sma["win_rate"] == 0.0
    # 0.1 * (100.3 - 100.1) = 0.02, fees 0.03
    assert sma["pnl"] == {"realized": "0.02", "fees": "0.03", "unrealized": "0", "net": "-0.01"}
    mm = report["per_strategy"]["mm"]
    assert mm["pnl"]["unrealized"] is None and mm["pnl"]["net"] is None  # open, no mark
    assert mm["trades"] == 0 and mm["win_rate"] is None
    assert set(report["per_symbol"]) == {"BTCUSDT", "ETHUSDT"}

    b = builder()
    b.set_final({}, D(0), D(0), D(0), D(1000), marks={"ETHUSDT": D("0.25")})
    eth = b.build(events_in=1, wall_s=1.0)["per_symbol"]["ETHUSDT"]
    assert eth["pnl"] == {"realized": "0", "fees": "0.001", "unrealized": "0.10", "net": "0.099"}


def test_no_trades_give_nulls_not_nans(tmp_path: Path) -> None:
    b = ReportBuilder()
    b.set_final({}, D(0), D(0), D(0), D(1000))
    report = b.write(tmp_path, events_in=0, wall_s=0.0)
    text = (tmp_path / "report.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    m = report["metrics"]
    assert m["trades"] == 0
    for key in ("win_rate", "profit_factor", "sharpe", "sortino", "max_drawdown"):
        assert m[key] is None, key
    assert m["total_return"] == 0.0 and report["events_per_s"] is None
    assert report["fills"] == [] and report["per_strategy"] == {}


def test_csv_files_are_parseable_and_exact(tmp_path: Path) -> None:
    builder().write(tmp_path, events_in=1, wall_s=1.0)
    with (tmp_path / "fills.csv").open(newline="") as f:
        fills = list(csv.DictReader(f))
    assert len(fills) == 3
    assert fills[0]["order_id"] == "o1" and fills[0]["price"] == "100.1"
    assert fills[0]["ts"] == "2024-03-01T00:00:10Z" and fills[0]["ts_event"] == str(T0 + 10 * NS)
    with (tmp_path / "equity.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["ts", "ts_ns", "equity", "drawdown", "mm", "sma"]
    assert [r["equity"] for r in rows] == ["1000", "1000.01", "999.9", "1000.2"]
    assert rows[1]["ts"] == "2024-03-01T00:01:00Z" and rows[3]["mm"] == "3"
    assert float(rows[2]["drawdown"]) == pytest.approx((1000.01 - 999.9) / 1000.01)
    with (tmp_path / "trades.csv").open(newline="") as f:
        (trade,) = list(csv.DictReader(f))
    assert trade["pnl"] == "-0.01" and trade["direction"] == "LONG"


def test_equity_csv_without_per_strategy_columns(tmp_path: Path) -> None:
    builder(by_strategy=False).write(tmp_path, events_in=1, wall_s=1.0)
    header = (tmp_path / "equity.csv").read_text().splitlines()[0]
    assert header == "ts,ts_ns,equity,drawdown"


def test_html_is_self_contained_with_svg_charts_and_escaped_text(tmp_path: Path) -> None:
    b = builder()
    b.add_fill(fill("BUY", "1", "1", strategy="<script>alert(1)</script>", symbol="A&B"))
    b.count_rejection("<b>check</b>")
    report = b.write(tmp_path, events_in=1, wall_s=1.0)
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    # equity, drawdown and a price chart per traded symbol
    assert html.count("<svg") == 2 + len(report["per_symbol"])
    assert re.search(r'<path d="M[0-9.]+,[0-9.]+ L', html)
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;check&lt;/b&gt;" in html and "A&amp;B" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched: works offline


def test_html_charts_are_downsampled(tmp_path: Path) -> None:
    b = ReportBuilder(period_ns=MIN)
    rng = np.random.default_rng(7)
    equity = 10_000 + np.cumsum(rng.normal(0, 5, 20_000))
    for i, e in enumerate(equity):
        b.add_equity(T0 + i * MIN, D(f"{e:.2f}"))
    b.set_final({}, D(0), D(0), D(0), D(10_000))
    b.write(tmp_path, events_in=1, wall_s=1.0)
    html = (tmp_path / "report.html").read_text()
    for path in re.findall(r'<path d="([^"]+)"', html):
        assert path.count(" L") + 1 <= MAX_POINTS + 2  # + the area's closing corners
    assert len(html) < 400_000


def test_downsample_keeps_the_extremes_and_the_ends() -> None:
    values = np.sin(np.linspace(0, 60, 50_001))
    values[12_345] = -5.0
    values[40_000] = 5.0
    idx = downsample(values)
    assert len(idx) <= MAX_POINTS and (np.diff(idx) > 0).all()
    assert {0, 50_000, 12_345, 40_000} <= set(idx.tolist())
    assert downsample(np.arange(10.0)).tolist() == list(range(10))


def _downsample_bucket_by_bucket(values: np.ndarray, max_points: int) -> np.ndarray:
    n = values.size
    if n <= max_points:
        return np.arange(n)
    edges = np.linspace(1, n - 1, (max_points - 2) // 2 + 1).astype(np.int64)
    keep = [0, n - 1]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi > lo:
            keep += [lo + int(np.argmin(values[lo:hi])), lo + int(np.argmax(values[lo:hi]))]
    return np.unique(np.asarray(keep, dtype=np.int64))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 5_000), points=st.integers(4, 300), levels=st.integers(1, 50),
       seed=st.integers(0, 2**32 - 1), nans=st.booleans())
def test_downsample_picks_what_argmin_and_argmax_pick(n: int, points: int, levels: int,
                                                       seed: int, nans: bool) -> None:
    """The vectorised buckets keep the same indices as argmin/argmax bucket by
    bucket, ties (few distinct levels) and NaN included."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, levels, n).astype(np.float64)
    if nans:
        values[rng.integers(0, n, max(1, n // 50))] = np.nan
    assert downsample(values, points).tolist() == \
        _downsample_bucket_by_bucket(values, points).tolist()


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    assert nice_ticks(99_900.0, 104_700.0) == [98_000, 100_000, 102_000, 104_000, 106_000]
    assert nice_ticks(-0.93, 0.0) == [-1.0, -0.75, -0.5, -0.25, 0.0]
    assert len(nice_ticks(5.0, 5.0)) >= 2


def test_identical_inputs_give_identical_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    builder().write(a, events_in=10, wall_s=1.0)
    builder().write(b, events_in=10, wall_s=3.7)
    for name in ("fills.csv", "trades.csv", "equity.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name

    def stable(path: Path) -> str:
        report = json.loads(path.read_text())
        del report["wall_s"], report["events_per_s"]
        return dumps_report(report)

    assert stable(a / "report.json") == stable(b / "report.json")
    text = (a / "report.json").read_text()
    assert text == dumps_report(json.loads(text))  # sorted keys, indent 2, as written


def test_misuse_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="set_final"):
        ReportBuilder().write(tmp_path, events_in=0, wall_s=1.0)
    b = ReportBuilder()
    b.add_equity(T0 + MIN, D(1))
    with pytest.raises(ValueError, match="before the previous"):
        b.add_equity(T0, D(1))
    with pytest.raises(ValueError, match="overwrite"):
        builder().build(events_in=1, wall_s=1.0, extra={"pnl": 1})
    with pytest.raises(ValueError):
        ReportBuilder(period_ns=0)


def test_decimal_and_time_text() -> None:
    assert dec(D("1E-8")) == "0.00000001"
    assert dec(D("-0.00")) == "0.00"
    assert dec(D("1.5E+3")) == "1500"
    assert iso_ns(T0) == "2024-03-01T00:00:00Z"
    assert iso_ns(T0 + 1_500) == "2024-03-01T00:00:00.000001500Z"


@settings(max_examples=300, deadline=None)
@given(ts=st.integers(-2_208_988_800 * 10**9, 253_402_300_799 * 10**9))  # 1900 .. 9999
def test_iso_ns_is_the_calendar_text_of_any_instant(ts: int) -> None:
    """The per-day date cache and the time-of-day arithmetic give datetime's text."""
    seconds, ns = divmod(ts, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert iso_ns(ts) == (f"{text}.{ns:09d}Z" if ns else f"{text}Z")


def test_summary_lines() -> None:
    report = builder().build(events_in=1_234_567, wall_s=2.5)
    text = "\n".join(summary_lines(report))
    assert "1,234,567" in text and "493,827 events/s" in text
    assert "fills      3" in text and "net pnl    0.269" in text
    assert "return     0.03%" in text and "max drawdown 0.01%" in text
    assert "rejected 3" in text
    empty = ReportBuilder()
    empty.set_final({}, D(0), D(0), D(0), D(0))
    lines = summary_lines(empty.build(events_in=0, wall_s=0.0))
    assert "sharpe n/a" in lines[-1] and "n/a events/s" in lines[0]


def test_pnl_sums_do_not_round_at_the_default_decimal_precision() -> None:
    qty, buy, sell = D("123456789.123456789"), D("98765.4321098765432"), D("98766.0000000000001")
    b = ReportBuilder()
    b.add_fill(fill("BUY", str(qty), str(buy), ts=T0))
    b.add_fill(fill("SELL", str(qty), str(sell), ts=T0 + 1))
    b.set_final({}, D(0), D(0), D(0), D(1))
    report = b.build(events_in=2, wall_s=1.0)
    with localcontext() as ctx:
        ctx.prec = 100
        exact = qty * sell - qty * buy
    assert report["per_strategy"]["s1"]["pnl"]["realized"] == dec(exact)
    assert len(dec(exact).replace(".", "")) > 28  # more digits than the default context keeps
