"""StrategyRuntime: loading, params errors, routing, isolation, bars, timers, state."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from daemon.strategies.base import Strategy
from daemon.strategies.loader import StrategyError
from events.market import Bar, Quote, Trade
from events.orders import Fill, OrderAccepted
from events.system import StrategyStatus, Timer
from tests.daemon.strategies.conftest import World
from tests.daemon.strategies.fakes import strategy_config

HERE = "tests.daemon.strategies.test_runtime"
MIN = 60 * 10**9


class Recorder(Strategy):
    """Records every hook call as (hook, event)."""

    def __init__(self, config: Any, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.calls: list[tuple[str, Any]] = []
        self.in_hook = False

    def _rec(self, name: str, event: Any = None) -> None:
        assert not self.in_hook, f"{name} ran inside another hook"
        self.calls.append((name, event))

    def on_start(self) -> None:
        self._rec("start")

    def on_stop(self) -> None:
        self._rec("stop")

    def on_trade(self, trade: Trade) -> None:
        self._rec("trade", trade)

    def on_quote(self, quote: Quote) -> None:
        self._rec("quote", quote)

    def on_bar(self, bar: Bar) -> None:
        self._rec("bar", bar)

    def on_order(self, event: Any) -> None:
        self._rec("order", event)

    def on_fill(self, fill: Fill) -> None:
        self._rec("fill", fill)

    def on_timer(self, timer: Timer) -> None:
        self._rec("timer", timer)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class Boom(Recorder):
    """Raises in on_bar on its third bar, after resting an order."""

    def on_bar(self, bar: Bar) -> None:
        super().on_bar(bar)
        if len([n for n in self.names() if n == "bar"]) == 1:
            self.buy("BTCUSDT", 1, price=100)
        if len([n for n in self.names() if n == "bar"]) == 3:
            raise RuntimeError("kaboom")


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    window: int
    threshold: float = 1.0

    def __post_init__(self) -> None:
        if self.window > 100:
            raise ValueError("window must be at most 100")


class WithParams(Strategy):
    Params = Params


class BadInit(Strategy):
    def __init__(self, config: Any, ctx: Any) -> None:
        raise KeyError("nope")


class NotAStrategy:
    pass


def trade(ts: int, price: float = 100.0, symbol: str = "BTCUSDT", venue: str = "sim") -> Trade:
    return Trade(ts_event=ts, ts_recv=ts, venue=venue, symbol=symbol, price=price, size=1.0)


def bar(i: int, close: float = 100.0, symbol: str = "BTCUSDT", interval: str = "1m") -> Bar:
    return Bar(ts_event=(i + 1) * MIN, ts_recv=(i + 1) * MIN, venue="sim", symbol=symbol,
               interval=interval, ts_open=i * MIN, open=close, high=close, low=close,
               close=close, volume=1.0)


def add(world: World, id: str, cls: str = "Recorder", **kw: Any) -> Any:
    return world.runtime.add(strategy_config(id, f"{HERE}:{cls}", **kw))


# -- loading and params -------------------------------------------------------------

@pytest.mark.parametrize("cls,message", [
    ("no.such.module:X", "strategies[s1].class: cannot import module 'no.such.module': "
                         "No module named 'no'"),
    (f"{HERE}:Missing", f"strategies[s1].class: module '{HERE}' has no 'Missing'"),
    (f"{HERE}:NotAStrategy", f"strategies[s1].class: '{HERE}:NotAStrategy' is not a subclass "
                             "of daemon.strategies.base.Strategy"),
    ("nocolon", "strategies[s1].class: expected \"module:Class\", got 'nocolon'"),
    (f"{HERE}:BadInit", f"strategies[s1]: {HERE}:BadInit failed to initialise: KeyError('nope')"),
])
def test_a_bad_class_is_one_clear_line(world: World, cls: str, message: str) -> None:
    with pytest.raises(StrategyError) as info:
        world.runtime.add(strategy_config("s1", cls))
    assert str(info.value) == message
    assert "\n" not in str(info.value) and info.value.code == 3


@pytest.mark.parametrize("params,message", [
    ({"window": "ten"}, "strategies[p].params.window: Expected int, got str"),
    ({"window": 5, "treshold": 2}, 'strategies[p].params.treshold: unknown key '
                                   '(did you mean "threshold"?)'),
    ({}, "strategies[p].params.window: missing required key"),
    ({"window": 500}, "strategies[p].params: window must be at most 100"),
])
def test_bad_params_name_the_key(world: World, params: dict[str, Any], message: str) -> None:
    with pytest.raises(StrategyError) as info:
        add(world, "p", "WithParams", params=params)
    assert str(info.value) == message


def test_builtin_params_errors(world: World) -> None:
    with pytest.raises(StrategyError, match=r"^strategies\[sma\]\.params: fast \(30\) must be "
                                            r"less than slow \(10\)$"):
        world.runtime.add(strategy_config("sma", params={"fast": 30, "slow": 10, "qty": 1}))
    with pytest.raises(StrategyError, match=r"^strategies\[sma\]\.params\.qty: Expected "
                                            r"float > 0.0, got -1$"):
        world.runtime.add(strategy_config("sma", params={"fast": 3, "slow": 10, "qty": -1}))


def test_params_are_validated_into_the_struct(world: World) -> None:
    s = add(world, "p", "WithParams", params={"window": 5})
    assert s.params == Params(window=5, threshold=1.0)


def test_unknown_symbol_duplicate_id_and_disabled(world: World) -> None:
    with pytest.raises(StrategyError, match=r"strategies\[x\]\.symbols\[1\]: no instrument"):
        add(world, "x", symbols=("BTCUSDT", "DOGEUSDT"))
    add(world, "a")
    with pytest.raises(StrategyError, match="duplicate"):
        add(world, "a")
    assert add(world, "off", enabled=False) is None


# -- routing ---------------------------------------------------------------------------

def test_market_data_reaches_only_its_venue_and_symbols(world: World) -> None:
    btc = add(world, "btc")
    eth = add(world, "eth", symbols=("ETHUSDT",))
    world.runtime.start()
    world.feed([trade(1), trade(2, symbol="ETHUSDT"), trade(3, venue="other"),
                Quote(ts_event=4, ts_recv=4, venue="sim", symbol="BTCUSDT", bid=1, ask=2,
                      bid_size=1, ask_size=1)])
    assert btc.names() == ["start", "trade", "quote"]
    assert [e.ts_event for _, e in btc.calls[1:]] == [1, 4]
    assert eth.names() == ["start", "trade"] and eth.calls[1][1].symbol == "ETHUSDT"


def test_order_events_reach_their_own_strategy_only(world: World) -> None:
    a, b = add(world, "a"), add(world, "b")
    world.runtime.start()
    world.feed([trade(1)])
    world.clock.advance_to(2)
    cid = a.buy("BTCUSDT", 0.5)  # outside a dispatch: the gateway answers synchronously
    assert cid == "a-1"
    assert a.names()[-2:] == ["order", "fill"]
    assert isinstance(a.calls[-2][1], OrderAccepted)
    assert a.calls[-1][1].qty == Decimal("0.5")
    assert not a.is_open(cid) and a.position().qty == Decimal("0.5")
    assert "order" not in b.names() and "fill" not in b.names()


def test_quantities_round_down_to_the_step_and_prices_to_the_tick(world: World) -> None:
    a = add(world, "a")
    world.runtime.start()
    world.feed([trade(1)])
    a.buy("BTCUSDT", 0.123456789, price=100.004)
    (_, req), = world.gateway.submitted
    assert (req.qty, req.price, req.order_type) == (Decimal("0.12345"), Decimal("100.00"), "LIMIT")
    with pytest.raises(ValueError, match="rounds down to 0"):
        a.buy("BTCUSDT", 0.000001)
    with pytest.raises(ValueError, match="not one of its symbols"):
        a.buy("ETHUSDT", 1)


# -- isolation -------------------------------------------------------------------------

def test_a_raising_strategy_is_failed_and_the_others_keep_running(world: World) -> None:
    boom = add(world, "boom", "Boom", bar_interval="1m")
    calm = add(world, "calm", bar_interval="1m")
    world.runtime.start()
    with capture_logs() as logs:
        world.feed([bar(i) for i in range(6)])
    assert boom.names().count("bar") == 3  # nothing after the failure
    assert calm.names().count("bar") == 6
    failed = [e for e in world.events if isinstance(e, StrategyStatus) and e.status == "failed"]
    assert [(e.strategy_id, e.reason) for e in failed] == [("boom", "RuntimeError('kaboom')")]
    (line,) = [entry for entry in logs if entry["event"] == "strategy.failed"]
    assert line["log_level"] == "error" and line["strategy_id"] == "boom"
    assert line["hook"] == "on_bar"
    assert world.runtime.status("boom") == "failed" and world.runtime.status("calm") == "running"
    assert world.gateway.cancels == ["boom-1"]  # its resting order was cancelled
    world.runtime.stop()
    assert world.statuses() == [("boom", "running"), ("calm", "running"), ("boom", "failed"),
                                ("calm", "stopped")]
    assert "stop" not in boom.names()  # no hook of a failed strategy runs


def test_a_raising_on_start_fails_only_that_strategy(world: World) -> None:
    class_path = f"{HERE}:Recorder"
    world.runtime.add(strategy_config("ok", class_path))
    bad = world.runtime.add(strategy_config("bad", class_path))
    bad.on_start = lambda: (_ for _ in ()).throw(ValueError("no"))  # type: ignore[method-assign]
    world.runtime.start()
    assert world.statuses() == [("ok", "running"), ("bad", "failed")]


# -- bars ------------------------------------------------------------------------------

def test_bars_are_built_from_trades_and_close_before_the_closing_trade(world: World) -> None:
    s = add(world, "s", bar_interval="1m")
    world.runtime.start()
    world.feed([trade(10, 1.0), trade(MIN - 1, 3.0), trade(MIN + 5, 2.0), trade(3 * MIN, 4.0)])
    assert s.names() == ["start", "trade", "trade", "bar", "trade", "bar", "trade"]
    bars = [e for n, e in s.calls if n == "bar"]
    assert [(b.ts_open, b.ts_event, b.open, b.close, b.interval) for b in bars] == [
        (0, MIN, 1.0, 3.0, "1m"), (MIN, 2 * MIN, 2.0, 2.0, "1m")]
    world.runtime.flush_bars()
    assert s.calls[-1][1].ts_open == 3 * MIN


def test_data_bars_of_the_interval_replace_built_ones_without_duplicates(world: World) -> None:
    s = add(world, "s", bar_interval="1m")
    every = add(world, "every")  # no bar_interval: every data bar of its symbols
    world.runtime.start()
    # trades build [0, 1m); the data's own 1m bars start at the same time
    world.feed([trade(10), trade(MIN + 1), bar(0), trade(MIN + 2), bar(1), trade(2 * MIN + 1),
                bar(1, interval="5m"), bar(2)])
    got = [(e.ts_open, e.interval) for n, e in s.calls if n == "bar"]
    assert got == [(0, "1m"), (MIN, "1m"), (2 * MIN, "1m")]  # data bar 0 skipped: built already
    assert [e.interval for n, e in every.calls if n == "bar"] == ["1m", "1m", "5m", "1m"]


# -- timers, lifecycle, state ------------------------------------------------------------

class Ticker(Recorder):
    def on_start(self) -> None:
        super().on_start()
        self.set_timer("tick", every_ns=10)
        self.set_timer("once", at_ns=125)

    def on_timer(self, timer: Timer) -> None:
        super().on_timer(timer)
        if timer.name == "tick" and timer.ts_event == 130:
            self.cancel_timer("tick")


def test_timers_fire_on_the_replay_clock_and_are_published(world: World) -> None:
    world.clock.advance_to(100)
    t = add(world, "t", "Ticker")
    world.runtime.start()
    world.feed([trade(ts) for ts in (105, 111, 125, 150)])
    timers = [(e.name, e.ts_event) for n, e in t.calls if n == "timer"]
    assert timers == [("tick", 110), ("tick", 120), ("once", 125), ("tick", 130)]
    published = [(e.name, e.owner) for e in world.events if isinstance(e, Timer)]
    assert published == [("tick", "t"), ("tick", "t"), ("once", "t"), ("tick", "t")]


def test_stop_cancels_timers(world: World) -> None:
    t = add(world, "t", "Ticker")
    world.runtime.start()
    world.runtime.stop()
    world.feed([trade(1000)])
    assert t.names() == ["start", "stop"] and world.clock.pending() == 0


class Eager(Recorder):
    """Trades in on_start: the synchronous answers must wait until on_start returns."""

    def on_start(self) -> None:
        self.in_hook = True
        self.buy("BTCUSDT", 1)
        self.in_hook = False
        super().on_start()

    def on_order(self, event: Any) -> None:
        super().on_order(event)
        if self.names().count("order") == 1:
            self.stop("enough")  # a strategy may stop itself from a hook


def test_hooks_never_nest_and_a_strategy_can_stop_itself(world: World) -> None:
    world.feed([trade(1)])
    e = add(world, "e", "Eager")
    world.runtime.start()
    assert e.names() == ["start", "order", "stop"]
    assert world.statuses("e") == [("e", "running"), ("e", "stopped")]
    assert world.runtime.status("e") == "stopped"


def test_add_after_start_remove_and_initial_positions(world: World, tmp_path: Path) -> None:
    world.runtime.start()
    positions = tmp_path / "positions.json"
    positions.write_text("{}")
    late = add(world, "late", initial_positions=positions)
    assert late.names() == ["start"] and world.seeded == ["late"]
    world.runtime.remove("late")
    assert late.names() == ["start", "stop"] and world.runtime.strategy_ids == []
    bare = World()
    bare.runtime.seed_positions = None
    with pytest.raises(StrategyError, match="initial_positions: this run cannot seed"):
        add(bare, "x", initial_positions=positions)


class Stateful(Recorder):
    def get_state(self) -> Any:
        return {"seen": self.names().count("trade")}

    def set_state(self, state: Any) -> None:
        self.calls.append(("state", state))


def test_state_is_saved_on_stop_and_restored_on_start(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    w1 = World()
    add(w1, "st", "Stateful", state_file=path)
    w1.runtime.start()
    w1.feed([trade(1), trade(2)])
    w1.runtime.stop()
    assert msgspec.json.decode(path.read_bytes()) == {"seen": 2}
    w2 = World()
    s = add(w2, "st", "Stateful", state_file=path)
    w2.runtime.start()
    assert s.calls[0] == ("state", {"seen": 2})


def test_bracket_and_oco_requests(world: World) -> None:
    a = add(world, "a")
    world.runtime.start()
    world.feed([trade(1)])
    entry, stop, target = a.bracket("BUY", "BTCUSDT", 0.5, stop_price=95.001, target_price=110)
    reqs = [r for _, r in world.gateway.submitted]
    assert [(r.side, r.order_type, r.price, r.trigger_price, r.reduce_only) for r in reqs] == [
        ("BUY", "MARKET", None, None, False),
        ("SELL", "STOP_MARKET", None, Decimal("95.01"), True),  # a sell stop rounds up
        ("SELL", "LIMIT", Decimal("110.00"), None, True)]
    assert not a.is_open(entry) and a.is_open(stop) and a.is_open(target)
    x, y = a.oco(a.order_request("SELL", "BTCUSDT", 0.1, price=120),
                 a.order_request("SELL", "BTCUSDT", 0.1, trigger_price=90))
    assert a.has_open_orders("BTCUSDT") and a.is_open(x) and a.is_open(y)
    assert a.cancel_all() == 4 and not a.has_open_orders()
