"""One seeded simulation run: the real node in an adversarial world, restarted from its
journal at random event boundaries, with invariants checked after every step.

`run(seed)` plays one seed and raises `InvariantBroken` (naming the seed, the step and
the one-line command that replays it) at the first broken invariant. Everything is
derived from the seed: the world, the strategies' choices, snapshots and restart points;
nothing reads the wall clock. Two worlds:

- "chaos": the adversarial exchange of `world.py` behind a live venue (reordered,
  duplicated, delayed reports, fills before acks and after cancel acks, partial fills,
  unknown outcomes, rejections, fees in the quote, the base or BNB); the exchange keeps
  its state across our restarts and the adapter reconciles after each;
- "paper": the simulated venue itself (random fill model, slippage, latency, fee asset),
  whose book and account must survive restarts by being rebuilt from the journal;
- "perp": the simulated venue trading BTCUSDT as a linear perpetual: a small wallet and
  high leverage (so some seeds are liquidated), marks (MarkPrice, or the trades), funding
  (recorded FundingRate events, or the venue's constant every 36 s), cross or isolated;
  its margin account must survive restarts as its book does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from daemon.config import Config
from daemon.node import TradingNode
from daemon.recovery import catch_up_positions, fold_journal, resume_policies
from events.base import Event
from events.bus import Bus
from events.market import Quote, Trade
from events.orders import Fill, OrderSubmitted
from events.perp import FundingRate, MarkPrice
from events.state import PositionChanged
from replay.clock import ReplayClock
from tests.dst.invariants import Checker, InvariantBroken
from tests.dst.world import ChaosAdapter, Exchange

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
ZERO = Decimal(0)
BALANCES = {"USDT": 5_000.0, "BTC": 0.05, "BNB": 1.0}

__all__ = ["InvariantBroken", "Outcome", "run"]


@dataclass
class Outcome:
    seed: int
    world: str
    steps: int
    restarts: int = 0
    orders: int = 0
    fills: int = 0
    incarnations: list[tuple[int, ...]] = field(default_factory=list)  # steps, subs, fills


def base_config(world: str, strategies: int, rng: random.Random) -> dict[str, Any]:
    venue: dict[str, Any] = {"name": "x", "kind": "binance" if world == "chaos" else "sim"}
    if world == "perp":
        # allow_short: the risk engine's spot balance check would refuse every sell of a
        # perpetual (a short is a position, not borrowed base)
        venue |= {"balances": {"USDT": rng.choice([1.0, 2.0, 50.0])}, "allow_short": True,
                  "taker_fee_bps": 4.0,
                  "maker_fee_bps": 2.0,
                  "fill_model": rng.choice(["next", "aggressive", "queue_aware"]),
                  "slippage_model": rng.choice(["none", "hybrid"]), "slippage_bps": 2.0,
                  "latency_ms": rng.choice([0.0, 500.0]),
                  "liquidation_fee_pct": rng.choice([0.0, 1.25]),
                  "funding_interval_h": 0.01}
        if rng.random() < 0.5:
            venue["funding_rate"] = rng.choice([-0.001, 0.0005])
    if world == "paper":
        venue |= {"balances": BALANCES, "taker_fee_bps": 10.0, "maker_fee_bps": 5.0,
                  "fill_model": rng.choice(["next", "aggressive", "conservative",
                                            "queue_aware"]),
                  "slippage_bps": rng.choice([0.0, 2.0]),
                  "latency_ms": rng.choice([0.0, 5.0, 500.0]),
                  "fee_asset": rng.choice(["quote", "received", "BNB"])}
    instruments: list[dict[str, Any]] = [
            {"venue": "x", "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT",
             "tick_size": 0.01, "step_size": 0.001, "min_notional": 0.05},
            {"venue": "x", "symbol": "BNBUSDT", "base": "BNB", "quote": "USDT",
             "tick_size": 0.1, "step_size": 0.01}]
    if world == "perp":
        instruments[0] |= {"kind": "perpetual", "max_leverage": 50,
                           "maintenance_margin_rate": 0.01,
                           "leverage": rng.choice([5, 20, 50]),
                           "margin_mode": rng.choice(["cross", "isolated"])}
    return {
        "venues": [venue],
        "instruments": instruments,
        "risk": {"max_order_qty": 1.0, "max_order_notional": 1_000_000.0,
                 "max_position_qty": 0.02, "daily_loss_limit": 1e9,
                 "max_orders_per_s": 1000, "price_band_pct": 10.0,
                 "self_trade_prevention": False},
        "strategies": [
            {"id": f"s{i}", "class": "tests.dst.trader:ChaosTrader", "venue": "x",
             "symbols": ["BTCUSDT"], "params": {"seed": 0}}
            for i in range(strategies)],
    }


class ChaosWorld:
    name = "chaos"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.exchange = Exchange(random.Random(rng.random()), "x",
                                 rng.choice(["quote", "base", "bnb", "mixed"]),
                                 {c: Decimal(str(v)) for c, v in BALANCES.items()})
        self.knobs = dict(dup=rng.choice([0.0, 0.1, 0.3]),
                          unknown=rng.choice([0.0, 0.05, 0.15]),
                          max_delay=rng.choice([0, 2, 5]), raw=rng.random() < 0.5)
        self.adapter: ChaosAdapter | None = None

    def attach(self, sim: Simulation) -> None:
        """A new process: a new connection to the exchange (nothing in it survives)."""
        self.adapter = ChaosAdapter(random.Random(self.rng.random()), self.exchange,
                                    sim.bus.publish, **self.knobs)  # type: ignore[arg-type]
        self.adapter.subscribe(sim.bus)
        self.adapter.oms = sim.node.oms
        self.adapter.step = sim.step_no

    def connect(self, sim: Simulation, first: bool) -> None:
        assert self.adapter is not None
        if first:
            for ccy in sorted(self.exchange.total):
                sim.bus.publish(self.exchange._balance(ccy, sim.ts))
        else:
            self.adapter.reconcile(sim.ts)

    def market(self, sim: Simulation, step: int) -> None:
        x = self.exchange
        price = x.move()
        x.match(sim.ts)
        assert self.adapter is not None
        self.adapter.tick(step, sim.ts)
        sim.trade("BTCUSDT", price, step)
        if step % 5 == 0:
            sim.trade("BNBUSDT", x.bnb, step)

    def settle(self, sim: Simulation) -> bool:
        assert self.adapter is not None
        self.adapter.settle(sim.ts)
        return True

    def open_at_venue(self, sim: Simulation) -> set[str]:
        return self.exchange.open_cids()


class PaperWorld:
    name = "paper"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.price = Decimal(100)
        self.bnb = Decimal(300)

    def attach(self, sim: Simulation) -> None:
        pass

    def connect(self, sim: Simulation, first: bool) -> None:
        pass  # the simulated venue is rebuilt by the fold and started by node.start()

    def market(self, sim: Simulation, step: int) -> None:
        rng = self.rng
        self.price = max(Decimal(50), self.price + Decimal(rng.randint(-30, 30)) / 100)
        self.bnb = max(Decimal(100), self.bnb + Decimal(rng.randint(-10, 10)) / 10)
        if rng.random() < 0.4:
            half = Decimal(rng.randint(1, 5)) / 100
            sim.publish(Quote(ts_event=sim.ts, ts_recv=sim.ts, venue="x", symbol="BTCUSDT",
                              bid=float(self.price - half), ask=float(self.price + half),
                              bid_size=rng.choice([0.005, 0.05, 1.0]),
                              ask_size=rng.choice([0.005, 0.05, 1.0])))
        sim.trade("BTCUSDT", self.price, step)
        if step % 5 == 0:
            sim.trade("BNBUSDT", self.bnb, step)

    def settle(self, sim: Simulation) -> bool:
        return False  # a simulated venue answers on market events: nothing to wait for

    def open_at_venue(self, sim: Simulation) -> set[str]:
        """Resting at the simulated venue, or on their way to it (latency)."""
        venue = sim.node.venues[0]
        arriving = {cid for kind, cid in venue.state()["pending"] if kind == "OrderSubmitted"}
        return set(venue.open_orders()) | arriving


class PerpWorld(PaperWorld):
    name = "perp"

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.marks = rng.random() < 0.5  # MarkPrice events, else the trades are the marks
        self.rates = rng.random() < 0.5  # recorded FundingRate events
        self.paid = 0

    def market(self, sim: Simulation, step: int) -> None:
        rng = self.rng
        # a wilder market than the paper world's: positions at high leverage get liquidated
        self.price = max(Decimal(50), self.price + Decimal(rng.randint(-250, 250)) / 100)
        super().market(sim, step)
        if self.marks:
            mark = self.price + Decimal(rng.randint(-5, 5)) / 100
            sim.publish(MarkPrice(ts_event=sim.ts, ts_recv=sim.ts, venue="x",
                                  symbol="BTCUSDT", mark=float(mark)))
        every = 36 * 1_000_000_000
        due = sim.ts - sim.ts % every
        if self.rates and due > self.paid:
            self.paid = due
            sim.publish(FundingRate(ts_event=sim.ts, ts_recv=sim.ts, venue="x",
                                    symbol="BTCUSDT", rate=rng.choice([-0.002, 0.001, 0.003]),
                                    funding_ts=due,
                                    mark=rng.choice([0.0, float(self.price)])))


class Simulation:
    def __init__(self, seed: int, steps: int | None = None) -> None:
        self.seed = seed
        rng = self.rng = random.Random(seed)
        world_rng = random.Random(rng.random())
        self.world: ChaosWorld | PaperWorld = (
            PerpWorld(world_rng) if seed % 6 == 5 else PaperWorld(world_rng) if seed % 3 == 2
            else ChaosWorld(world_rng))
        self.steps = steps if steps is not None else rng.randint(60, 160)
        self.restart_p = rng.choice([0.0, 0.02, 0.05, 0.1])
        self.settle_p = rng.choice([0.0, 0.05, 0.15])
        self.snapshot_p = rng.choice([0.0, 0.1])
        self.raw = base_config(self.world.name, rng.randint(1, 2), rng)
        self.journal: list[Event] = []
        self.ts = T0
        self.step_no = 0
        self.incarnation = 0
        self.errors: list[str] = []
        self.checker = Checker(self)
        self.outcome = Outcome(seed, self.world.name, self.steps)
        self._boot(first=True)

    # -- the node's lives -----------------------------------------------------------------

    def _boot(self, first: bool) -> None:
        """Start a node on the journal: the first start, or a restart after a crash,
        in the daemon's order: fold, restate, reconcile, policies, strategies."""
        raw = self.raw
        for strat in raw["strategies"]:
            strat["params"] = {"seed": self.seed, "incarnation": self.incarnation}
        config = msgspec.convert(raw, Config)
        self.bus = Bus(next_seq=len(self.journal) + 1, journal=self._journal,
                       on_error=self._on_error)
        self.clock = ReplayClock(self.ts)
        self.node = TradingNode(config, self.bus, self.clock, replay=False)
        self.world.attach(self)
        self.checker.watch(self.node)
        recovered = fold_journal(self.node, self.journal)
        if not first:
            self.checker.after_fold(self.node)
            self.checker.venues_restored(self.node, self._venues_before)
        catch_up_positions(self.node.portfolio, self.bus,
                           [e for e in self.journal if type(e) is PositionChanged])
        self.world.connect(self, first)
        resume_policies(self.node, recovered)
        self.node.start()

    def _journal(self, event: Event) -> None:
        assert event.seq == len(self.journal) + 1, "the journal's seq has a gap"
        self.journal.append(event)
        self.checker.journaled(event)

    def _on_error(self, event: Event, handler: Any, exc: BaseException) -> None:
        self.errors.append(f"{getattr(handler, '__qualname__', handler)} on "
                           f"{type(event).__name__}: {exc!r}")

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    def trade(self, symbol: str, price: Decimal, step: int) -> None:
        self.bus.publish(Trade(ts_event=self.ts, ts_recv=self.ts, venue="x", symbol=symbol,
                               price=float(price), size=self.rng.choice([0.002, 0.01, 1.0]),
                               trade_id=f"{symbol}-{step}"))

    def crash(self) -> None:
        """kill -9: everything in memory is gone; the journal and the exchange remain."""
        self.incarnation += 1
        self.outcome.restarts += 1
        self._venues_before = [v.state() for v in self.node.venues]
        self._boot(first=False)

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> Outcome:
        rng = self.rng
        for step in range(1, self.steps + 1):
            self.step_no = step
            self.ts += rng.randint(200, 2000) * 1_000_000
            self.clock.advance_to(self.ts)
            self.world.market(self, step)
            self.checker.step(step, settled=False)
            if rng.random() < self.snapshot_p:  # as the daemon does on its timer
                self.bus.publish(self.node.portfolio.snapshot())
            if rng.random() < self.settle_p and self.world.settle(self):
                self.checker.step(step, settled=True)
            if rng.random() < self.restart_p:
                self.crash()
                self.checker.step(step, settled=False)
        self.checker.step(self.steps, settled=self.world.settle(self))
        self.checker.final()
        self.outcome.orders = sum(1 for e in self.journal if type(e) is OrderSubmitted)
        self.outcome.fills = sum(1 for e in self.journal if type(e) is Fill)
        self.outcome.incarnations = [tuple(s) for s in self.checker.incarnation_stats]
        return self.outcome


def run(seed: int, steps: int | None = None) -> Outcome:
    return Simulation(seed, steps).run()
