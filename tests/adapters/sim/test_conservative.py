"""The conservative fill model: resting limits fill only for the volume traded
at least one tick through them; takers pay the worse of the event's price and
the last known opposite best. And, over random market streams, it is never
more favourable than next for any order: never earlier, never more quantity,
never a better price."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.orders import Fill

from .harness import MS, D, Sim

# -- resting limits ----------------------------------------------------------------


def test_a_trade_through_fills_only_its_size_and_a_touch_nothing() -> None:
    sim = Sim(fill_model="conservative")
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.trade(2, 99.5)  # arrives and rests
    sim.trade(2, 99.0, size=5.0)  # at the limit: not through
    sim.trade(3, 98.99, size=0.3)  # one tick through: 0.3 traded there
    sim.trade(4, 98.5, size=0.0)  # through, but no volume
    sim.trade(5, 98.5, size=0.123456)  # rounded down to the step
    sim.trade(6, 98.0, size=9.0)  # the rest
    assert sim.fills(cid) == [(3, "BUY", D("0.3"), D("99"), "MAKER"),
                              (5, "BUY", D("0.12345"), D("99"), "MAKER"),
                              (6, "BUY", D("0.57655"), D("99"), "MAKER")]
    nxt = Sim(fill_model="next")  # the same stream under next: all at the first through
    nxt.trade(1, 100.0)
    cid = nxt.submit(1, "BUY", "LIMIT", "1", price="99")
    nxt.trade(2, 99.5)
    nxt.trade(2, 99.0, size=5.0)
    nxt.trade(3, 98.99, size=0.3)
    assert nxt.fills(cid) == [(3, "BUY", D(1), D("99"), "MAKER")]


def test_a_sell_on_quotes_fills_up_to_the_displayed_bid_size() -> None:
    sim = Sim(fill_model="conservative")
    sim.quote(1, 100.5, 100.6)
    cid = sim.submit(1, "SELL", "LIMIT", "1", price="101")
    sim.quote(2, 100.5, 100.6)  # arrives and rests
    sim.quote(2, 101.0, 101.1, bid_size=3.0)  # bid at the limit: not through
    sim.quote(3, 101.01, 101.1, bid_size=0.4)  # a tick through: 0.4 shown
    sim.quote(4, 101.2, 101.3, bid_size=2.0)
    assert sim.fills(cid) == [(3, "SELL", D("0.4"), D("101"), "MAKER"),
                              (4, "SELL", D("0.6"), D("101"), "MAKER")]


def test_a_bar_through_the_limit_fills_up_to_its_volume() -> None:
    sim = Sim(fill_model="conservative")
    sim.bar(1, 100, 101, 99.5, 100)
    cid = sim.submit(1, "BUY", "LIMIT", "1", price="99")
    sim.bar(2, 100, 101, 99.0, 100, v=50)  # low touches 99: not through
    sim.bar(3, 100, 100.5, 98.99, 99.2, v=0.25)  # one tick through: the bar's volume
    sim.bar(4, 99, 99.5, 98.0, 99.0, v=10)
    assert sim.fills(cid) == [(3, "BUY", D("0.25"), D("99"), "MAKER"),
                              (4, "BUY", D("0.75"), D("99"), "MAKER")]


def test_fok_and_ioc_settle_on_the_volume_traded_through() -> None:
    sim = Sim(fill_model="conservative")
    sim.quote(1, 99.5, 99.6)
    fok = sim.submit(1, "BUY", "LIMIT", "1", price="99.4", time_in_force="FOK")
    ioc = sim.submit(1, "BUY", "LIMIT", "1", price="99.4", time_in_force="IOC")
    sim.trade(2, 99.3, size=0.4)  # their arrival event: 0.4 traded through
    assert sim.order_events(fok) == ["OrderAccepted", "OrderCanceled"]
    assert sim.fills(ioc) == [(2, "BUY", D("0.4"), D("99.4"), "MAKER")]
    assert sim.order_events(ioc) == ["OrderAccepted", "Fill", "OrderCanceled"]


# -- takers ------------------------------------------------------------------------------


def test_a_market_order_pays_the_worse_of_the_next_trade_and_the_opposite_quote() -> None:
    sim = Sim(fill_model="conservative")
    sim.quote(1, 99.9, 100.1)
    buy = sim.submit(1, "BUY", "MARKET", "1")
    sell = sim.submit(1, "SELL", "MARKET", "1")
    sim.trade(2, 100.0)  # next would fill both at 100.00
    assert sim.fills(buy) == [(2, "BUY", D(1), D("100.10"), "TAKER")]
    assert sim.fills(sell) == [(2, "SELL", D(1), D("99.90"), "TAKER")]
    later = sim.submit(2, "BUY", "MARKET", "1")
    sim.trade(3, 100.3)  # the trade is the worse price
    assert sim.fills(later) == [(3, "BUY", D(1), D("100.30"), "TAKER")]
    on_quote = sim.submit(3, "BUY", "MARKET", "1")
    sim.quote(4, 100.0, 100.2)  # on a quote both are the ask
    assert sim.fills(on_quote) == [(4, "BUY", D(1), D("100.20"), "TAKER")]
    no_quote = Sim(fill_model="conservative")
    no_quote.trade(1, 100.0)
    cid = no_quote.submit(1, "BUY", "MARKET", "1")
    no_quote.trade(2, 100.05)  # no quote ever seen: the trade alone is known
    assert no_quote.fills(cid) == [(2, "BUY", D(1), D("100.05"), "TAKER")]


def test_a_crossing_limit_and_a_triggered_stop_pay_the_worse_price_never_beyond_the_limit(
        ) -> None:
    sim = Sim(fill_model="conservative")
    sim.quote(1, 99.9, 100.1)
    wide = sim.submit(1, "BUY", "LIMIT", "1", price="100.5")
    tight = sim.submit(1, "BUY", "LIMIT", "1", price="100.1")
    stop = sim.submit(1, "SELL", "STOP_MARKET", "1", trigger="100.05")
    sim.trade(2, 100.3)  # takes: worse of the ask 100.1 and the trade 100.3
    assert sim.fills(wide) == [(2, "BUY", D(1), D("100.30"), "TAKER")]
    assert sim.fills(tight) == [(2, "BUY", D(1), D("100.1"), "TAKER")]  # capped at L
    sim.trade(3, 100.05)  # the stop triggers: worse of the trade and the bid 99.9
    assert sim.fills(stop) == [(3, "SELL", D(1), D("99.90"), "TAKER")]


# -- never more favourable than next ---------------------------------------------


def _script(seed: int, n: int = 500) -> list[tuple[str, Any]]:
    """A random market stream and order flow; requests do not depend on what
    the venue did, so both models see exactly the same inputs."""
    rng = random.Random(seed)
    px, ts = 100.0, 0
    ids: list[str] = []
    out: list[tuple[str, Any]] = []
    kinds = ["MARKET", "LIMIT", "LIMIT", "STOP_MARKET", "STOP_LIMIT", "TRAILING_STOP"]
    for i in range(n):
        ts += rng.randint(0, 2) * MS
        px = max(1.0, round(px + rng.choice((-0.03, -0.01, 0, 0.01, 0.03)), 2))
        r = rng.random()
        size = round(rng.choice((rng.uniform(0.001, 0.3), rng.uniform(0.1, 4))), 5)
        if r < 0.3:
            out.append(("quote", (ts, round(px - 0.01 * rng.randint(1, 3), 2),
                                  round(px + 0.01 * rng.randint(1, 3), 2),
                                  size, round(rng.uniform(0.001, 3), 5))))
        elif r < 0.37:
            swing = rng.choice((0.0, 0.02, 0.06))
            out.append(("bar", (ts, px, round(px + swing, 2), round(px - swing, 2), px, size)))
        else:
            out.append(("trade", (ts, px, size)))
        if i % 11 == 0:
            side = rng.choice(("BUY", "SELL"))
            kind = rng.choice(kinds)
            sign = -1 if side == "BUY" else 1
            away = f"{px + sign * rng.choice((-0.02, 0.0, 0.01, 0.04)):.2f}"
            toward = f"{px - sign * rng.choice((0.01, 0.03, 0.06)):.2f}"
            cid = f"o-{len(ids)}"
            ids.append(cid)
            out.append(("submit", dict(
                ts=ts, side=side, order_type=kind, qty=f"{rng.choice((0.2, 1, 2.5))}",
                price=away if kind in ("LIMIT", "STOP_LIMIT") else None,
                trigger=toward if kind in ("STOP_MARKET", "STOP_LIMIT") else None,
                offset="0.04" if kind == "TRAILING_STOP" else None, cid=cid,
                post_only=kind == "LIMIT" and rng.random() < 0.1,
                time_in_force=rng.choice(("GTC", "GTC", "GTC", "IOC", "FOK", "DAY")))))
        if i % 47 == 0 and ids:
            out.append(("cancel", (ts, rng.choice(ids))))
    return out


class _Run:
    """One model on the script; `filled` follows every Fill as it happens."""

    def __init__(self, model: str, slippage: dict[str, Any]) -> None:
        self.sim = Sim(fill_model=model, allow_short=True, latency_ms=1, taker_fee_bps=5,
                       balances={"USDT": D(10) ** 12, "BTC": D(10) ** 6}, **slippage)
        self.filled: dict[str, Decimal] = {}
        self.sim.bus.subscribe(Fill, self._fill)

    def _fill(self, f: Fill) -> None:
        self.filled[f.client_order_id] = self.filled.get(f.client_order_id, D(0)) + f.qty

    def play(self, action: str, args: Any) -> None:
        sim = self.sim
        if action == "submit":
            kw = dict(args)
            sim.submit(kw.pop("ts"), kw.pop("side"), kw.pop("order_type"), kw.pop("qty"), **kw)
        elif action == "cancel":
            sim.cancel(*args)
        elif action == "bar":
            ts, o, h, lo, c, v = args
            sim.bar(ts, o, h, lo, c, v=v)
        elif action == "quote":
            ts, bid, ask, bid_size, ask_size = args
            sim.quote(ts, bid, ask, bid_size=bid_size, ask_size=ask_size)
        else:
            sim.trade(*args)


def _units(fills: list[tuple[Decimal, Decimal]]) -> list[tuple[Decimal, Decimal]]:
    """(cumulative quantity at the segment's end, price) of each fill in order."""
    out, cum = [], D(0)
    for qty, price in fills:
        cum += qty
        out.append((cum, price))
    return out


def _price_of_unit(units: list[tuple[Decimal, Decimal]], at: Decimal) -> Decimal:
    """The price paid for the quantity just after `at` units."""
    return next(price for cum, price in units if cum > at)


SLIPPAGE = [{}, {"slippage_bps": 4}, {"slippage_model": "spread"},
            {"slippage_model": "volume", "slippage_bps": 3, "volume_limit_pct": 30}]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), slip=st.sampled_from(SLIPPAGE))
def test_conservative_is_never_more_favourable_than_next(seed: int,
                                                        slip: dict[str, Any]) -> None:
    print(f"seed={seed} slippage={slip}")
    nxt, con = _Run("next", slip), _Run("conservative", slip)
    for action, args in _script(seed):
        nxt.play(action, args)
        con.play(action, args)
        for cid, qty in con.filled.items():  # never earlier, never more
            assert qty <= nxt.filled.get(cid, D(0)), (seed, cid, action, args)
    fewer = worse = 0
    for cid in {f.client_order_id for f in nxt.sim.of(Fill)}:
        n_fills, c_fills = nxt.sim.of(Fill, cid), con.sim.of(Fill, cid)
        buy = n_fills[0].side == "BUY"
        n_units = _units([(f.qty, f.price) for f in n_fills])
        c_units = _units([(f.qty, f.price) for f in c_fills])
        start = D(0)
        for end, c_price in c_units:  # each unit at no better a price than next's same unit
            cuts = sorted({start} | {cum for cum, _ in n_units if start < cum < end})
            for at in cuts:
                n_price = _price_of_unit(n_units, at)
                assert (c_price >= n_price) if buy else (c_price <= n_price), (seed, cid)
                worse += c_price != n_price
            start = end
        fewer += start < n_units[-1][0]
    assert fewer + worse > 0 or not nxt.sim.of(Fill), "the two models never differed"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_models_differ_on_ordinary_streams(seed: int) -> None:
    print(f"seed={seed}")
    nxt, con = _Run("next", {}), _Run("conservative", {})
    for action, args in _script(seed):
        nxt.play(action, args)
        con.play(action, args)
    n_fills = [(f.client_order_id, f.qty, f.price) for f in nxt.sim.of(Fill)]
    c_fills = [(f.client_order_id, f.qty, f.price) for f in con.sim.of(Fill)]
    assert n_fills and c_fills and n_fills != c_fills
    assert sum(q for _, q, _ in c_fills) < sum(q for _, q, _ in n_fills)
