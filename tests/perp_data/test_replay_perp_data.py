"""Freqtrade's XRP/USDT:USDT perpetual data (Binance USD-M: 5-minute bars, 8-hourly
mark prices and funding rates) imported and replayed with a long/short strategy on
margin: funding, PnL, fees, equity and margin usage are computed again here with
plain arithmetic (Fractions, from the files read with pyarrow and the fills the run
reports) and must equal the replay's exactly."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pyarrow.feather as feather
import pytest

from daemon.backtest import ReplaySpec, run_replay
from daemon.config import load_config
from tests.conftest import SHARED_DATA
from tests.test_cli_import import run_in_process

FUTURES = SHARED_DATA / "freqtrade" / "futures"
pytestmark = pytest.mark.skipif(not FUTURES.is_dir(), reason=f"{FUTURES} is absent")

LEVERAGE = 5
FEE = Fraction(4, 10_000)  # taker 4 bps
CONFIG = f"""
[[venues]]
name = "usdm"
kind = "sim"
fill_model = "next"
taker_fee_bps = 4.0
balances = {{ USDT = 10_000.0 }}

[[instruments]]
venue = "usdm"
symbol = "XRP/USDT:USDT"
base = "XRP"
quote = "USDT"
tick_size = 0.0001
step_size = 0.1
kind = "perpetual"
leverage = {LEVERAGE}
margin_tiers = [
  {{ cap = 10_000.0, maint_rate = 0.005, max_leverage = 75 }},
  {{ cap = 50_000.0, maint_rate = 0.0065, max_leverage = 50 }},
]

[risk]
max_order_qty = 100000.0
max_order_notional = 1_000_000.0
max_position_qty = 100000.0
daily_loss_limit = 1_000_000.0
max_orders_per_s = 100
price_band_pct = 20.0

[[strategies]]
id = "sma"
class = "daemon.strategies.sma_cross:SmaCross"
venue = "usdm"
symbols = ["XRP/USDT:USDT"]
params = {{ fast = 12, slow = 48, qty = 2000.0, short = true }}
"""
FROM, TO = date(2021, 11, 18), date(2021, 11, 21)


def exact(x: float | str) -> Fraction:
    """A float as the decimal its repr shows (how market data becomes money)."""
    return Fraction(Decimal(repr(x) if isinstance(x, float) else x))


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000


def rows(name: str) -> list[tuple[int, Fraction]]:
    """(time in ns, `open`) of each row of a Freqtrade futures file."""
    table = feather.read_table(FUTURES / name).to_pydict()
    return [(ns(d), exact(o)) for d, o in zip(table["date"], table["open"], strict=True)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("xrp")
    data = tmp / "data"
    # marks before funding: at a funding time stamped exactly like its mark candle
    # the mark is stored (and replayed) first, as a live recording has it
    for kind, name, extra in (("bars", "XRP_USDT_USDT-5m-futures.feather",
                               ("--interval", "5m", "--stamp", "open")),
                              ("marks", "XRP_USDT_USDT-8h-mark.feather", ()),
                              ("funding", "XRP_USDT_USDT-8h-funding_rate.feather", ())):
        rc, _, err = run_in_process("import", kind, FUTURES / name, "--venue", "usdm",
                                    "--symbol", "XRP/USDT:USDT", *extra, "--data", data)
        assert rc == 0, err
    config = tmp / "c.toml"
    config.write_text(CONFIG)
    out = tmp / "run"
    spec = ReplaySpec(data_dir=data, out_dir=out, date_from=FROM, date_to=TO)
    return run_replay(load_config(config), spec), out


def test_funding_pnl_fees_and_margin_equal_a_hand_computation(run: tuple[dict, Path]) -> None:
    report, out = run
    fills = [(f["ts_event"], f["side"], exact(f["qty"]), exact(f["price"]), exact(f["fee"]))
             for f in report["fills"]]
    assert len(fills) >= 5, "the strategy traded, long and short"
    assert {side for _, side, *_ in fills} == {"BUY", "SELL"}
    end = ns(datetime(2021, 11, 22, tzinfo=UTC))
    start = ns(datetime(2021, 11, 18, tzinfo=UTC))
    marks = [m for m in rows("XRP_USDT_USDT-8h-mark.feather") if start <= m[0] < end]
    funding_times = [f for f in rows("XRP_USDT_USDT-8h-funding_rate.feather")
                     if start <= f[0] < end]
    assert len(funding_times) == 12

    # the taker fee of every fill: 4 bps of its notional
    for _ts, _side, qty, price, fee in fills:
        assert fee == qty * price * FEE

    # funding: at each funding time, -(position x mark x rate), the mark the last
    # mark candle open at or before it, the position every fill up to that time
    funding, paid, received = Fraction(0), Fraction(0), Fraction(0)
    for t, rate in funding_times:
        position = sum((q if s == "BUY" else -q for ts, s, q, _p, _f in fills if ts <= t),
                       Fraction(0))
        mark = [m for mt, m in marks if mt <= t][-1]
        amount = -(position * mark * rate)
        funding += amount
        paid += -amount if amount < 0 else 0
        received += amount if amount > 0 else 0
    perp = report["perpetuals"]["funding"]
    assert Fraction(Decimal(perp["net"])) == funding
    assert Fraction(Decimal(perp["paid"])) == paid
    assert Fraction(Decimal(perp["received"])) == received
    assert perp["payments"] == sum(1 for t, _ in funding_times
                                   if any(ts <= t for ts, *_ in fills))

    # realized PnL by average cost, one-way (a flip closes then opens at the price)
    qty, cost, realized = Fraction(0), Fraction(0), Fraction(0)
    for _ts, side, q, price, _fee in fills:
        signed = q if side == "BUY" else -q
        if qty == 0 or (qty > 0) == (signed > 0):
            qty, cost = qty + signed, cost + signed * price
            continue
        closed = min(abs(signed), abs(qty))
        released = cost * closed / abs(qty)
        closing = closed if signed > 0 else -closed
        realized += -closing * price - released
        cost, qty = cost - released, qty + closing
        rest = signed - closing
        if qty == 0:
            qty, cost = rest, rest * price
    fees = sum((f for *_, f in fills), Fraction(0))
    last_mark = marks[-1][1]
    unrealized = qty * last_mark - cost
    pnl = report["pnl"]
    assert Fraction(Decimal(pnl["realized"])) == realized
    assert Fraction(Decimal(pnl["fees"])) == fees
    assert Fraction(Decimal(pnl["funding"])) == funding
    assert Fraction(Decimal(pnl["unrealized"])) == unrealized
    net = realized - fees + funding + unrealized
    assert Fraction(Decimal(pnl["net"])) == net
    assert Fraction(Decimal(report["final_equity"])) == 10_000 + net
    assert Fraction(Decimal(report["final_positions"]["XRP/USDT:USDT"])) == qty

    # margin usage at the end: initial margin (entry notional / leverage) over the
    # margin balance (wallet + unrealized), to 10 decimals
    wallet = 10_000 + realized - fees + funding
    usage = abs(cost) / LEVERAGE / (wallet + unrealized)
    with (out / "margin.csv").open() as f:
        sampled = list(csv.DictReader(f))
    last = sampled[-1]
    assert abs(Fraction(Decimal(last["margin_usage"])) - usage) <= Fraction(1, 2 * 10**10)
    report_json = json.loads((out / "report.json").read_text())
    usage_json = report_json["perpetuals"]["margin_usage"]
    assert usage_json["samples"] == sum(1 for r in sampled if r["margin_usage"])
    assert usage_json["max"] >= float(last["margin_usage"]) > 0
