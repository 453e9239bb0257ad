"""The report's trading sections (issue 14 item 4): a price chart per traded
symbol with every fill marked, the round trips, the buy-and-hold benchmark,
the returns per day, and axis labels that differ. The HTML is parsed, not
grepped: what a reader sees is what is checked."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.orders import Fill
from events.store import list_parts
from replay.report import ReportBuilder
from replay.report_html import _axis_num, _axis_pct, axis_labels, equity_svg, nice_ticks
from tests.conftest import REPO, SHARED_DATA, cli_env, tapeloop_cmd

D = Decimal
NS = 1_000_000_000
MIN = 60 * NS
DAY = 86_400 * NS
T0 = 1_709_251_200 * NS  # 2024-03-01T00:00:00Z
SPY_DAY = SHARED_DATA / "lean" / "equity" / "usa" / "tick" / "spy" / "20131007_trade.zip"


class Page(HTMLParser):
    """The parts of a report page the tests read: each chart's y-axis labels,
    the fill markers, the benchmark line and the tables' rows by heading."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.charts: list[list[str]] = []
        self.markers: list[dict[str, str]] = []
        self.benchmark: dict[str, str] | None = None
        self.tables: dict[str, list[list[str]]] = {}
        self._heading: str | None = None
        self._in: str | None = None
        self._text = ""
        self._row: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self.charts.append([])
        elif tag == "path" and "fill-marker" in a.get("class", ""):
            self.markers.append(a)
        elif tag == "path" and a.get("class") == "benchmark":
            self.benchmark = a
        elif tag == "text" and a.get("class") == "y-label":
            self._in, self._text = "label", ""
        elif tag == "h2":
            self._in, self._text = "h2", ""
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._in, self._text = "cell", ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "text" and self._in == "label":
            self.charts[-1].append(self._text)
        elif tag == "h2":
            self._heading = self._text
        elif tag in ("td", "th") and self._row is not None:
            self._row.append(self._text)
        elif tag == "tr" and self._row is not None and self._heading is not None:
            self.tables.setdefault(self._heading, []).append(self._row)
            self._row = None
        if tag in ("text", "h2", "td", "th"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text += data


def fill(side: str, qty: str, price: str, ts: int, symbol: str = "BTCUSDT",
         strategy: str = "s1") -> Fill:
    return Fill(ts_event=ts, ts_recv=ts, venue="sim", symbol=symbol, strategy_id=strategy,
                client_order_id=f"c{ts}", trade_id=f"t{ts}", side=side, qty=D(qty),
                price=D(price), fee=D(0), fee_currency="USDT", liquidity="TAKER")


# -- axis labels -------------------------------------------------------------------------


def test_equity_axis_labels_differ_when_the_equity_moves_by_a_hair() -> None:
    """The SPY run's equity axis read "1M, 1M": a million moving by tens."""
    ts = np.arange(5, dtype=np.int64) * MIN + T0
    eq = np.array([1_000_000.0, 999_960.0, 999_955.65, 1_000_010.0, 1_000_020.0])
    labels = Page(equity_svg(ts, eq)).charts[0]
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    assert "999,960" in labels and "1,000,000" in labels


@given(st.floats(1e-3, 1e9), st.floats(1e-6, 0.5))
@settings(max_examples=300, deadline=None)
def test_axis_labels_are_distinct_for_any_range(centre: float, rel: float) -> None:
    ticks = nice_ticks(centre * (1 - rel), centre * (1 + rel))
    for fmt in (_axis_num, _axis_pct):
        labels = axis_labels(ticks, fmt)
        assert len(set(labels)) == len(labels), (centre, rel, labels)


def test_axis_labels_keep_the_short_form_when_it_already_differs() -> None:
    assert axis_labels([1e6, 2e6, 3e6], _axis_num) == ["1M", "2M", "3M"]
    assert axis_labels([-0.5, 0.0], _axis_pct) == ["-0.5%", "0%"]


# -- builder: benchmark, daily returns, markers, trades ---------------------------------


def built(tmp_path: Path, fills: list[Fill], samples: list[tuple[int, str, dict]],
          **final: object) -> tuple[dict, Page]:
    b = ReportBuilder(period_ns=MIN)
    for f in fills:
        b.add_fill(f)
    for ts, eq, marks in samples:
        b.add_equity(ts, D(eq), marks=marks)
    b.set_final({}, D(0), D(0), D(0), D(1000), currency="USDT", **final)  # type: ignore[arg-type]
    report = b.write(tmp_path, events_in=1, wall_s=1.0)
    return report, Page((tmp_path / "report.html").read_text())


def test_benchmark_buys_at_the_first_mark_and_holds(tmp_path: Path) -> None:
    fills = [fill("BUY", "1", "101", T0 + MIN), fill("SELL", "1", "104", T0 + 2 * MIN)]
    samples = [(T0, "1000", {"BTCUSDT": None}), (T0 + MIN, "1000", {"BTCUSDT": D(100)}),
               (T0 + 2 * MIN, "1003", {"BTCUSDT": D(103)}),
               (T0 + 3 * MIN, "1003", {"BTCUSDT": D(120)})]
    report, page = built(tmp_path, fills, samples, quotes={"BTCUSDT": "USDT"})
    bench = report["benchmark"]
    # 1000 USDT buys 10 units at 100; they are worth 1200 at the last mark
    assert bench == {"symbols": ["BTCUSDT"], "first_prices": {"BTCUSDT": "100"},
                     "final_equity": "1200.00000000", "total_return": pytest.approx(0.2)}
    assert page.benchmark is not None and float(page.benchmark["data-last"]) == 1200.0


def test_benchmark_leaves_out_a_symbol_quoted_in_another_currency(tmp_path: Path) -> None:
    fills = [fill("BUY", "1", "10", T0, symbol="ETHBTC")]
    samples = [(T0, "1000", {"ETHBTC": D("0.05")}), (T0 + MIN, "1000", {"ETHBTC": D("0.06")})]
    report, page = built(tmp_path, fills, samples, quotes={"ETHBTC": "BTC"})
    assert report["benchmark"] is None and page.benchmark is None


def test_returns_per_day_use_each_days_last_sample(tmp_path: Path) -> None:
    samples = [(T0, "1000", {}), (T0 + MIN, "1100", {}), (T0 + DAY, "990", {}),
               (T0 + DAY + MIN, "1210", {}), (T0 + 3 * DAY, "1210", {})]
    report, page = built(tmp_path, [], samples)
    assert report["daily_returns"] == [
        {"date": "2024-03-01", "equity": "1100", "return": pytest.approx(0.1)},
        {"date": "2024-03-02", "equity": "1210", "return": pytest.approx(0.1)},
        {"date": "2024-03-04", "equity": "1210", "return": 0.0},
    ]
    rows = page.tables["Returns per day (UTC)"]
    assert [r[:3] for r in rows[1:]] == [["2024-03-01", "1100", "10.0000%"],
                                         ["2024-03-02", "1210", "10.0000%"],
                                         ["2024-03-04", "1210", "0.0000%"]]


@given(st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 5),
                          st.sampled_from(["A", "B"])), max_size=40))
@settings(max_examples=60, deadline=None)
def test_every_fill_is_marked_once_and_entries_open_or_add(tmp_path_factory: pytest.
                                                          TempPathFactory,
                                                          orders: list) -> None:
    tmp = tmp_path_factory.mktemp("r")
    fills = [fill(side, str(q), "100", T0 + i * NS, symbol=sym)
             for i, (side, q, sym) in enumerate(orders)]
    samples = [(T0, "1000", {"A": D(99), "B": D(50)}),
               (T0 + len(orders) * NS, "1000", {"A": D(101), "B": D(51)})]
    report, page = built(tmp, fills, samples)
    assert len(page.markers) == len(fills)
    pos: dict[str, int] = {}
    kinds = []
    for side, q, sym in sorted(orders, key=lambda o: o[2]):  # charts come per symbol
        delta = q if side == "BUY" else -q
        p = pos.get(sym, 0)
        kinds.append("entry" if p == 0 or (p > 0) == (delta > 0) else "exit")
        pos[sym] = p + delta
    assert [m["class"].split()[1] for m in page.markers] == kinds
    trades = page.tables.get(f"Trades (round trips: {report['metrics']['trades']})", [])
    assert len(trades[1:]) == report["metrics"]["trades"]


# -- the SPY day, end to end -------------------------------------------------------------


@pytest.mark.skipif(not SPY_DAY.is_file(), reason="shared SPY data absent")
def test_spy_day_report_marks_every_fill_and_its_benchmark_holds_spy(tmp_path: Path) -> None:
    from daemon.backtest import ReplaySpec, run_replay
    from daemon.config import load_config

    data = tmp_path / "data"
    out = subprocess.run(tapeloop_cmd("import", "trades", str(SPY_DAY), "--venue", "lean",
                                      "--symbol", "SPY", "--data", str(data)),
                         capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    runs = []
    for name in ("a", "b"):
        run_replay(load_config(REPO / "configs" / "replay-spy.toml"),
                   ReplaySpec(data_dir=data, out_dir=tmp_path / name))
        runs.append((tmp_path / name / "report.html").read_bytes())
    # the page is deterministic but for the run's wall time, in its last table
    assert runs[0].split(b"<h2>Run</h2>")[0] == runs[1].split(b"<h2>Run</h2>")[0]
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    page = Page(runs[0].decode())

    assert len(report["fills"]) > 10 and len(page.markers) == len(report["fills"])
    for labels in page.charts:
        assert len(set(labels)) == len(labels) > 1, labels

    # buy and hold: the initial equity in SPY at the first sampled price, worth
    # the day's last trade price at the end
    prices = pa.concat_tables(pq.read_table(p.path, columns=["ts_event", "price"])
                              for p in list_parts(data / "events", types=["Trade"]))
    assert pc.all(pc.greater_equal(prices["ts_event"][1:], prices["ts_event"][:-1])).as_py()
    last = prices["price"][-1].as_py()
    bench = report["benchmark"]
    first = D(bench["first_prices"]["SPY"])
    assert float(first) in set(prices["price"].to_pylist())
    want = (D(report["initial_equity"]) / first * D(str(last))).quantize(D("1e-8"))
    assert D(bench["final_equity"]) == want
    assert float(page.benchmark["data-last"]) == float(want)  # type: ignore[index]
    trades = page.tables[f"Trades (round trips: {report['metrics']['trades']})"]
    assert len(trades) - 1 == report["metrics"]["trades"] > 0
