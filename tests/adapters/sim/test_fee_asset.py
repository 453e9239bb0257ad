"""The asset a simulated fill pays its fee in (`fee_asset`), so paper trading
and replays charge as the live venue does: Binance takes the asset received
(the base on a buy, the quote on a sell) or BNB, where the simulated venue
used to take the quote always."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from daemon.config import ConfigError, VenueConfig, load_config
from daemon.errors import EXIT_CONFIG
from daemon.node import sim_venue
from events.bus import Bus
from events.instruments import Instrument
from events.market import Trade
from events.orders import Fill, OrderSubmitted
from events.state import BalanceChanged

from .harness import INST, D, Sim

BNB = Instrument(venue="sim", symbol="BNBUSDT", base="BNB", quote="USDT",
                 tick_size=D("0.01"), step_size=D("0.001"))


def _fill_and_balances(sim: Sim) -> tuple[Fill, dict[str, tuple[Decimal, str]]]:
    fill = sim.of(Fill)[-1]
    after = sim.events[sim.events.index(fill) + 1:]
    return fill, {b.currency: (b.total, b.reason) for b in after
                  if isinstance(b, BalanceChanged)}


def test_received_a_buy_pays_in_the_base_and_holds_what_it_received() -> None:
    sim = Sim(balances={"USDT": D(1000)}, taker_fee_bps=10, fee_asset="received")
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "2")
    sim.trade(2, 100.0)
    fill, balances = _fill_and_balances(sim)
    assert (fill.fee, fill.fee_currency) == (D("0.002"), "BTC")
    assert balances == {"BTC": (D("1.998"), "fill"), "USDT": (D(800), "fill")}
    # the position is what the account holds, so selling all of it is allowed
    assert sim.venue.position("BTCUSDT") == D("1.998")
    sim.submit(2, "SELL", "MARKET", "1.998", reduce_only=True)
    sim.trade(3, 100.0)
    fill, balances = _fill_and_balances(sim)
    assert (fill.qty, fill.fee, fill.fee_currency) == (D("1.998"), D("0.1998"), "USDT")
    assert balances == {"BTC": (0, "fill"), "USDT": (D("999.6002"), "fill")}
    assert sim.venue.position("BTCUSDT") == 0


def test_quote_stays_the_default_for_a_sim_venue() -> None:
    sim = Sim(balances={"USDT": D(1000)}, taker_fee_bps=10)
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "2")
    sim.trade(2, 100.0)
    fill, balances = _fill_and_balances(sim)
    assert (fill.fee, fill.fee_currency) == (D("0.2"), "USDT")
    assert balances == {"BTC": (D(2), "fill"), "USDT": (D("799.8"), "fill")}


def _bnb_sim(bnb: str, btc: str = "0", **kw: object) -> Sim:
    return Sim(instruments=[INST, BNB],
               balances={"USDT": D(1000), "BNB": D(bnb), "BTC": D(btc)},
               taker_fee_bps=10, fee_asset="BNB", **kw)


def test_a_third_currency_is_charged_at_its_market_price_in_the_quote() -> None:
    sim = _bnb_sim("1")
    sim.trade(1, 250.0, symbol="BNBUSDT")
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "2")
    sim.trade(2, 100.0)
    fill, balances = _fill_and_balances(sim)
    # 200 USDT × 10 bps = 0.2 USDT = 0.0008 BNB at 250
    assert (fill.fee, fill.fee_currency) == (D("0.0008"), "BNB")
    assert balances == {"BTC": (D(2), "fill"), "USDT": (D(800), "fill"),
                        "BNB": (D("0.9992"), "fee")}
    assert sim.venue.position("BTCUSDT") == D(2)


def test_a_third_currency_on_its_own_market_is_charged_on_the_quantity() -> None:
    sim = _bnb_sim("1")
    sim.trade(1, 250.0, symbol="BNBUSDT")
    sim.submit(1, "BUY", "MARKET", "2", symbol="BNBUSDT")
    sim.trade(2, 250.0, symbol="BNBUSDT")
    fill, balances = _fill_and_balances(sim)
    assert (fill.fee, fill.fee_currency) == (D("0.002"), "BNB")
    assert balances == {"BNB": (D("2.998"), "fill"), "USDT": (D(500), "fill")}
    assert sim.venue.position("BNBUSDT") == D("1.998")


@pytest.mark.parametrize(("bnb", "priced"), [("0.0003", True), ("5", False)],
                         ids=["bnb_runs_out", "no_bnb_price_yet"])
def test_without_enough_bnb_or_a_bnb_price_the_fee_falls_back_to_the_asset_received(
        bnb: str, priced: bool) -> None:
    sim = _bnb_sim(bnb, btc="1")
    if priced:
        sim.trade(1, 250.0, symbol="BNBUSDT")
    sim.trade(1, 100.0)
    sim.submit(1, "BUY", "MARKET", "2")
    sim.submit(1, "SELL", "MARKET", "1")
    sim.trade(2, 100.0)
    buy, sell = sim.of(Fill)
    assert (buy.fee, buy.fee_currency) == (D("0.002"), "BTC")
    assert (sell.fee, sell.fee_currency) == (D("0.1"), "USDT")
    assert sim.venue.balance("BNB")[0] == D(bnb)


def test_a_restart_restores_every_fee_currency() -> None:
    first = _bnb_sim("1")
    first.trade(1, 250.0, symbol="BNBUSDT")
    first.trade(1, 100.0)
    first.submit(1, "BUY", "MARKET", "2")
    first.trade(2, 100.0)
    second = _bnb_sim("1", restart_from=first)
    assert second.venue.state() == first.venue.state()
    assert second.venue.balance("BNB")[0] == D("0.9992")


# -- configuration ------------------------------------------------------------------

CONFIG = """\
[[venues]]
name = "bn"
kind = "sim"
{fee_asset}

[[instruments]]
venue = "bn"
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = 0.01
step_size = 0.00001
{extra}
[risk]
max_order_qty = 10.0
max_order_notional = 250_000.0
max_position_qty = 20.0
daily_loss_limit = 10_000.0
max_orders_per_s = 20
price_band_pct = 5.0
"""
BNB_INSTRUMENT = """
[[instruments]]
venue = "bn"
symbol = "BNBUSDT"
base = "BNB"
quote = "USDT"
tick_size = 0.01
step_size = 0.001
"""


def test_a_third_fee_currency_without_a_market_to_price_it_is_one_config_line(
        tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(fee_asset='fee_asset = "BNB"', extra=""))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f'{path}: $.venues[0].fee_asset: fee_asset "BNB" needs an instrument with base "BNB" '
        'and quote "USDT" on venue "bn" to price the fee of BTCUSDT '
        '(or use "quote" or "received")')
    assert info.value.code == EXIT_CONFIG
    path.write_text(CONFIG.format(fee_asset='fee_asset = "BNB"', extra=BNB_INSTRUMENT))
    assert load_config(path).venues[0].fee_asset == "BNB"
    path.write_text(CONFIG.format(fee_asset='fee_asset = ""', extra=""))
    with pytest.raises(ConfigError, match=r"\$\.venues\[0\]\.fee_asset"):
        load_config(path)


@pytest.mark.parametrize(("kind", "fee_asset", "charged"), [
    ("sim", None, "USDT"), ("sample", None, "USDT"), ("binance", None, "BTC"),
    ("binance", "quote", "USDT"), ("sim", "received", "BTC")])
def test_a_binance_venue_simulated_charges_the_asset_received_by_default(
        kind: str, fee_asset: str | None, charged: str) -> None:
    bus = Bus()
    fills: list[Fill] = []
    bus.subscribe(Fill, fills.append)
    inst = Instrument(venue="bn", symbol="BTCUSDT", base="BTC", quote="USDT",
                      tick_size=D("0.01"), step_size=D("0.00001"))
    vcfg = VenueConfig(name="bn", kind=kind, balances={"USDT": 1000.0},  # type: ignore[arg-type]
                       taker_fee_bps=10.0, fee_asset=fee_asset)
    venue = sim_venue(vcfg, [inst], bus, lambda: 0)
    venue.subscribe(bus)
    bus.publish(Trade(ts_event=1, ts_recv=1, venue="bn", symbol="BTCUSDT", price=100.0, size=1))
    bus.publish(OrderSubmitted(ts_event=1, ts_recv=1, venue="bn", symbol="BTCUSDT",
                               strategy_id="s", client_order_id="s-1", side="BUY",
                               order_type="MARKET", qty=D(1)))
    bus.publish(Trade(ts_event=2, ts_recv=2, venue="bn", symbol="BTCUSDT", price=100.0, size=1))
    assert [f.fee_currency for f in fills] == [charged]
