"""The synthetic market of one symbol: an authoritative order book that random-walks.

Pure Python, no I/O, no clock of its own (`clock()` gives ms), randomness only
from the `random.Random` it is given, so a seed replays the same market.

The book holds `levels` contiguous price levels per side, one tick apart, around
a best bid that random-walks; the spread is `spread_ticks`. Every change to a
level goes through `_set`, which records it for the next depth update, so the
emitted diffs always describe the whole book exactly (the REST snapshot never
truncates it: `levels` stays below the snapshot limit).

Every public trade is also kept in `history` (the last 10,000 by default), which
the REST trade, kline and ticker endpoints and streams read.

Messages go to `outbox` as `(kind, payload)`, kind one of `trade`, `aggTrade`,
`depth` (spot diff depth: `e E s U u b a`, no `pu`) and `bookTicker` (`u s b B a A`).
`commit()` closes one update: it emits one depthUpdate covering every level
changed since the last commit, with `U` = previous `u` + 1 (unless a gap was
requested), and a bookTicker. The account's resting orders are not part of this
book (they are matched against its public trades by the engine).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.fake_binance.common import d8
from tests.fake_binance.filters import SymbolRules
from tests.fake_binance.history import HistTrade, TradeHistory

BID, ASK = "bid", "ask"


@dataclass(frozen=True)
class PublicTrade:
    """A trade printed by the simulated crowd: `taker` is the aggressor's side."""

    price: Decimal
    qty: Decimal
    taker: str  # "BUY" | "SELL"
    trade_id: int


class SymbolMarket:
    """One symbol's book, trade ids and update ids; see the module docstring."""

    def __init__(self, rules: SymbolRules, rng: random.Random, clock: Callable[[], int],
                 start_price: Decimal, *, levels: int = 20, spread_ticks: int = 1,
                 trade_probability: float = 0.6, move_probability: float = 0.5,
                 move_ticks: int = 1,
                 first_update_id: int = 1_000_000, first_trade_id: int = 5_301_122_334,
                 history: int = 10_000) -> None:
        self.rules = rules
        self.symbol = rules.symbol
        self._rng = rng
        self._clock = clock
        self._tick = rules.tick
        self._levels = levels
        self._spread = max(1, spread_ticks)
        self.trade_probability = trade_probability
        self.move_ticks = move_ticks  # scale of a price move (volatility), in ticks
        self.move_probability = move_probability
        self._bid_ticks = int(start_price // self._tick)
        # A typical level holds 10..2000 "units" of about 50 quote each.
        unit = rules.floor_qty(Decimal(50) / start_price) if start_price > 0 else rules.step
        self._unit = max(unit, rules.step)
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.update_id = first_update_id
        self.next_trade_id = first_trade_id
        self.next_agg_id = 1
        self.history = TradeHistory(history)  # the last `history` public trades
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self._pending: dict[tuple[str, Decimal], Decimal] = {}
        self._gap = 0
        self._recenter()
        self._pending.clear()  # the initial book is the state, not an update

    # --- reading -------------------------------------------------------------

    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        return max(self.bids.items()) if self.bids else None

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        return min(self.asks.items()) if self.asks else None

    def mid(self) -> Decimal:
        bb, ba = self.best_bid(), self.best_ask()
        if bb and ba:
            return (bb[0] + ba[0]) / 2
        return (bb or ba or (self._bid_ticks * self._tick, 0))[0]

    def book(self, depth: int | None = None) -> tuple[list[tuple[Decimal, Decimal]],
                                                      list[tuple[Decimal, Decimal]]]:
        """(bids, asks) as (price, qty), best first, at most `depth` levels each."""
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        return (bids, asks) if depth is None else (bids[:depth], asks[:depth])

    def plan_take(self, side: str, *, qty: Decimal | None = None, quote: Decimal | None = None,
                  limit: Decimal | None = None) -> list[tuple[Decimal, Decimal]]:
        """The (price, qty) fills a taker order on `side` would get, best first, without
        changing the book. Bounded by base `qty` or quote `quote`, and by `limit`."""
        levels = self.book()[1 if side == "BUY" else 0]
        out: list[tuple[Decimal, Decimal]] = []
        left_qty, left_quote = qty, quote
        for price, avail in levels:
            if limit is not None and (price > limit if side == "BUY" else price < limit):
                break
            take = avail
            if left_qty is not None:
                take = min(take, left_qty)
            if left_quote is not None:
                take = min(take, self.rules.floor_qty(left_quote / price))
            if take <= 0:
                break
            out.append((price, take))
            if left_qty is not None:
                left_qty -= take
            if left_quote is not None:
                left_quote -= take * price
        return out

    # --- changing --------------------------------------------------------------

    def consume(self, side: str, price: Decimal, qty: Decimal) -> None:
        """A taker on `side` took `qty` at `price` from the opposite side."""
        book_side, levels = (ASK, self.asks) if side == "BUY" else (BID, self.bids)
        self._set(book_side, price, levels.get(price, Decimal(0)) - qty)

    def record_trade(self, price: Decimal, qty: Decimal, buyer_maker: bool) -> int:
        """Print a public trade (`@trade` and `@aggTrade`); returns its trade id."""
        trade_id = self.next_trade_id
        self.next_trade_id += 1
        last = self.history.last()
        now = max(self._clock(), last.time if last else 0)  # history stays in time order
        self.history.add(HistTrade(trade_id, self.next_agg_id, price, qty, now, buyer_maker))
        p, q = d8(price), d8(qty)
        self.outbox.append(("trade", {"e": "trade", "E": now, "s": self.symbol, "t": trade_id,
                                      "p": p, "q": q, "T": now, "m": buyer_maker, "M": True}))
        self.outbox.append(("aggTrade", {"e": "aggTrade", "E": now, "s": self.symbol,
                                         "a": self.next_agg_id, "p": p, "q": q, "f": trade_id,
                                         "l": trade_id, "T": now, "m": buyer_maker, "M": True}))
        self.next_agg_id += 1
        return trade_id

    def step(self) -> PublicTrade | None:
        """One market step: maybe move the price, reshuffle a few levels, maybe print a
        crowd trade. Call `commit()` afterwards to emit the update."""
        rng = self._rng
        if rng.random() < self.move_probability:
            self._bid_ticks = max(self._levels + 1,
                                  self._bid_ticks + self.move_ticks
                                  * rng.choice((-2, -1, -1, 1, 1, 2)))
        self._recenter()
        for side, levels in ((BID, self.bids), (ASK, self.asks)):
            for price in rng.sample(sorted(levels), k=min(len(levels), rng.randint(1, 3))):
                self._set(side, price, self._random_qty())
        if rng.random() >= self.trade_probability:
            return None
        taker = rng.choice(("BUY", "SELL"))
        best = self.best_ask() if taker == "BUY" else self.best_bid()
        if best is None:
            return None
        price, avail = best
        units = max(1, int(avail / self._unit / 2))
        qty = min(avail, self._unit * rng.randint(1, units))
        self.consume(taker, price, qty)
        trade_id = self.record_trade(price, qty, buyer_maker=taker == "SELL")
        return PublicTrade(price, qty, taker, trade_id)

    def set_price(self, best_bid: Decimal) -> None:
        """Move the book so that its best bid is `best_bid` (tests steer the market)."""
        self._bid_ticks = int(best_bid // self._tick)
        self._recenter()

    def request_gap(self, skip: int = 3) -> None:
        """The next update skips `skip` update ids, whose (hidden) changes still
        happen to the book."""
        self._gap = max(self._gap, skip)

    def commit(self) -> None:
        """Emit the pending level changes as one depthUpdate (+ bookTicker)."""
        if not self._pending:
            return
        if self._gap:
            self._hidden_change()
            self.update_id += self._gap
            self._gap = 0
        first = self.update_id + 1
        self.update_id += len(self._pending)
        bids = sorted(((p, q) for (s, p), q in self._pending.items() if s == BID), reverse=True)
        asks = sorted((p, q) for (s, p), q in self._pending.items() if s == ASK)
        self._pending.clear()
        now = self._clock()
        self.outbox.append(("depth", {
            "e": "depthUpdate", "E": now, "s": self.symbol, "U": first, "u": self.update_id,
            "b": [[d8(p), d8(q)] for p, q in bids], "a": [[d8(p), d8(q)] for p, q in asks]}))
        bb, ba = self.best_bid(), self.best_ask()
        if bb and ba:
            self.outbox.append(("bookTicker", {
                "u": self.update_id, "s": self.symbol, "b": d8(bb[0]), "B": d8(bb[1]),
                "a": d8(ba[0]), "A": d8(ba[1])}))

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        out, self.outbox = self.outbox, []
        return out

    # --- internals ---------------------------------------------------------------

    def _random_qty(self) -> Decimal:
        return self._unit * self._rng.randint(10, 2000)

    def _set(self, side: str, price: Decimal, qty: Decimal) -> None:
        levels = self.bids if side == BID else self.asks
        if qty <= 0:
            if levels.pop(price, None) is None:
                return
            qty = Decimal(0)
        else:
            levels[price] = qty
        self._pending[(side, price)] = qty

    def _recenter(self) -> None:
        """Make each side exactly the `levels` ticks next to the spread."""
        tick, n = self._tick, self._levels
        bid_hi = self._bid_ticks
        ask_lo = bid_hi + self._spread
        bid_window = {tick * (bid_hi - i) for i in range(n)}
        ask_window = {tick * (ask_lo + i) for i in range(n)}
        for side, levels, window in ((BID, self.bids, bid_window), (ASK, self.asks, ask_window)):
            for price in [p for p in levels if p not in window]:
                self._set(side, price, Decimal(0))
            for price in sorted(window - levels.keys()):
                self._set(side, price, self._random_qty())

    def _hidden_change(self) -> None:
        """Change a level without reporting it (the content of the skipped ids)."""
        hidden = [p for p in sorted(self.bids) if (BID, p) not in self._pending]
        if hidden:
            price = self._rng.choice(hidden)
            self.bids[price] += self._unit
