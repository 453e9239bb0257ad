"""A local Binance order book and the state machine that keeps it in sync.

`OrderBook` holds price levels; `BookSync` drives the documented sync procedure
(buffer diffs, take a REST snapshot, bridge, then follow the update-id sequence)
and says when a new snapshot is needed. No I/O: the adapter feeds events in and
fetches snapshots when told to.

The sequence rules differ by market:

- spot (shared `binance-spot-protocol.md` section 8, gap rule corrected
  2025-11-12): drop a diff with `u <= id`; a diff with `U > id + 1` is a gap;
  otherwise apply it and set `id := u`. With `id = lastUpdateId` this also bridges the snapshot
  (`U <= lastUpdateId + 1 <= u`). Normally `U == previous u + 1`.
- USD-M futures (Binance "How to manage a local order book correctly"): drop a
  diff with `u < lastUpdateId`; the first applied diff has
  `U <= lastUpdateId <= u`; after that each diff's `pu` equals the previous `u`.
  Futures update ids are not contiguous per symbol (`U` of a diff is usually far
  above the previous `u`), so `U`-based continuity would report false gaps.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import Literal

from events.market import BookDelta, BookSnapshot

Market = Literal["spot", "usdm"]
Side = Literal["bid", "ask"]


class OrderBook:
    """Bid and ask price levels (float price -> float size); size 0 removes a level."""

    def __init__(self) -> None:
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        # Cached best prices; None means "recompute" (the best level was removed).
        self._best_bid: float | None = None
        self._best_ask: float | None = None

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._best_bid = self._best_ask = None

    def apply_snapshot(self, snapshot: BookSnapshot) -> None:
        """Replace the whole book with the snapshot's levels."""
        self.clear()
        self._set_levels(self._bids, snapshot.bid_prices, snapshot.bid_sizes)
        self._set_levels(self._asks, snapshot.ask_prices, snapshot.ask_sizes)

    def apply_delta(self, delta: BookDelta) -> None:
        """Set each level in the delta to its new absolute size (0 removes it).

        Removing a level the book does not hold is normal (the snapshot is
        depth-limited) and ignored."""
        for price, size in zip(delta.bid_prices, delta.bid_sizes, strict=True):
            self._set_bid(price, size)
        for price, size in zip(delta.ask_prices, delta.ask_sizes, strict=True):
            self._set_ask(price, size)

    @staticmethod
    def _set_levels(side: dict[float, float], prices: list[float], sizes: list[float]) -> None:
        for price, size in zip(prices, sizes, strict=True):
            if size > 0:
                side[price] = size

    def _set_bid(self, price: float, size: float) -> None:
        if size > 0:
            self._bids[price] = size
            if self._best_bid is not None and price > self._best_bid:
                self._best_bid = price
        elif self._bids.pop(price, None) is not None and price == self._best_bid:
            self._best_bid = None

    def _set_ask(self, price: float, size: float) -> None:
        if size > 0:
            self._asks[price] = size
            if self._best_ask is not None and price < self._best_ask:
                self._best_ask = price
        elif self._asks.pop(price, None) is not None and price == self._best_ask:
            self._best_ask = None

    def best_bid(self) -> tuple[float, float] | None:
        """(price, size) of the highest bid, or None if there are no bids."""
        if not self._bids:
            return None
        if self._best_bid is None or self._best_bid not in self._bids:
            self._best_bid = max(self._bids)
        return self._best_bid, self._bids[self._best_bid]

    def best_ask(self) -> tuple[float, float] | None:
        """(price, size) of the lowest ask, or None if there are no asks."""
        if not self._asks:
            return None
        if self._best_ask is None or self._best_ask not in self._asks:
            self._best_ask = min(self._asks)
        return self._best_ask, self._asks[self._best_ask]

    def levels(self, side: Side, depth: int | None = None) -> list[tuple[float, float]]:
        """The best `depth` levels of one side (all if None), best first."""
        if side == "bid":
            items = sorted(self._bids.items(), reverse=True)
        elif side == "ask":
            items = sorted(self._asks.items())
        else:
            raise ValueError(f"side must be 'bid' or 'ask', not {side!r}")
        return items if depth is None else items[:depth]

    def as_dict(self) -> dict[str, list[tuple[float, float]]]:
        """Both sides, best first: compare two books with `==`."""
        return {"bids": self.levels("bid"), "asks": self.levels("ask")}

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)


class SyncState(StrEnum):
    WAITING_SNAPSHOT = "waiting_snapshot"
    SYNCED = "synced"
    RESYNCING = "resyncing"


class Action(StrEnum):
    """What `BookSync` did with an event."""

    APPLIED = "applied"  # the book moved (a delta applied, or a snapshot taken and bridged)
    BUFFERED = "buffered"  # a delta held until a snapshot arrives
    STALE = "stale"  # dropped: already contained in the book (or a snapshot while synced)
    NEED_SNAPSHOT = "need_snapshot"  # gap or unbridgeable snapshot: fetch a new snapshot


class BookSync:
    """The Binance local-book sync procedure as a state machine.

    `on_delta` / `on_snapshot` return an `Action`; after `NEED_SNAPSHOT` (and at
    start) `needs_snapshot()` is true until a snapshot bridges the stream. The
    replay of buffered deltas after a snapshot goes through the same path as
    live deltas.
    """

    def __init__(self, market: Market, *, max_buffer: int = 10_000) -> None:
        if market not in ("spot", "usdm"):
            raise ValueError(f"market must be 'spot' or 'usdm', not {market!r}")
        self.market: Market = market
        self._book = OrderBook()
        self._state = SyncState.WAITING_SNAPSHOT
        # Oldest diffs go first on overflow: a snapshot fetched later is newer
        # than them anyway, and if it is not, the bridge check asks for another.
        self._buffer: deque[BookDelta] = deque(maxlen=max_buffer)
        self._last_id = 0  # update id the book reflects (snapshot lastUpdateId, then u)
        self._bridged = False  # has a delta been applied since the snapshot?
        self.gaps = 0  # sequence breaks detected while synced
        self.rejected_snapshots = 0  # snapshots the buffered stream could not bridge
        self.applied = 0  # deltas applied to the book
        self.stale = 0  # deltas dropped as already contained in the book
        self.snapshots = 0  # snapshots taken into the book

    @property
    def state(self) -> SyncState:
        return self._state

    @property
    def book(self) -> OrderBook:
        return self._book

    @property
    def last_update_id(self) -> int:
        """The venue update id the book reflects (0 before the first snapshot)."""
        return self._last_id

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def needs_snapshot(self) -> bool:
        """True when the caller should fetch a REST depth snapshot."""
        return self._state is not SyncState.SYNCED

    def reset(self) -> None:
        """Forget the book and start over (e.g. after a reconnect)."""
        self._restart()

    def on_delta(self, delta: BookDelta) -> Action:
        if self._state is not SyncState.SYNCED:
            self._buffer.append(delta)
            return Action.BUFFERED
        action = self._step(delta)
        if action is Action.NEED_SNAPSHOT:
            self.gaps += 1
            self._restart(delta)
        return action

    def on_snapshot(self, snapshot: BookSnapshot) -> Action:
        if self._state is SyncState.SYNCED:
            # The live stream is authoritative once bridged; `reset()` forces a resync.
            return Action.STALE
        self._book.apply_snapshot(snapshot)
        self._last_id = snapshot.last_update_id
        self._bridged = False
        self.snapshots += 1
        pending = list(self._buffer)
        self._buffer.clear()
        for i, delta in enumerate(pending):
            if self._step(delta) is Action.NEED_SNAPSHOT:
                # Snapshot older than the buffered stream (or a gap inside the
                # buffer): keep the diffs from here on for the next snapshot.
                self.rejected_snapshots += 1
                self._restart(*pending[i:])
                return Action.NEED_SNAPSHOT
        self._state = SyncState.SYNCED
        return Action.APPLIED

    def _step(self, delta: BookDelta) -> Action:
        """Apply one delta to a book at `_last_id`, or say why not."""
        first, last = delta.first_update_id, delta.last_update_id
        if self.market == "spot":
            if last <= self._last_id:
                return self._drop()
            if first > self._last_id + 1:
                return Action.NEED_SNAPSHOT
        elif not self._bridged:
            if last < self._last_id:
                return self._drop()
            if first > self._last_id:
                return Action.NEED_SNAPSHOT
        elif delta.prev_update_id != self._last_id:
            if last <= self._last_id:
                return self._drop()  # a repeat of something already applied
            return Action.NEED_SNAPSHOT
        self._book.apply_delta(delta)
        self._last_id = last
        self._bridged = True
        self.applied += 1
        return Action.APPLIED

    def _drop(self) -> Action:
        self.stale += 1
        return Action.STALE

    def _restart(self, *keep: BookDelta) -> None:
        was_synced = self._state is not SyncState.WAITING_SNAPSHOT or self.snapshots > 0
        self._book.clear()
        self._buffer.clear()
        self._buffer.extend(keep)
        self._last_id = 0
        self._bridged = False
        self._state = SyncState.RESYNCING if was_synced else SyncState.WAITING_SNAPSHOT
