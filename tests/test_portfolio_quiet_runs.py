"""Quiet runs per instrument (`replay.driver` over `events.columns.TradeTape`):
with the trades of 1 to 5 instruments interleaved at random, strategies on
subsets of them (some wanting every trade) and a daily loss limit the
portfolio's moves reach, absorbing quiet runs in bulk shows every handler
exactly what dispatching every trade singly shows: each strategy's bars,
trades, orders and fills at the same times with the same marks of every
instrument, and every event the run publishes (orders, fills, positions,
trading states) with the same seq, time and marks."""

from __future__ import annotations

import random
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config import load_config
from daemon.node import TradingNode
from events.bus import Bus
from events.market import Trade
from events.registry import BY_NAME
from events.store import list_parts
from replay.clock import ReplayClock
from replay.driver import replay_into
from tests.conftest import REPO, cli_env, tapeloop_cmd
from tests.test_replay_e2e import SPY_DAY, _replay_events

SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
T0 = 1_700_000_000 * 10**9
SECOND = 10**9


def config_text(n: int, watch: list[tuple[tuple[int, ...], bool | str, int]], limit: float,
                bars: str = "5s", hold: bool = False) -> str:
    """A venue with `n` instruments, one Watcher per entry of `watch` (its symbols,
    whether it wants every trade or the name of its class, how often it trades)
    and the daily loss `limit`."""
    marked = ", ".join(f'"{s}"' for s in SYMBOLS[:n])
    parts = ['''
[[venues]]
name = "sim"
kind = "sim"
fill_model = "next"
taker_fee_bps = 1.0
balances = { USD = 1_000_000.0 }
''']
    for s in SYMBOLS[:n]:
        parts.append(f'''
[[instruments]]
venue = "sim"
symbol = "{s}"
base = "{s}"
quote = "USD"
tick_size = 0.01
step_size = 1.0
''')
    parts.append(f'''
[risk]
max_order_qty = 1_000.0
max_order_notional = 1_000_000.0
max_position_qty = 10_000.0
daily_loss_limit = {limit}
max_orders_per_s = 1000
price_band_pct = 50.0
''')
    for j, (symbols, trades, every) in enumerate(watch):
        cls = trades if isinstance(trades, str) else "TradeWatcher" if trades else "Watcher"
        names = ", ".join(f'"{SYMBOLS[k]}"' for k in symbols)
        parts.append(f'''
[[strategies]]
id = "w{j}"
class = "tests.strategies_for_tests:{cls}"
venue = "sim"
symbols = [{names}]
bar_interval = "{bars}"
params = {{ every = {every}, qty = 10, marked = [{marked}], hold = {str(hold).lower()} }}
''')
    return "".join(parts)


def tape(n: int, rows: list[tuple[int, int, int]]) -> list[Trade]:
    """Trades from (instrument, ms since the previous trade, price step in ticks)."""
    ts = T0
    prices = [100.0 + 10 * k for k in range(n)]
    out = []
    for i, (k, dt_ms, step) in enumerate(rows):
        ts += dt_ms * 1_000_000
        prices[k % n] = round(max(1.0, prices[k % n] + step * 0.01), 2)
        out.append(Trade(ts_event=ts, ts_recv=ts, seq=i + 1, venue="sim", symbol=SYMBOLS[k % n],
                         price=prices[k % n], size=1.0 + i % 3, trade_id=str(i)))
    return out


def run(config_path: Path, batches: list[list[Trade]], coalesce: bool) -> dict:
    """Replay `batches` through a trading node; every observation made."""
    config = load_config(config_path)
    bus = Bus(next_seq=10_000)
    clock = ReplayClock(start_ns=batches[0][0].ts_event)
    node = TradingNode(config, bus, clock, replay=True)
    symbols = [i.symbol for i in config.instruments]
    published: list[tuple] = []

    def note(event: object) -> None:
        marks = tuple(node.portfolio.last_price("sim", s) for s in symbols)
        published.append((type(event).__name__, msgspec.json.encode(event), clock.now_ns(), marks))

    # every type but Trade: a Trade handler would have to take quiet runs too
    for cls in BY_NAME.values():
        if cls is not Trade:
            bus.subscribe(cls, note)
    node.start()
    replay_into(bus, clock, batches, coalesce)
    node.runtime.flush_bars()
    seen = {sid: node.runtime.strategy(sid).seen for sid in node.runtime.strategy_ids}
    node.stop()
    return {"published": published, "seen": seen, "state": node.risk.state,
            "equity": node.portfolio.equity(), "now": clock.now_ns()}


rows_strategy = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 500),
                                   st.integers(-3, 3)), min_size=20, max_size=400)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5), rows=rows_strategy, data=st.data())
def test_interleaved_instruments_are_absorbed_as_if_dispatched_singly(
        n: int, rows: list[tuple[int, int, int]], data: st.DataObject,
        tmp_path_factory) -> None:
    events = tape(n, rows)
    # strategies on random subsets of the instruments, some wanting every trade
    watch = data.draw(st.lists(st.tuples(
        st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True).map(tuple),
        st.sampled_from([False, True, "CrossWatcher"]), st.integers(1, 3)),
        min_size=1, max_size=3), label="watch")
    limit = data.draw(st.sampled_from([2.0, 5.0, 15.0, 50.0, 1_000_000.0]), label="limit")
    seed = data.draw(st.integers(0, 2**32 - 1), label="batching seed")
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(events)), k=min(3, len(events) - 1)))
    batches = [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    path = Path(tmp_path_factory.mktemp("cfg")) / "portfolio.toml"
    path.write_text(config_text(n, watch, limit))
    fast = run(path, batches, coalesce=True)
    slow = run(path, batches, coalesce=False)
    assert fast == slow


def test_the_property_test_exercises_what_it_claims(tmp_path: Path) -> None:
    """On one fixed interleaving: bars close on several instruments, orders fill,
    the loss limit moves the trading state, and most trades are absorbed."""
    rng = random.Random(7)
    rows = [(rng.randrange(4), rng.randrange(0, 500), rng.randrange(-3, 4)) for _ in range(3000)]
    events = tape(4, rows)
    path = tmp_path / "portfolio.toml"
    path.write_text(config_text(4, [((0, 1), False, 2), ((2,), True, 1), ((1, 3), False, 3)],
                                40.0))
    fast = run(path, [events[:1500], events[1500:]], coalesce=True)
    slow = run(path, [events[:1500], events[1500:]], coalesce=False)
    assert fast == slow
    kinds = [kind for kind, _, _, _ in fast["published"]]
    assert "Fill" in kinds and "TradingState" in kinds
    bars = {e.symbol for seen in fast["seen"].values() for kind, e, _, _ in seen if kind == "bar"}
    assert bars == {"AAA", "BBB", "CCC", "DDD"}
    assert fast["equity"] != Decimal(1_000_000)


def test_a_loss_limit_crossed_by_several_moving_prices_inside_a_quiet_run(
        tmp_path: Path) -> None:
    """Four instruments held long; the market pauses (the re-valuation backs off),
    then all four fall together: the daily loss reaches the limit at a tick in
    the middle of a quiet run (a minute's bar: no bar closes, no fill), which the
    fast path must find from the four moving prices together, on the tick the
    slow path fires after the pause's back-off."""
    events: list[Trade] = []
    prices = [100.0, 110.0, 120.0, 130.0]

    def trade(ts: int, k: int) -> None:
        events.append(Trade(ts_event=ts, ts_recv=ts, seq=len(events) + 1, venue="sim",
                            symbol=SYMBOLS[k], price=round(prices[k], 2), size=1.0,
                            trade_id=str(len(events))))

    rng = random.Random(11)
    for i in range(1300):  # 65 s, every 50 ms: the first bars close, all four bought
        k = i % 4
        prices[k] += rng.choice((-0.01, 0.0, 0.01))
        trade(T0 + i * 50_000_000, k)
    for i in range(1200):  # a pause of 25 s, then all four fall a cent a trade
        k = i % 4
        prices[k] -= 0.01
        trade(T0 + 90 * SECOND + i * 50_000_000, k)
    path = tmp_path / "portfolio.toml"
    path.write_text(config_text(4, [((0, 1, 2, 3), False, 1)], 15.0, bars="1m", hold=True))
    fast = run(path, [events], coalesce=True)
    slow = run(path, [events], coalesce=False)
    assert fast == slow
    fills = {ts for kind, _, ts, _ in fast["published"] if kind == "Fill"}
    assert len(fills) == 4, "each instrument bought once, at its first bar"
    states = [ts for kind, _, ts, _ in fast["published"] if kind == "TradingState"]
    assert states and all(ts % (60 * SECOND) and ts not in fills and ts > T0 + 90 * SECOND
                          for ts in states), "crossed between bars, after the pause"


def test_a_dip_of_several_prices_is_seen_at_the_tick_it_spans(tmp_path: Path) -> None:
    """Four instruments held long; now and then all four dip together for 150 ms
    (deep enough for the loss limit) and recover. The first re-valuation tick
    that falls inside a dip must see it, as the slow path does, from each lane's
    trades before the tick only: the recovery a moment later must not hide it."""
    events: list[Trade] = []

    def trade(ts: int, k: int, price: float) -> None:
        events.append(Trade(ts_event=ts, ts_recv=ts, seq=len(events) + 1, venue="sim",
                            symbol=SYMBOLS[k], price=price, size=1.0,
                            trade_id=str(len(events))))

    base = [100.0, 110.0, 120.0, 130.0]
    for i in range(1300):  # 65 s, every 50 ms: the first bars close, all four bought
        trade(T0 + i * 50_000_000, i % 4, base[i % 4] + 0.01 * (i % 3))
    # then every 1.037 s a dip of 150 ms: its phase to the 1 s ticks drifts by 37 ms
    dips = [T0 + 70 * SECOND + d * 1_037_000_000 for d in range(40)]
    for i in range(int(45 * SECOND / 50_000_000)):
        ts = T0 + 70 * SECOND + i * 50_000_000
        dipped = any(d <= ts < d + 150_000_000 for d in dips)
        trade(ts, i % 4, base[i % 4] - (0.6 if dipped else 0.0))
    path = tmp_path / "portfolio.toml"
    path.write_text(config_text(4, [((0, 1, 2, 3), False, 1)], 15.0, bars="1m", hold=True))
    fast = run(path, [events], coalesce=True)
    slow = run(path, [events], coalesce=False)
    assert fast == slow
    states = [ts for kind, _, ts, _ in fast["published"] if kind == "TradingState"]
    # each instrument trades every 200 ms: its mark holds the dip up to then
    assert states and all(any(d <= ts < d + 350_000_000 for d in dips) for ts in states), \
        "the limit was reached in a dip"


SPY4 = ("SPY", "SPYB", "SPYC", "SPYD")


@pytest.fixture(scope="module")
def spy4_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real SPY day imported under the four symbols of configs/replay-spy4.toml."""
    if not SPY_DAY.exists():
        pytest.skip("shared market data absent")
    data = tmp_path_factory.mktemp("spy4") / "data"
    for symbol in SPY4:
        out = subprocess.run(tapeloop_cmd("import", "trades", str(SPY_DAY), "--venue", "lean",
                                          "--symbol", symbol, "--data", str(data)),
                             capture_output=True, text=True, env=cli_env(), cwd=REPO,
                             timeout=300)
        assert out.returncode == 0, out.stderr
    return data


@pytest.mark.parametrize(("limit", "multiple", "qty"), [
    (None, None, None), (120.0, 1.5, 1000), (60.0, 1.1, 1000)])
def test_the_four_symbol_portfolio_replays_byte_identical_with_quiet_runs(
        spy4_day: Path, tmp_path: Path, limit: float | None, multiple: float | None,
        qty: int | None) -> None:
    """configs/replay-spy4.toml on a real day (four instruments interleaved in one
    tape): fills.csv, trades.csv, equity.csv, report.json and every event of the
    run are byte for byte those of the replay that dispatches every trade; also
    with daily loss limits the four moving prices reach between bars (the
    re-valuation passed over quiet runs with several moving prices)."""
    text = (REPO / "configs" / "replay-spy4.toml").read_text()
    if limit is not None:
        text = re.sub(r"daily_loss_limit = [\d_.]+", f"daily_loss_limit = {limit}", text)
        text = text.replace("[risk]\n", f"[risk]\nhalt_loss_multiple = {multiple}\n")
        text = text.replace("qty = 100 }", f"qty = {qty} }}")
    config = tmp_path / "spy4.toml"
    config.write_text(text)
    runs = {}
    for name, coalesce in (("fast", True), ("slow", False)):
        runs[name] = _replay_events(config, spy4_day, tmp_path / name, coalesce=coalesce)
        for csv in ("fills.csv", "trades.csv"):
            runs[name][(csv, "")] = (tmp_path / name / csv).read_bytes()
    assert runs["fast"] == runs["slow"]
    fills = pq.read_table(list_parts(tmp_path / "fast" / "events", types=["Fill"])[0].path)
    assert set(fills.column("symbol").to_pylist()) == set(SPY4), "every instrument traded"
    if limit is not None:
        states = list_parts(tmp_path / "fast" / "events", types=["TradingState"])
        seen = {r["state"] for p in states for r in pq.read_table(p.path).to_pylist()}
        assert seen & {"reducing", "halted"}, "the limit was reached: the test means something"


def _thin_then_busy(n: int) -> list[Trade]:
    """`n` instruments trading at the same times: a thin market (a trade each
    every 6 s: each closes a 5 s bar), then a busy spell inside one bar."""
    out: list[Trade] = []
    ts = T0
    for step in range(10 + 1500):
        ts += 6 * SECOND if step < 10 else 1_000_000
        for k in range(n):
            out.append(Trade(ts_event=ts, ts_recv=ts, seq=len(out) + 1, venue="sim",
                             symbol=SYMBOLS[k], price=100.0 + step % 7 * 0.01, size=1.0,
                             trade_id=str(len(out))))
    return out


def test_instruments_closing_bars_at_one_time_go_no_slower_per_instrument(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each instrument's trades are dispatched singly no more often in a tape of
    four than alone: a tape meets one miss per lane where one lane meets one,
    and counting them per trade sent the busy spell's quiet trades one by one
    (the 4-symbol SPY week: 458k of them, none for one symbol)."""
    singly = [0]
    dispatch_many = Bus.dispatch_many

    def counting(self: Bus, events):  # type: ignore[no-untyped-def]
        def each():  # type: ignore[no-untyped-def]
            for event in events:
                singly[0] += event.__class__ is Trade
                yield event
        return dispatch_many(self, each())

    monkeypatch.setattr(Bus, "dispatch_many", counting)
    counts = {}
    for n in (1, 4):
        events = _thin_then_busy(n)
        path = tmp_path / f"p{n}.toml"
        path.write_text(config_text(n, [((k,), False, 2) for k in range(n)], 1_000_000.0))
        singly[0] = 0
        run(path, [events], coalesce=True)
        counts[n] = singly[0]
    assert 10 <= counts[1] < 40  # the thin market's trades, and fills, not the busy spell
    assert counts[4] <= 4 * counts[1], counts


def test_an_order_on_one_instrument_at_anothers_bar_is_seen_by_the_next_run(
        tmp_path: Path) -> None:
    """A bar of one instrument makes a strategy trade another (CrossWatcher):
    what the owners said of that other lane before the order (quiet up to its
    next bar) no longer holds (its next trade fills the order), so the driver
    must not keep it across an event published (the order)."""
    rng = random.Random(5)
    rows = [(rng.randrange(4), rng.randrange(0, 400), rng.randrange(-3, 4)) for _ in range(3000)]
    events = tape(4, rows)
    path = tmp_path / "portfolio.toml"
    path.write_text(config_text(4, [((0, 1, 2, 3), "CrossWatcher", 1)], 1_000_000.0))
    fast = run(path, [events[:2000], events[2000:]], coalesce=True)
    slow = run(path, [events[:2000], events[2000:]], coalesce=False)
    assert fast == slow
    fills = [e for seen in fast["seen"].values() for kind, e, _, _ in seen if kind == "fill"]
    assert {f.symbol for f in fills} == set(SYMBOLS[:4]) and len(fills) > 20, len(fills)


def test_each_lane_is_asked_once_per_change_not_once_per_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Owners are asked about a lane again only when what they said of it may
    have changed (one of its trades dispatched singly, an event published, a
    timer fired), not at each run another lane's bar ends: asking every lane at
    every run made the asks grow with the square of the instruments (297k
    bisects on the 4-symbol SPY week against 32k for one symbol)."""
    from daemon.strategies.routing import MarketRouter

    asks = [0]
    quiet_trades = MarketRouter.quiet_trades

    def counting(self, cols, start, stop):  # type: ignore[no-untyped-def]
        asks[0] += 1
        return quiet_trades(self, cols, start, stop)

    monkeypatch.setattr(MarketRouter, "quiet_trades", counting)
    rng = random.Random(3)
    counts = {}
    for n in (1, 4):
        # each instrument trades every ~50 ms for 10 minutes; 5 s bars: runs end
        # at each instrument's bar closes, n times as many runs for n instruments
        rows = [(rng.randrange(n), rng.randrange(0, 100 // n), 0) for _ in range(12_000 * n)]
        path = tmp_path / f"p{n}.toml"
        path.write_text(config_text(n, [((k,), False, 1000) for k in range(n)], 1_000_000.0))
        asks[0] = 0
        run(path, [tape(n, rows)], coalesce=True)
        counts[n] = asks[0]
    assert counts[4] <= 5 * counts[1], counts
