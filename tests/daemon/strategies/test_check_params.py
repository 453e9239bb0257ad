"""`Strategy.check_params` of the built-ins (issue 10, item 4): a size below the
instrument's step passed `check-config`, and the strategy then died at start (or never
quoted) while the daemon said READY. The invariant, for any step and size: the runtime
refuses the params, naming the key, exactly when that size could never be ordered;
params it accepts trade without failing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.strategies.loader import StrategyError
from daemon.trading.api import BUY, LIMIT, MARKET
from events.instruments import Instrument, to_decimal
from events.market import Bar, Quote, Trade
from tests.daemon.strategies.conftest import World
from tests.daemon.strategies.fakes import instrument, strategy_config

S = 10**9
T0 = 1_700_000_000 * S

# steps 1e-8 .. 9, sizes 1e-10 .. 999: on both sides of the step, often off its grid
STEPS = st.builds(lambda m, k: Decimal(m).scaleb(-k), st.integers(1, 9), st.integers(0, 8))
SIZES = st.builds(lambda n, k: float(Decimal(n).scaleb(-k)), st.integers(1, 999),
                  st.integers(0, 10))


def orderable(inst: Instrument, qty: float | Decimal) -> bool:
    return inst.round_qty(to_decimal(qty)) > 0


def add(world: World, cls: str, params: dict[str, object]) -> StrategyError | None:
    try:
        world.runtime.add(strategy_config("s", cls, params=params))
    except StrategyError as exc:
        assert str(exc).startswith(f"strategies[s].{exc.key}: "), exc
        return exc
    world.runtime.start()
    return None


def bars(*closes: float) -> list[Bar]:
    return [Bar(ts_event=T0 + (i + 1) * 60 * S, ts_recv=T0 + (i + 1) * 60 * S, venue="sim",
                symbol="BTCUSDT", interval="1m", ts_open=T0 + i * 60 * S, open=c, high=c,
                low=c, close=c, volume=1.0) for i, c in enumerate(closes)]


@settings(max_examples=80, deadline=None)
@given(step=STEPS, qty=SIZES)
def test_sma_cross_refuses_exactly_a_qty_it_could_never_order(step: Decimal, qty: float) -> None:
    inst = instrument(step=str(step))
    world = World([inst])
    refused = add(world, "daemon.strategies.sma_cross:SmaCross",
                  {"fast": 1, "slow": 2, "qty": qty})
    assert (refused is not None) == (not orderable(inst, qty))
    if refused is not None:
        assert refused.key == "params.qty" and "rounds down to 0" in refused.detail
        return
    world.feed(bars(100.0, 101.0))  # fast > slow: buy qty
    [(_, request)] = world.gateway.submitted
    assert (request.side, request.order_type, request.qty) == (BUY, MARKET, inst.round_qty(
        to_decimal(qty)))
    assert world.statuses("s") == [("s", "running")]


@settings(max_examples=80, deadline=None)
@given(step=STEPS, qty=SIZES)
def test_mean_reversion_refuses_exactly_a_qty_it_could_never_order(
        step: Decimal, qty: float) -> None:
    inst = instrument(step=str(step))
    world = World([inst])
    refused = add(world, "daemon.strategies.mean_reversion:MeanReversion",
                  {"window": 2, "qty": qty, "entry_z": 0.5, "exit_z": 0.1})
    assert (refused is not None) == (not orderable(inst, qty))
    if refused is not None:
        assert refused.key == "params.qty"
        return
    world.feed(bars(100.0, 90.0))  # z = -1 < -entry_z: buy qty
    [(_, request)] = world.gateway.submitted
    assert (request.side, request.qty) == (BUY, inst.round_qty(to_decimal(qty)))
    assert world.statuses("s") == [("s", "running")]


@settings(max_examples=80, deadline=None)
@given(step=STEPS, qty=SIZES, max_position=SIZES)
def test_market_maker_refuses_exactly_sizes_it_could_never_quote(
        step: Decimal, qty: float, max_position: float) -> None:
    inst = instrument(step=str(step))
    world = World([inst])
    refused = add(world, "daemon.strategies.market_maker:MarketMaker",
                  {"qty": qty, "half_spread_bps": 10.0, "max_position": max_position})
    assert (refused is not None) == (not (orderable(inst, qty)
                                          and orderable(inst, max_position)))
    if refused is not None:
        key = refused.key.removeprefix("params.")
        assert not orderable(inst, {"qty": qty, "max_position": max_position}[key])
        return
    world.feed([Quote(ts_event=T0, ts_recv=T0, venue="sim", symbol="BTCUSDT", bid=100.0,
                      ask=100.02, bid_size=1.0, ask_size=1.0)])
    [(_, bid)] = world.gateway.submitted  # flat, no shorting: a bid only
    assert (bid.side, bid.order_type, bid.post_only) == (BUY, LIMIT, True)
    assert bid.qty == inst.round_qty(min(to_decimal(qty), to_decimal(max_position))) > 0


@settings(max_examples=80, deadline=None)
@given(step=STEPS, total=SIZES, slices=st.integers(1, 12))
def test_twap_refuses_exactly_a_schedule_with_an_empty_slice(
        step: Decimal, total: float, slices: int) -> None:
    inst = instrument(step=str(step))
    world = World([inst])
    refused = add(world, "daemon.strategies.twap:Twap",
                  {"side": "BUY", "total_qty": total, "duration": "10m", "slices": slices})
    rounded = inst.round_qty(to_decimal(total))
    empty_slice = rounded <= 0 or (slices > 1 and inst.round_qty(rounded / slices) <= 0)
    assert (refused is not None) == empty_slice
    if refused is not None:
        assert refused.key == ("params.total_qty" if rounded <= 0 else "params.slices")
        return
    world.feed([Trade(ts_event=T0 + t * S, ts_recv=T0 + t * S, venue="sim", symbol="BTCUSDT",
                      price=100.0, size=1.0) for t in range(0, 700, 20)])
    sizes = [request.qty for _, request in world.gateway.submitted]
    assert len(sizes) == slices and all(q > 0 for q in sizes)
    assert sum(sizes) == rounded
    assert world.statuses("s") == [("s", "running"), ("s", "stopped")]


def test_twap_names_a_symbol_it_does_not_trade() -> None:
    world = World()
    refused = add(world, "daemon.strategies.twap:Twap",
                  {"side": "SELL", "total_qty": 1.0, "duration": "1m", "slices": 2,
                   "symbol": "ETHUSDT"})
    assert refused is not None and refused.key == "params.symbol"
    assert str(refused) == ("strategies[s].params.symbol: 'ETHUSDT' is not one of its "
                            "symbols ['BTCUSDT']")


@pytest.mark.parametrize("raises", [False, True])
def test_a_user_strategys_check_is_used_and_its_own_failure_is_one_line(raises: bool) -> None:
    from tests.strategies_for_tests import NeedsTwoTicks

    NeedsTwoTicks.check_raises = raises
    try:
        world = World([instrument(tick="1")])
        refused = add(world, "tests.strategies_for_tests:NeedsTwoTicks", {"offset": 1.0})
    finally:
        NeedsTwoTicks.check_raises = False
    assert refused is not None
    if raises:
        assert (refused.key, refused.detail) == (
            "params", "tests.strategies_for_tests:NeedsTwoTicks.check_params raised "
            "RuntimeError('a bug in check_params')")
    else:
        assert str(refused) == ("strategies[s].params.offset: 1.0 is below two ticks of "
                                "BTCUSDT (2)")
