"""The invariants the simulation checks, stated as code next to the state they guard.

After every step:
- the state folded from the journal FROM SCRATCH (a shadow OMS and portfolio fed each
  journaled event as it is written, never restored from a snapshot) equals the live
  node's: every order (state, quantities, prices, fills, contingent links), every
  position, every balance;
- the fold publishes and sends nothing (a restart's fold runs on a bus that refuses);
- each position is the sum of its applied fills (a fee the venue took in the base
  asset included) and its liquidations, each order's filled quantity is the sum of
  its applied fills, no venue trade is applied twice, no client order id is submitted
  twice;
- no handler failed and nothing was quarantined (the world is legal);
- every order risk let through was judged with every order in flight counted and was
  within the position limit (or reduced the position);
- a perpetual's account-level position, entry cost, funding since it opened, leverage
  and margin mode in the portfolio equal the simulated venue's margin account (entry
  cost to 1e-10: the venue rounds a partial close's released cost to 1e-12, the
  portfolio to 1e-20), and the portfolio's wallet is the venue's;
and once the world has settled (always, for a simulated venue, which answers on each
market event): every order is finished or open at the venue, and every order open at
the venue is open in the OMS; a simulated venue's books are sound (no balance locked by
an order it does not hold) and a restart rebuilds them exactly as the crash left them.
At the end: after every restart the strategies kept trading (orders submitted, filled).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from daemon.trading.order_book import OrderBook
from daemon.trading.portfolio import Portfolio
from events.base import Event
from events.orders import BUY, Fill, OrderSubmitted
from events.perp import Liquidation

ZERO = Decimal(0)


class InvariantBroken(AssertionError):
    pass


class _Refuse:
    """A publish that must never be called (the fold's)."""

    def __call__(self, event: Event) -> None:
        raise InvariantBroken(f"the fold published {type(event).__name__}")


class RiskProbe:
    """Stands in front of the risk engine: every decision is checked."""

    def __init__(self, real: Any, checker: Checker) -> None:
        self.real = real
        self.checker = checker

    def check(self, strategy_id: str, order: Any, open_orders: Any) -> Any:
        refusal = self.real.check(strategy_id, order, open_orders)
        try:
            self.checker.judged(strategy_id, order, open_orders, refusal)
        except InvariantBroken as exc:  # raised inside a strategy's hook: keep it for `step`
            self.checker.broken.append(str(exc))
        return refusal

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class Checker:
    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.book = OrderBook()
        self.portfolio: Portfolio | None = None
        self.node: Any = None
        self.submitted: Counter[str] = Counter()
        self._pending: list[Event] = []  # journaled, not yet looked at by `step`
        # the applied fills, summed: per (venue, symbol, strategy), per order; trade keys
        self.positions: dict[tuple[str, str, str], Decimal] = {}
        self.filled: dict[str, Decimal] = {}
        self.trades: set[tuple[str, str, str]] = set()
        self.incarnation_stats: list[list[int]] = []
        self.broken: list[str] = []  # found where raising would be caught (risk's probe)

    # -- wiring -------------------------------------------------------------------------

    def watch(self, node: Any) -> None:
        self.node = node
        node.oms.risk = RiskProbe(node.oms.risk, self)
        if self.portfolio is None:
            self.portfolio = _portfolio(node, self.book)
        self.incarnation_stats.append([0, 0, 0])  # steps, submitted, applied fills

    def journaled(self, event: Event) -> None:
        """The shadow fold: from scratch, one event at a time, in seq order."""
        self.book.apply(event)
        assert self.portfolio is not None
        self.portfolio.apply(event)
        self._pending.append(event)
        if type(event) is OrderSubmitted:
            self.submitted[event.client_order_id] += 1  # type: ignore[attr-defined]

    def fail(self, message: str) -> None:
        sim = self.sim
        replay = getattr(sim, "reproducer", None) or \
            f".venv/bin/python -m tests.dst --seed {sim.seed}"
        raise InvariantBroken(
            f"seed {sim.seed} step {sim.step_no} ({sim.world.name} world): {message}\n"
            f"replay it: {replay}")

    # -- checks -------------------------------------------------------------------------

    def after_fold(self, node: Any) -> None:
        """A restart's fold equals the state the shadow fold holds."""
        self._compare(node, "after the restart's fold")

    def step(self, step: int, settled: bool) -> None:
        node, sim = self.node, self.sim
        if self.broken:
            raise InvariantBroken(self.broken[0])
        if sim.errors:
            self.fail(f"a handler failed: {sim.errors[0]}")
        quarantine = node.oms.book.quarantine or self.book.quarantine
        if quarantine:
            self.fail(f"quarantined in a legal world: {quarantine[0]}")
        stats = self.incarnation_stats[-1]
        stats[0] += 1
        for event in self._pending:
            if type(event) is OrderSubmitted:
                stats[1] += 1
            elif type(event) is Fill and self.book.fill_applied(event):  # type: ignore[arg-type]
                stats[2] += 1
                self._applied(event)
            elif type(event) is Liquidation:
                self._liquidated(event)
        self._pending.clear()
        dupes = [cid for cid, n in self.submitted.items() if n > 1]
        if dupes:
            self.fail(f"client order id submitted twice: {dupes[0]}")
        self._compare(node, "live vs folded from scratch")
        self._sums(node)
        if settled or self.sim.world.name == "paper":
            self._agree_with_venue(node)
        for venue in node.venues:  # simulated venues: their books are sound
            broken = venue.invariant_violations()
            if broken:
                self.fail(f"venue {venue.name}: {broken[0]}")
            self._margin_agrees(node, venue)

    def _compare(self, node: Any, where: str) -> None:
        live, folded = node.oms.book.state(), self.book.state()
        if live != folded:
            diff = sorted(k for k in set(live) | set(folded) if live.get(k) != folded.get(k))
            k = diff[0]
            self.fail(f"{where}: order {k}: live {live.get(k)} != folded {folded.get(k)}")
        assert self.portfolio is not None
        a, b = _positions(node.portfolio), _positions(self.portfolio)
        if a != b:
            self.fail(f"{where}: positions live {a} != folded {b}")
        if node.portfolio._balances != self.portfolio._balances:
            self.fail(f"{where}: balances live {node.portfolio._balances} != folded "
                      f"{self.portfolio._balances}")

    def _applied(self, f: Any) -> None:
        key = (f.venue, f.symbol, f.trade_id)
        if key in self.trades:
            self.fail(f"trade {key} applied twice")
        self.trades.add(key)
        delta = f.qty if f.side == BUY else -f.qty
        if f.fee_currency == self.node.instruments[(f.venue, f.symbol)].base:
            delta -= f.fee  # the venue kept part of what it delivered
        pk = (f.venue, f.symbol, f.strategy_id)
        self.positions[pk] = self.positions.get(pk, ZERO) + delta
        self.filled[f.client_order_id] = self.filled.get(f.client_order_id, ZERO) + f.qty

    def _liquidated(self, e: Any) -> None:
        pk = (e.venue, e.symbol, e.strategy_id)
        delta = e.qty if e.side == BUY else -e.qty
        self.positions[pk] = self.positions.get(pk, ZERO) + delta

    def _margin_agrees(self, node: Any, venue: Any) -> None:
        pf = node.portfolio
        for (v, symbol), inst in node.instruments.items():
            if v != venue.name or not inst.perpetual:
                continue
            m = venue.margin_state(symbol)
            net = pf._net((v, symbol))
            ours = (net.qty, pf.leverage(v, symbol), pf.margin_mode(v, symbol))
            theirs = (m["qty"], m["leverage"], m["mode"])
            if ours != theirs:
                self.fail(f"{symbol}: portfolio (qty, leverage, mode) {ours} != venue's "
                          f"{theirs}")
            if abs(net.cost - m["entry_cost"]) > Decimal("1e-10"):
                self.fail(f"{symbol}: portfolio entry cost {net.cost} != venue's "
                          f"{m['entry_cost']}")
            if net.qty and net.open_funding != m["funding"]:
                self.fail(f"{symbol}: funding since the position opened: portfolio "
                          f"{net.open_funding} != venue's {m['funding']}")
            if pf.balance(v, inst.settle) != m["wallet"]:
                self.fail(f"{symbol}: wallet: portfolio {pf.balance(v, inst.settle)} != "
                          f"venue's {m['wallet']}")

    def _sums(self, node: Any) -> None:
        for p in node.portfolio.positions(include_flat=True):
            want = self.positions.get((p.venue, p.symbol, p.strategy_id), ZERO)
            if p.qty != want:
                self.fail(f"position {p.strategy_id} {p.symbol} {p.qty} != sum of its "
                          f"applied fills {want}")
        for cid, order in node.oms.orders.items():
            if order.filled_qty != self.filled.get(cid, ZERO):
                self.fail(f"order {cid} filled {order.filled_qty} != sum of its applied "
                          f"fills {self.filled.get(cid, ZERO)}")

    def venues_restored(self, node: Any, before: list[dict[str, Any]]) -> None:
        """A restart rebuilt each simulated venue's book exactly as the crash left it."""
        for venue, was in zip(node.venues, before, strict=True):
            now = venue.state()
            if now != was:
                keys = [k for k in was if was[k] != now.get(k)]
                self.fail(f"venue {venue.name} restored with a different {keys[0]}: "
                          f"{now.get(keys[0])} != {was[keys[0]]}")

    def _agree_with_venue(self, node: Any) -> None:
        at_venue = self.sim.world.open_at_venue(self.sim)
        venue = getattr(self.sim.world, "venue", "x")
        ours = {o.client_order_id for o in node.oms.open_orders() if o.venue == venue}
        if at_venue != ours:
            self.fail(f"after settling: open at the venue {sorted(at_venue - ours)} not open "
                      f"in the OMS; open in the OMS {sorted(ours - at_venue)} not at the venue")

    def judged(self, strategy_id: str, order: Any, open_orders: Any, refusal: Any) -> None:
        """Risk saw every order in flight, and what it passed is within the limit."""
        seen = {o.client_order_id for o in open_orders}
        # every order journaled and not finished: a submission still queued in the bus
        # counts (the journal may also hold an answer not dispatched yet: then risk
        # still counts the order, which errs on the safe side)
        missed = set(self.book.open) - seen
        if missed:
            self.fail(f"risk judged {strategy_id}'s order without counting {sorted(missed)}, "
                      "in flight")
        if refusal is not None:
            return
        node = self.node
        limit = node.risk.account_limits.max_position_qty
        current = node.portfolio.position(order.venue, order.symbol).qty
        sign = 1 if order.side == BUY else -1
        pending = sum((o.qty - o.filled_qty for o in open_orders
                       if o.symbol == order.symbol and o.side == order.side), ZERO)
        projected = current + sign * (pending + order.qty)
        if abs(projected) > limit and abs(projected) > abs(current):
            self.fail(f"risk passed {order.side} {order.qty} of {strategy_id}: position "
                      f"{current} + {pending} in flight -> {projected} > limit {limit}")

    def final(self) -> None:
        for n, (steps, subs, fills) in enumerate(self.incarnation_stats):
            # the trader takes liquidity after 15 quiet trades: in 20 steps it has sent
            # orders or been filled; in 80 some filled, whatever the world lost on the way
            if n and ((steps >= 20 and subs + fills == 0) or (steps >= 80 and fills == 0)):
                self.fail(f"after restart {n} the strategies stopped trading: {steps} steps, "
                          f"{subs} orders submitted, {fills} fills")
        for sid in self.node.runtime.strategy_ids:
            if self.node.runtime.status(sid) != "running":
                self.fail(f"strategy {sid} is {self.node.runtime.status(sid)}")


def _portfolio(node: Any, book: OrderBook) -> Portfolio:
    from daemon.node import perp_settings

    account = node.config.account
    return Portfolio(_Refuse(), lambda: 0, node.instruments, fill_gate=book.fill_applied,
                     account_currency=account.currency, rates=account.decimal_rates,
                     perp_settings=perp_settings(node.config))


def _positions(portfolio: Any) -> list[tuple]:
    return sorted((p.venue, p.symbol, p.strategy_id, p.qty, p.avg_price, p.realized_pnl, p.fees)
                  for p in portfolio.positions(include_flat=True))
