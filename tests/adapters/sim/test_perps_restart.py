"""A simulated venue's perpetual margin account comes back from the journal:
restored at any step of a random session (two strategies, market and limit
orders, reduce-only closes, cancels, marks, recorded funding, liquidations), it
holds the same books as the venue that ran on and answers the rest of the
session with the same events. A failure names its seed; replay one with
`pytest tests/adapters/sim/test_perps_restart.py -k 'seed_<n>]'`."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from events.base import Event
from events.market import Trade
from events.orders import CancelOrder, OrderSubmitted
from events.perp import (
    FundingPayment,
    FundingRate,
    LeverageChanged,
    Liquidation,
    MarginModeChanged,
    MarkPrice,
)
from events.state import BalanceChanged

from .harness import JOURNALED, SYMBOL, VENUE, D, Sim
from .test_perps import HOUR, PERP

PERP_JOURNALED = (*JOURNALED, FundingPayment, Liquidation, LeverageChanged, MarginModeChanged)
MARKET = (Trade, MarkPrice, FundingRate)
SEEDS = range(40)


def session(seed: int) -> tuple[list[Event], dict[str, Any]]:
    """The steps of one random session, and the venue's options."""
    rng = random.Random(seed)
    opts: dict[str, Any] = dict(
        leverage={SYMBOL: rng.choice([5, 10, 20])},
        margin_mode={SYMBOL: rng.choice(["cross", "isolated"])},
        taker_fee_bps=rng.choice([0, 4]), maker_fee_bps=rng.choice([0, 2]),
        latency_ms=rng.choice([0, 0.001]))
    marks = rng.random() < 0.5
    steps: list[Event] = []
    px, ts, n = 100.0, 1, 0
    live: list[str] = []
    for _ in range(120):
        ts += rng.randint(1, HOUR)
        px = max(1.0, round(px * (1 + rng.gauss(0, 0.02)), 2))
        steps.append(Trade(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=SYMBOL, price=px,
                           size=rng.choice([0.5, 1.0, 5.0])))
        if marks:
            steps.append(MarkPrice(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=SYMBOL,
                                   mark=round(px * (1 + rng.gauss(0, 0.002)), 2)))
        if rng.random() < 0.1:
            ft = ts - ts % (8 * HOUR)
            steps.append(FundingRate(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=SYMBOL,
                                     rate=rng.choice([-0.0005, 0.0001, 0.001]), funding_ts=ft,
                                     mark=rng.choice([0.0, px])))
        r = rng.random()
        if r < 0.3:
            n += 1
            cid = f"c-{n}"
            otype = rng.choice(["MARKET", "LIMIT"])
            side = rng.choice(["BUY", "SELL"])
            price = None
            if otype == "LIMIT":
                off = rng.uniform(-0.01, 0.01)
                price = D(str(round(px * (1 + (off if side == "BUY" else -off)), 2)))
            steps.append(OrderSubmitted(
                ts_event=ts, ts_recv=ts, venue=VENUE, symbol=SYMBOL,
                strategy_id=rng.choice(["a", "b"]), client_order_id=cid, side=side,
                order_type=otype, qty=D(rng.randint(1, 40)) / 10, price=price,
                reduce_only=rng.random() < 0.2))
            live.append(cid)
        elif r < 0.4 and live:
            cid = live.pop(rng.randrange(len(live)))
            steps.append(CancelOrder(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=SYMBOL,
                                     strategy_id="a", client_order_id=cid))
    return steps, opts


def run(steps: list[Event], opts: dict[str, Any], balances: dict[str, Decimal]
        ) -> tuple[Sim, list[int]]:
    sim = Sim(instruments=[PERP], balances=balances, **opts)
    marks = []
    for ev in steps:
        marks.append(len(sim.events))
        sim._market(ev) if isinstance(ev, MARKET) else sim.bus.publish(ev)
    marks.append(len(sim.events))
    return sim, marks


def _said(events: list[Event]) -> list[tuple[Any, ...]]:
    """What the venue published, without the bus's stamps."""
    out = []
    for e in events:
        if isinstance(e, (*MARKET, OrderSubmitted, CancelOrder)):
            continue
        d = {k: getattr(e, k) for k in e.__struct_fields__ if k not in ("seq", "ts_recv")}
        out.append((type(e).__name__, tuple(sorted(d.items()))))
    return out


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed_{s}" for s in SEEDS])
def test_a_restored_margin_account_continues_as_the_original(seed: int) -> None:
    steps, opts = session(seed)
    balances = {"USDT": D(random.Random(seed).choice([300, 2000]))}
    a, marks = run(steps, opts, balances)
    assert a.venue.invariant_violations() == []
    rng = random.Random(seed * 31 + 7)
    for cut in sorted(rng.sample(range(len(steps) + 1), 4)):
        b = _restored(a, steps, marks, cut, opts, balances)
        start = len(b.events)
        for ev in steps[cut:]:
            b._market(ev) if isinstance(ev, MARKET) else b.bus.publish(ev)
        assert b.venue.state() == a.venue.state(), f"seed {seed} cut {cut}"
        assert b.venue.invariant_violations() == []
        assert _said(b.events[start:]) == _said(a.events[marks[cut]:]), f"seed {seed} cut {cut}"


def _restored(a: Sim, steps: list[Event], marks: list[int], cut: int,
              opts: dict[str, Any], balances: dict[str, Decimal]) -> Sim:
    """A venue restored from what `a` journaled before step `cut`, having
    seen the market before it (as the original has)."""
    from adapters.sim import SimVenue
    from events.bus import Bus

    from .harness import _crash
    b = Sim.__new__(Sim)
    b.bus = Bus(on_error=_crash)
    b.events = []
    b.bus.subscribe_all(b.events.append)
    b.clock = 0
    b._n = 0
    b.venue = SimVenue(VENUE, [PERP], b.bus.publish, lambda: b.clock, balances=balances,
                       **opts)
    b.venue.subscribe(b.bus)
    for ev in steps[:cut]:
        if isinstance(ev, MARKET):
            b._market(ev)
    journal = [e for e in a.events[:marks[cut]] if isinstance(e, PERP_JOURNALED)]
    b.venue.restore(journal, {})
    b.venue.start()
    assert all(type(e) in (*MARKET, BalanceChanged) for e in b.events), \
        "a restart publishes only its balances (leverage and mode are the venue's)"
    return b


def test_sessions_cover_liquidations_and_funding() -> None:
    liquidated = funded = 0
    for seed in SEEDS:
        steps, opts = session(seed)
        sim, _ = run(steps, opts, {"USDT": D(random.Random(seed).choice([300, 2000]))})
        liquidated += bool(sim.of(Liquidation))
        funded += bool(sim.of(FundingPayment))
    assert liquidated >= 3 and funded >= 10, (liquidated, funded)
