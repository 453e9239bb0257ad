"""The replay report's `perpetuals` section: funding paid/received/net exact and per
currency, liquidations listed, margin usage max/mean and margin.csv, the HTML
section; and a spot-only report unchanged (no section, no margin.csv, same HTML)."""

from __future__ import annotations

import csv
import json
import re
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from events.perp import FundingPayment, Liquidation
from replay.report import ReportBuilder, summary_lines
from tests.replay.test_report import MIN, NS, T0, builder

D = Decimal


def payment(amount: str, symbol: str = "BTC/USDT:USDT", currency: str = "USDT",
            ts: int = T0, strategy: str = "sma") -> FundingPayment:
    return FundingPayment(
        ts_event=ts, ts_recv=ts, venue="sim", symbol=symbol, amount=D(amount),
        currency=currency, rate=D("0.0001"), mark=D("100"), qty=D("1"), funding_ts=ts,
        strategy_id=strategy)


LIQ = Liquidation(ts_event=T0 + 150 * NS, ts_recv=T0 + 150 * NS, venue="sim",
                  symbol="BTC/USDT:USDT", side="SELL", qty=D("0.5"), price=D("95.1"),
                  mark=D("95.2"), fee=D("0.59"), fee_currency="USDT", trade_id="liq-1",
                  strategy_id="sma")


def perp_builder() -> ReportBuilder:
    b = builder()
    for amount, ts in (("-0.01", T0 + 30 * NS), ("0.0025", T0 + 90 * NS),
                       ("-0.00000001", T0 + 120 * NS)):
        b.add_funding(payment(amount, ts=ts))
    b.add_funding(payment("0.3", symbol="ETH/USDT:USDT", ts=T0 + 140 * NS, strategy="mm"))
    b.add_liquidation(LIQ)
    for i, usage in enumerate(("0", "0.25", None, "0.5")):
        b.add_margin_usage(T0 + i * MIN, None if usage is None else D(usage))
    return b


def test_the_report_states_funding_liquidations_and_margin_usage(tmp_path: Path) -> None:
    report = perp_builder().write(tmp_path, events_in=10, wall_s=1.0)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    perp = on_disk["perpetuals"]
    assert perp == report["perpetuals"]
    assert perp["funding"] == {
        "payments": 4, "currency": "USDT",
        "paid": "0.01000001", "received": "0.3025", "net": "0.29249999",
        "by_currency": {"USDT": {"currency": "USDT", "paid": "0.01000001",
                                 "received": "0.3025", "net": "0.29249999", "payments": 4}},
        "by_symbol": {
            "BTC/USDT:USDT": {"currency": "USDT", "paid": "0.01000001", "received": "0.0025",
                              "net": "-0.00750001", "payments": 3},
            "ETH/USDT:USDT": {"currency": "USDT", "paid": "0", "received": "0.3",
                              "net": "0.3", "payments": 1},
        },
    }
    assert perp["liquidations"] == [{
        "ts_event": T0 + 150 * NS, "venue": "sim", "symbol": "BTC/USDT:USDT", "side": "SELL",
        "qty": "0.5", "price": "95.1", "mark": "95.2", "fee": "0.59", "fee_currency": "USDT",
        "strategy_id": "sma"}]
    assert perp["margin_usage"] == {"max": 0.5, "mean": 0.25, "samples": 3,
                                    "csv": "margin.csv"}
    with (tmp_path / "margin.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ts", "ts_ns", "margin_usage"]
    assert [r[1:] for r in rows[1:]] == [[str(T0), "0"], [str(T0 + MIN), "0.25"],
                                         [str(T0 + 2 * MIN), ""], [str(T0 + 3 * MIN), "0.5"]]
    assert rows[1][0] == "2024-03-01T00:00:00Z"
    line = next(x for x in summary_lines(report) if x.startswith("funding"))
    assert "4 payments, net 0.29249999 USDT" in line and "liquidations 1" in line
    assert "max margin usage 50.00%" in line


def test_funding_in_several_currencies_is_not_summed_across_them(tmp_path: Path) -> None:
    b = builder()
    b.add_funding(payment("-1", currency="USDT"))
    b.add_funding(payment("2", symbol="BTC/USDC:USDC", currency="USDC"))
    f = b.build(events_in=1, wall_s=1.0)["perpetuals"]["funding"]
    assert (f["currency"], f["paid"], f["received"], f["net"]) == (None, None, None, None)
    assert {c: x["net"] for c, x in f["by_currency"].items()} == {"USDC": "2", "USDT": "-1"}
    assert b.build(events_in=1, wall_s=1.0)["perpetuals"]["margin_usage"]["max"] is None


@given(st.lists(st.decimals(min_value=D("-1e6"), max_value=D("1e6"), places=8,
                            allow_nan=False, allow_infinity=False), max_size=30))
def test_paid_and_received_sum_every_payment_exactly(amounts: list[Decimal]) -> None:
    b = builder()
    for a in amounts:
        b.add_funding(payment(str(a)))
    report = b.build(events_in=1, wall_s=1.0)
    if not amounts:
        assert "perpetuals" not in report
        return
    f = report["perpetuals"]["funding"]
    assert D(f["received"]) - D(f["paid"]) == D(f["net"]) == sum(amounts, D(0))
    assert D(f["paid"]) == -sum((a for a in amounts if a < 0), D(0)) >= 0
    assert f["payments"] == len(amounts)


def test_the_html_shows_funding_liquidations_and_a_margin_chart(tmp_path: Path) -> None:
    b = perp_builder()
    b.add_liquidation(Liquidation(
        ts_event=T0 + 200 * NS, ts_recv=T0 + 200 * NS, venue="sim", symbol="<X>&Y",
        side="BUY", qty=D(1), price=D(1), mark=D(1), fee=D(0), fee_currency="USDT",
        trade_id="l2"))
    report = b.write(tmp_path, events_in=1, wall_s=1.0)
    html = (tmp_path / "report.html").read_text()
    # equity, drawdown, margin usage and a price chart per traded symbol
    assert html.count("<svg") == 3 + len(report["per_symbol"])
    assert "<h2>Funding</h2>" in html and "<h2>Liquidations</h2>" in html
    assert "0.29249999" in html and "95.1" in html and "0.59 USDT" in html
    assert "&lt;X&gt;&amp;Y" in html and "(account)" in html
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<script" not in html


def test_a_spot_run_is_unchanged(tmp_path: Path) -> None:
    plain, spot = tmp_path / "plain", tmp_path / "spot"
    builder().write(plain, events_in=5, wall_s=1.0)
    b = builder()
    for i in range(3):
        b.add_margin_usage(T0 + i * MIN, None)  # a portfolio with no perpetual
    report = b.write(spot, events_in=5, wall_s=1.0)
    assert "perpetuals" not in report and not (spot / "margin.csv").exists()
    for name in ("report.html", "equity.csv", "fills.csv", "trades.csv"):
        assert (plain / name).read_bytes() == (spot / name).read_bytes(), name
    strip = re.compile(r'"(wall_s|events_per_s)": [^,\n]+')
    assert strip.sub("", (plain / "report.json").read_text()) == strip.sub(
        "", (spot / "report.json").read_text())
