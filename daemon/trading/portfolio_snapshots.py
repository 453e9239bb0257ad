"""The portfolio's seeding, snapshots and recovery (a base of `Portfolio`):
`seed` (positions from a file at a strategy's start, published and journaled),
`snapshot` (the folded state as a `Snapshot` event, encoded by
`daemon.trading.portfolio_state`), `restore` and `recover` (the snapshot, then the
journaled events after it, folded by `Portfolio.apply`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal, localcontext
from typing import Any

import msgspec
import structlog

from daemon.trading.api import Position
from daemon.trading.average_cost import CTX, ZERO, Lot
from daemon.trading.portfolio_state import (
    STATE_VERSION,
    BalState,
    BaseState,
    FeeBaseState,
    MarkState,
    PerpState,
    PosState,
    State,
    decode_state,
    encode_state,
)
from events.base import Event
from events.state import PositionChanged, Snapshot

log = structlog.get_logger("tapeloop.portfolio")

COMPONENT = "portfolio"
DAY_NS = 86_400 * 1_000_000_000

Key = tuple[str, str]  # (venue, symbol)


def _net_state(net: Lot | None) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    if net is None:
        return ZERO, ZERO, ZERO, ZERO, ZERO
    return net.qty, net.cost, net.avg, net.funding, net.open_funding


class Snapshots:
    """What `Portfolio` does to start from positions, capture its state and
    come back to it (see the module doc)."""

    # kept by the portfolio's fold (see `daemon.trading.portfolio`)
    state_version: int
    upto_seq: int
    _publish: Callable[[Event], object]
    _now_ns: Callable[[], int]
    _positions: dict[Key, dict[str, Lot]]
    _balances: dict[Key, tuple[Decimal, Decimal, Decimal]]
    _marks: dict[Key, Any]
    _mark_cache: dict[Key, tuple[object, Decimal]]
    _mark_priced: set[Key]
    _nets: dict[Key, Lot]
    _perp_defaults: Any
    _leverage: dict[Key, int]
    _margin_mode: dict[Key, str]
    _baselines: dict[tuple[str, str, str], Decimal]
    _fee_baselines: dict[tuple[str, str, str, str], Decimal]
    _day: int | None
    _day_end: int
    last_price: Callable[[str, str], Decimal | None]
    apply: Callable[[Event], Position | None]

    def seed(self, strategy_id: str | None, positions: Iterable[Position]) -> Snapshot:
        """Start from known positions (e.g. `load_positions`), attributed to
        `strategy_id` (None: each position's own `strategy_id`), replacing any held
        for the same keys. Publishes `PositionChanged` for each and then a snapshot
        (returned), so the seed is journaled and recovery includes it."""
        now = self._now_ns()
        self.state_version += 1
        for p in positions:
            sid = p.strategy_id if strategy_id is None else strategy_id
            with localcontext(CTX):
                pos = Lot(p.qty, p.qty * p.avg_price, p.avg_price if p.qty else ZERO,
                          p.realized_pnl, p.fees)
                if self._day is not None:  # a seed is not today's PnL
                    self._baselines[(p.venue, p.symbol, sid)] = pos.total(
                        self.last_price(p.venue, p.symbol))
            self._positions.setdefault((p.venue, p.symbol), {})[sid] = pos
            self.state_version += 1  # (each: what the PositionChanged's readers see)
            self._publish(PositionChanged(
                ts_event=now, ts_recv=now, venue=p.venue, symbol=p.symbol, strategy_id=sid,
                qty=pos.qty, avg_price=pos.avg, realized_pnl=pos.realized, fees=pos.fees))
        snapshot = self.snapshot()
        self._publish(snapshot)
        return snapshot

    def snapshot(self) -> Snapshot:
        """The folded state as a `Snapshot` event (not published; the caller
        publishes it, e.g. on a timer)."""
        state = State(
            version=STATE_VERSION, upto_seq=self.upto_seq, day=self._day,
            positions=[PosState(v, s, sid, p.qty, p.cost, p.avg, p.realized, p.fees,
                                dict(p.other_fees or {}), p.funding, p.open_funding)
                       for (v, s), by_sid in self._positions.items()
                       for sid, p in by_sid.items()],
            balances=[BalState(v, c, *bal) for (v, c), bal in self._balances.items()],
            marks=[MarkState(v, s, price) for (v, s) in self._marks
                   if (price := self.last_price(v, s)) is not None],
            baselines=[BaseState(v, s, sid, value)
                       for (v, s, sid), value in self._baselines.items()],
            fee_baselines=[FeeBaseState(v, s, sid, c, value)
                           for (v, s, sid, c), value in self._fee_baselines.items()],
            perp=[PerpState(v, s, self._leverage.get((v, s), 0),
                            self._margin_mode.get((v, s), ""), (v, s) in self._mark_priced,
                            *_net_state(self._nets.get((v, s))))
                  for (v, s) in sorted(set(self._leverage) | set(self._margin_mode)
                                       | self._mark_priced | set(self._nets))],
        )
        now = self._now_ns()
        return Snapshot(ts_event=now, ts_recv=now, component=COMPONENT,
                        upto_seq=self.upto_seq, state=encode_state(state))

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole state with the one `snapshot` holds. Raises
        ValueError for a snapshot this build cannot read."""
        if snapshot.component != COMPONENT:
            raise ValueError(f"not a portfolio snapshot: component {snapshot.component!r}")
        try:
            state = decode_state(snapshot.state)
        except msgspec.DecodeError as exc:
            raise ValueError(f"portfolio snapshot at seq {snapshot.seq} does not decode "
                             f"(this build reads version {STATE_VERSION}): {exc}") from None
        if state.version != STATE_VERSION:
            raise ValueError(f"portfolio snapshot version {state.version} "
                             f"(this build reads {STATE_VERSION})")
        self.state_version += 1
        self._positions = {}
        for p in state.positions:
            self._positions.setdefault((p.venue, p.symbol), {})[p.strategy_id] = Lot(
                p.qty, p.cost, p.avg, p.realized, p.fees, dict(p.other_fees) or None,
                p.funding, p.open_funding)
        self._balances = {(b.venue, b.currency): (b.total, b.free, b.locked)
                          for b in state.balances}
        self._marks = {(m.venue, m.symbol): m.price for m in state.marks}
        self._mark_cache = {}
        self._baselines = {(b.venue, b.symbol, b.strategy_id): b.value for b in state.baselines}
        self._fee_baselines = {(b.venue, b.symbol, b.strategy_id, b.currency): b.value
                               for b in state.fee_baselines}
        self._leverage, self._margin_mode = (dict(d) for d in self._perp_defaults)
        self._leverage.update({(p.venue, p.symbol): p.leverage for p in state.perp
                               if p.leverage})
        self._margin_mode.update({(p.venue, p.symbol): p.mode for p in state.perp if p.mode})
        self._mark_priced = {(p.venue, p.symbol) for p in state.perp if p.mark_priced}
        self._nets = {(p.venue, p.symbol): Lot(p.qty, p.cost, p.avg, ZERO, ZERO, None,
                                               p.funding, p.open_funding)
                      for p in state.perp if p.qty or p.cost or p.funding}
        self._day = state.day
        self._day_end = 0 if state.day is None else (state.day + 1) * DAY_NS
        self.upto_seq = state.upto_seq

    def recover(self, events: Iterable[Event], snapshot: Snapshot | None = None) -> None:
        """Recovery: `events` are every journaled `Fill` and `BalanceChanged`, in
        seq order, and `snapshot` the last portfolio snapshot (or None). Restores
        the snapshot and folds the events after its `upto_seq`; a snapshot that
        cannot be read (another STATE_VERSION, undecodable) is logged once and
        every event is folded from scratch. The live fold, replayed."""
        after = 0
        if snapshot is not None:
            try:
                self.restore(snapshot)
                after = snapshot.upto_seq
            except ValueError as exc:
                log.warning("portfolio.snapshot_unreadable", seq=snapshot.seq,
                            upto_seq=snapshot.upto_seq, error=str(exc),
                            action="folding every journaled fill and balance from scratch")
        for event in events:
            if event.seq > after:
                self.apply(event)
