"""The Binance world of the simulation (issue 9, Deliver 9): the real node and the real
`BinanceVenue` against the real fake Binance on loopback, through faults and restarts.

Unlike the worlds of `sim.py` this one cannot be bit-for-bit deterministic: the network
and the fake's clock are real. Everything else comes from the seed: the fake's market,
the strategies' choices, the schedule of faults, restarts and settle points. Choices that
depend on what happens to be open (which order is canceled behind our back) come from a
second stream, so that timing never shifts the schedule. A failure names its seed and the
command that runs it again (`reproducer`).

One run (`run(seed)`):
- A process: `TradingNode` (OMS, risk, portfolio, `ChaosTrader` strategies, sometimes the
  market maker) and a `BinanceVenue` on a bus whose journal is a list.
- Every step the world moves on for a moment and, on the schedule, one fault is injected
  as the soak does: both streams dropped, 429s, placements that time out, answer 5xx
  after being processed, are dropped, or reach the engine late (`arrives_after_s`); user
  events duplicated, reordered or lost; cancel answers lost, cancels refused (503) for a
  while; orders canceled behind our back, some then archived.
- At a restart point the process is killed: its venue task is cancelled, its timers and
  its bus die with it (nothing drains; nothing it does afterwards is recorded). The market
  goes on for a moment while nobody listens (orders fill, late placements land); then a
  new process starts on the journal in the daemon's order: fold (`fold_journal`), restate
  positions, connect and reconcile (`venue.reconciled`), `resume_policies`,
  `node.start()`; sometimes it is killed again while it starts up (reconciling). The fake
  keeps its state, as Binance does.

Invariants. At every check point, `tests.dst.invariants.Checker` (the state folded from
scratch equals the live one; positions and orders equal their applied fills, Binance's
commission in BTC on buys included; no trade applied twice; no client order id submitted
twice; risk counted every order in flight; no handler failed; nothing quarantined), and:
a restart's fold publishes nothing; nothing reaches Binance that the journal did not
record first, and no client order id is POSTed twice; every process trades (an order
submitted and filled) before it dies, the last one too. At a settle point (faults
cleared, the market held still, every outcome known, one more reconciliation): every
order open in the OMS is open at the fake and vice versa, each order's filled quantity
is the fake's, no cancel is left pending, every trade the fake made for us is applied
once and as the fake made it, and the balances are the fake's.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

from adapters.binance.venue import BinanceVenue
from daemon.node import TradingNode
from daemon.recovery import catch_up_positions, fold_journal, resume_policies
from events.base import Event
from events.bus import Bus
from events.orders import BUY, SELL, Fill, OrderSubmitted
from events.state import PositionChanged
from replay.clock import LiveClock, TimerCallback, TimerHandle
from tests.adapters.binance.live import binance_venue, config
from tests.conftest import until
from tests.dst.invariants import Checker, InvariantBroken
from tests.fake_binance import FakeBinanceServer

SEED_ENV = "TAPELOOP_DST_BINANCE_SEED"
VENUE, SYMBOL = "binance", "BTCUSDT"
ORDER = "/api/v3/order"
TIMEOUT_S = 1.0  # the venue's REST timeout here: a placement held longer is unknown
DEADLINE_S = 30.0  # for anything the world must reach (a reconciliation, a trade)
FAULTS = ("disconnect_market", "disconnect_user", "rest_429", "order_timeout", "order_5xx",
          "order_late", "order_dropped", "cancel_dropped", "cancel_503", "duplicate_user",
          "reorder_user", "lose_user", "cancel_behind", "archive_behind")
RISK = {"max_order_qty": 1.0, "max_order_notional": 1_000_000.0, "max_position_qty": 0.02,
        "daily_loss_limit": 1e9, "max_orders_per_s": 50, "price_band_pct": 10.0,
        "self_trade_prevention": False}
MM = {"id": "mm", "class": "daemon.strategies.market_maker:MarketMaker", "venue": VENUE,
      "symbols": [SYMBOL], "params": {"qty": 0.001, "half_spread_bps": 0.005,
                                      "max_position": 0.005, "requote_bps": 2.0,
                                      "requote": "replace"}}

__all__ = ["InvariantBroken", "Outcome", "reproducer", "run"]


def reproducer(seed: int) -> str:
    return f"{SEED_ENV}={seed} .venv/bin/python -m pytest tests/dst/test_binance_world.py"


@dataclass
class Outcome:
    seed: int
    steps: int
    restarts: int = 0
    settles: int = 0
    orders: int = 0
    fills: int = 0
    reconciliations: int = 0
    unrecorded: int = 0  # events dead processes published (never journaled)
    faults: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0

    def __str__(self) -> str:
        return (f"binance world seed {self.seed}: {self.steps} steps, {self.restarts} "
                f"restarts, {self.settles} settles, {self.orders} orders, {self.fills} fills, "
                f"{self.reconciliations} reconciliations, faults {dict(self.faults)}, "
                f"alerts {dict(self.alerts)}; {self.wall_s:.1f} s")


class ProcessClock(LiveClock):
    """One process's clock: its timers die with it (a killed process fires none)."""

    def __init__(self) -> None:
        super().__init__()
        self._timers: list[TimerHandle] = []

    def set_timer(self, name: str, deadline_ns: int, callback: TimerCallback,
                  owner: str = "") -> TimerHandle:
        handle = super().set_timer(name, deadline_ns, callback, owner)
        self._timers = [t for t in self._timers if t.active]
        self._timers.append(handle)
        return handle

    def kill(self) -> None:
        for handle in self._timers:
            self.cancel_timer(handle)


class BinanceWorld:
    """The fake Binance, as the `Checker` sees a world."""

    name = "binance"
    venue = VENUE

    def __init__(self, server: FakeBinanceServer) -> None:
        self.server = server

    def open_at_venue(self, sim: Any) -> set[str]:
        return {o.client_order_id for o in self.server.orders.values() if o.is_open}


class BinanceSimulation:
    """One seed's run; see the module docstring. `seed`, `step_no`, `world`, `journal`
    and `errors` are what the `Checker` reads."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.reproducer = reproducer(seed)
        sched = self.sched = random.Random(seed)
        self.pick = random.Random(f"{seed}/pick")  # choices that depend on the state
        self.tick_s = sched.choice([0.02, 0.05])
        # a move of 1 to 6 USDT a step: resting orders near the touch fill in seconds
        self.server = FakeBinanceServer(seed=sched.randrange(1 << 30),
                                        tick_interval_s=self.tick_s,
                                        move_ticks=sched.choice([100, 300]),
                                        skew_ms=sched.choice([0, 0, 800, -2500]))  # its clock
        self.world = BinanceWorld(self.server)
        self.steps = sched.randint(40, 70)
        points = sched.sample(range(6, self.steps), k=sched.randint(3, 4))
        self.restart_at = set(points[:sched.randint(1, 3)])
        self.settle_at = set(points) - self.restart_at
        self.fault_p = sched.choice([0.2, 0.4, 0.6])
        self.recv_window_ms = sched.choice([1000, 2000, 3000])
        rate = sched.choice([0.1, 0.2])
        self.strategies = [
            {"id": f"c{i}", "class": "tests.dst.trader:ChaosTrader", "venue": VENUE,
             "symbols": [SYMBOL], "params": {"seed": seed, "rate": rate, "reach": 0.05}}
            for i in range(sched.randint(1, 2))]
        if sched.random() < 0.3:
            self.strategies.append(MM)
        self.journal: list[Event] = []
        self.errors: list[str] = []
        self.step_no = 0
        self.incarnation = 0
        self.alive = 0  # the incarnation whose events are recorded (0: none)
        self.checker = Checker(self)
        self.outcome = Outcome(seed, self.steps)
        self.ours: set[str] = set()  # client ids the live process submitted
        self.traded = [0, 0]  # the live process's own orders submitted, and their fills

    # -- the process's lives ---------------------------------------------------------------

    async def boot(self, *, until_started: bool = True) -> None:
        """Start a process on the journal, in the daemon's order (the module doc);
        `until_started=False` returns once its venue runs (reconciling)."""
        self.incarnation += 1
        inc = self.alive = self.incarnation
        strategies = [{**s, "params": {**s["params"], "incarnation": inc}}
                      if s is not MM else s for s in self.strategies]
        cfg = config(self.server.base_url, strategies, risk=RISK,
                     recv_window_ms=self.recv_window_ms)
        self.bus = Bus(next_seq=len(self.journal) + 1, journal=partial(self._journal, inc),
                       on_error=partial(self._on_error, inc))
        self.clock = ProcessClock()
        self.node = node = TradingNode(cfg, self.bus, self.clock, replay=False)
        self.checker.watch(node)
        self.venue: BinanceVenue = binance_venue(node, self.bus)
        self.venue.rest.timeout_s = TIMEOUT_S
        self.venue.alert = self._alert
        self.venue.subscribe(self.bus)
        self.ours, self.traded = set(), [0, 0]
        recorded = len(self.journal)
        recovered = fold_journal(node, self.journal)
        if len(self.journal) != recorded:
            self.checker.fail(f"the fold published {type(self.journal[recorded]).__name__}")
        if inc > 1:
            self.checker.after_fold(node)
        catch_up_positions(node.portfolio, self.bus,
                           [e for e in self.journal if type(e) is PositionChanged])
        self.task = asyncio.create_task(self.venue.run(), name=f"binance-{inc}")
        if not until_started:
            return
        await until(lambda: self.venue.reconciled or self.task.done(), timeout=DEADLINE_S,
                    message=f"process {inc}'s first reconciliation")
        if self.task.done():
            self.task.result()  # it died: say why
        resume_policies(node, recovered)
        node.start()

    async def crash(self) -> None:
        """kill -9: the process stops where it is; the journal and Binance remain.
        Its tasks take a few loop turns to unwind: meanwhile nothing they publish is
        journaled or reaches anyone (a real kill is instant), and what they already
        journaled may still reach Binance, as a request on the wire does."""
        self.alive = 0
        bus = self.bus
        for handlers in (bus._catch_all, *bus._by_type.values()):
            handlers.clear()
        bus._routes.clear()
        self.clock.kill()
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        self.outcome.reconciliations += self.venue.reconciled

    def _journal(self, inc: int, event: Event) -> None:
        if inc != self.alive:
            self.outcome.unrecorded += 1  # a dead process: nothing it does is recorded
            return
        if event.seq != len(self.journal) + 1:
            raise InvariantBroken(f"the journal's seq has a gap at {event.seq}")
        self.journal.append(event)
        self.checker.journaled(event)
        cls = type(event)
        if cls is OrderSubmitted:
            self.ours.add(event.client_order_id)  # type: ignore[attr-defined]
            self.traded[0] += 1
        elif cls is Fill and event.client_order_id in self.ours:  # type: ignore[attr-defined]
            self.traded[1] += 1

    def _on_error(self, inc: int, event: Event, handler: Any, exc: BaseException) -> None:
        if inc == self.alive:
            self.errors.append(f"{getattr(handler, '__qualname__', handler)} on "
                               f"{type(event).__name__}: {exc!r}")

    def _alert(self, kind: str, message: str, **context: Any) -> None:
        self.outcome.alerts[kind] += 1

    # -- faults ---------------------------------------------------------------------------

    def inject(self, fault: str) -> None:
        s, sched = self.server, self.sched
        self.outcome.faults[fault] += 1
        if fault == "disconnect_market":
            s.disconnect_market()
        elif fault == "disconnect_user":
            s.disconnect_user()
        elif fault == "rest_429":
            s.fail_next(429, retry_after=1)
        elif fault == "order_timeout":  # processed, answered after we gave up
            s.delay_next(TIMEOUT_S + 0.5, method="POST", path=ORDER)
        elif fault == "order_5xx":  # processed, then 503: outcome unknown
            s.fail_next(503, method="POST", path=ORDER, after_processing=True)
        elif fault == "order_late":  # 503 at once; the engine gets it later, or too late
            s.fail_next(503, method="POST", path=ORDER,
                        arrives_after_s=sched.uniform(0.1, self.recv_window_ms / 1000 + 0.5))
        elif fault == "order_dropped":
            s.drop_next(method="POST", path=ORDER)
        elif fault == "cancel_dropped":  # processed, answer lost
            s.drop_next(method="DELETE", path=ORDER)
        elif fault == "cancel_503":  # Binance unreachable for cancels for a while
            s.fail_next(503, method="DELETE", path=ORDER, n=sched.randint(1, 20))
        elif fault == "duplicate_user":
            s.duplicate_user_events(sched.randint(1, 4))
        elif fault == "reorder_user":
            s.reorder_user_events(sched.randint(2, 4))
        elif fault == "lose_user":
            s.lose_user_events(sched.randint(1, 6))
        else:  # cancel_behind / archive_behind: as another client (or 90 days) would
            archive = fault == "archive_behind"
            open_ = sorted((o for o in s.orders.values() if o.is_open
                            and not (archive and o.executed_qty)), key=lambda o: o.order_id)
            if open_:
                s.cancel_behind_our_back(self.pick.choice(open_).client_order_id,
                                         archive=archive)

    # -- checks ---------------------------------------------------------------------------

    def check(self, settled: bool = False) -> None:
        self.checker.step(self.step_no, settled=settled)
        submitted = self.checker.submitted
        for cid, n in self.server.rest.post_counts.items():
            if n > 1:
                self.checker.fail(f"client order id {cid} POSTed {n} times")
            if cid not in submitted:
                self.checker.fail(f"{cid} reached Binance with no OrderSubmitted journaled")

    async def until_traded(self) -> None:
        """The live process submitted an order and had one of its orders filled."""
        await until(lambda: all(self.traded), timeout=DEADLINE_S,
                    message=f"process {self.incarnation} to trade (submitted, filled: "
                            f"{self.traded})")

    async def settle(self) -> None:
        """Faults cleared, the market still, every outcome known, one more
        reconciliation; then Binance and we agree on everything."""
        s, venue = self.server, self.venue
        s.tick_interval_s = None  # no trades: the strategies have nothing to act on
        s.clear_faults()
        s.clear_user_faults()
        await until(lambda: venue.idle, timeout=DEADLINE_S, message="every outcome known")
        before = venue.reconciled
        s.disconnect_user()
        await until(lambda: venue.reconciled > before, timeout=DEADLINE_S,
                    message="the settling reconciliation")
        await until(lambda: venue.idle, timeout=DEADLINE_S, message="idle once reconciled")
        self.check(settled=True)
        self._same_orders_and_trades()
        try:  # the last balance updates may still be on the wire
            await until(lambda: not self._balance_diff(), timeout=5.0)
        except AssertionError:
            self.checker.fail(f"balances differ from Binance's: {self._balance_diff()}")
        self.outcome.settles += 1
        s.tick_interval_s = self.tick_s

    def _same_orders_and_trades(self) -> None:
        oms, fail = self.node.oms, self.checker.fail
        stuck = [o.client_order_id for o in oms.open_orders() if o.cancel_pending]
        if stuck:
            fail(f"cancels never carried out: {stuck[:3]}")
        for order in self.server.orders.values():
            ours = oms.orders.get(order.client_order_id)
            if ours is None or ours.filled_qty != order.executed_qty:
                fail(f"order {order.client_order_id}: filled {order.executed_qty} at Binance, "
                     f"{None if ours is None else ours.filled_qty} here")
        applied = {key: self.journal[seq - 1] for key, seq in self.checker.book.fills.items()}
        by_id = {o.order_id: o.client_order_id for o in self.server.orders.values()}
        theirs = set()
        for t in self.server.trades:
            key = (VENUE, t["symbol"], str(t["id"]))
            theirs.add(key)
            f: Any = applied.get(key)
            want = (by_id[t["orderId"]], BUY if t["isBuyer"] else SELL, Decimal(t["qty"]),
                    Decimal(t["price"]), Decimal(t["commission"]), t["commissionAsset"])
            got = None if f is None else (f.client_order_id, f.side, f.qty, f.price, f.fee,
                                          f.fee_currency)
            if got != want:
                fail(f"Binance's trade {t['id']} is {want}, applied here as {got}")
        extra = sorted(set(applied) - theirs)
        if extra:
            fail(f"fills applied that Binance never made: {extra[:3]}")

    def _balance_diff(self) -> dict[str, tuple[Any, Any]]:
        """asset -> (ours, Binance's) as (total, free, locked), where they differ."""
        ours = self.node.portfolio._balances
        theirs = {a: (free + locked, free, locked)
                  for a, (free, locked) in self.server.balances.items()}
        return {a: (ours.get((VENUE, a)), t) for a, t in theirs.items()
                if ours.get((VENUE, a)) != t}

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> Outcome:
        t0 = time.monotonic()
        await self.server.start()
        try:
            await self.boot()
            for step in range(1, self.steps + 1):
                self.step_no = step
                await asyncio.sleep(self.sched.uniform(0.05, 0.25))  # the world moves on
                if self.sched.random() < self.fault_p:
                    self.inject(self.sched.choice(FAULTS))
                self.check()
                if step in self.restart_at:
                    await self.until_traded()
                    self.check()
                    await self.crash()
                    self.outcome.restarts += 1
                    # down for a moment: orders fill, placements land, while nobody listens
                    await asyncio.sleep(self.sched.uniform(0.0, 1.0))
                    if self.sched.random() < 0.3:  # killed again while it starts up
                        await self.boot(until_started=False)
                        await asyncio.sleep(self.sched.uniform(0.0, 0.3))
                        self.check()
                        await self.crash()
                        self.outcome.restarts += 1
                    await self.boot()
                    self.check()
                elif step in self.settle_at:
                    await self.settle()
            await self.until_traded()
            await self.settle()
            self.checker.final()
        finally:
            if self.alive:
                await self.crash()
            await self.server.close()
        journal = self.journal
        self.outcome.orders = sum(1 for e in journal if type(e) is OrderSubmitted)
        self.outcome.fills = len(self.checker.book.fills)
        self.outcome.wall_s = time.monotonic() - t0
        return self.outcome


async def run(seed: int) -> Outcome:
    """Play one seed; raises `InvariantBroken` (naming the seed, the step and the
    command that runs it again) at the first broken invariant or stuck world."""
    sim = BinanceSimulation(seed)
    try:
        return await sim.run()
    except InvariantBroken:
        raise
    except Exception as exc:
        raise InvariantBroken(f"seed {seed} step {sim.step_no} (binance world): {exc!r}\n"
                              f"replay it: {sim.reproducer}") from exc
