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
  whose book and account must survive restarts by being rebuilt from the journal.
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
    if world == "paper":
        venue |= {"balances": BALANCES, "taker_fee_bps": 10.0, "maker_fee_bps": 5.0,
                  "fill_model": rng.choice(["next", "aggressive", "conservative",
                                            "queue_aware"]),
                  "slippage_bps": rng.choice([0.0, 2.0]),
                  "latency_ms": rng.choice([0.0, 5.0, 500.0]),
                  "fee_asset": rng.choice(["quote", "received", "BNB"])}
    return {
        "venues": [venue],
        "instruments": [
            {"venue": "x", "symbol": "BTCUSDT", "base": "BTC", "quote": "USDT",
             "tick_size": 0.01, "step_size": 0.001, "min_notional": 0.05},
            {"venue": "x", "symbol": "BNBUSDT", "base": "BNB", "quote": "USDT",
             "tick_size": 0.1, "step_size": 0.01},
        ],
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


class Simulation:
    def __init__(self, seed: int, steps: int | None = None) -> None:
        self.seed = seed
        rng = self.rng = random.Random(seed)
        self.world: ChaosWorld | PaperWorld = (
            PaperWorld(random.Random(rng.random())) if seed % 3 == 2
            else ChaosWorld(random.Random(rng.random())))
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
