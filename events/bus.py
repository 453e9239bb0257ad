"""The in-process event bus: synchronous, ordered, isolated dispatch.

Publishing stamps the next `seq`, hands the event to the journal hook (so it is
recorded before any component can react to it), and dispatches it to the
subscribers of its exact type, catch-all subscribers first. `dispatch` and
`dispatch_many` deliver events that already have a seq (a replay's input)
without journaling them: a process journals what it publishes. An event published from inside a
handler is queued and dispatched after the current one has reached every
subscriber, so every subscriber sees events in `seq` order.

A handler that raises is reported to `on_error` and the dispatch goes on to the
remaining subscribers.

Group commit: with `commit`, the journal hook only stages an event and returns
true when it must be durable before anyone sees it (`Journal.stage`); the bus
then calls `commit()` before it dispatches that event, once for all the events
staged by then (the orders one strategy callback submits, the events one message
produces share one fdatasync). Outside a dispatch it commits at once, except
inside `with bus.grouped():` (the events one incoming message yields, published
one by one): there subscribers may see an event before it is durable, and the
commit comes when the group ends, before control returns to the event loop, so
before any task (every venue sends from a task) can act on it; an event a handler
publishes still waits for a commit covering everything staged. A commit that
raises drops everything still queued: nobody sees an event that was not recorded.

With `write` as well (the daemon's wiring: `write=Journal.flush`), the bus splits
that commit in two. Where it would commit, it writes: the staged events go to the
OS (a kill -9 loses none of them) before anyone sees them. Their fdatasync (what a
power cut would lose without it) is `durable()`: called by whatever sends a
request on an event's account from inside its dispatch, just before the request
leaves (the Binance venue's order path, after building and signing it), and by
the bus itself when the outermost dispatch ends, so, as above, before the event
loop runs anything else. The order is on disk before it is sent, as before; what
runs between the write and the send (the venue's handler, the request's query and
signature) no longer waits behind the disk, and runs before the thread sleeps in
`fdatasync` instead of after, on caches that sleep has not cooled. The only thing
anyone can see of an event a power cut then loses is in-process state, which the
power cut loses too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from events.base import Event, stamp_seq

Handler = Callable[[Any], None]
ErrorHandler = Callable[[Event, Handler, BaseException], None]


def _default_on_error(event: Event, handler: Handler, exc: BaseException) -> None:
    import structlog

    structlog.get_logger("tapeloop.bus").error(
        "bus.handler_failed",
        handler=getattr(handler, "__qualname__", repr(handler)),
        event_type=type(event).__name__,
        seq=event.seq,
        error=repr(exc),
        exc_info=exc,
    )


class Bus:
    """One per process. Not thread-safe: publish from the event loop thread."""

    __slots__ = ("_by_type", "_catch_all", "_routes", "_pending", "_dispatching", "next_seq",
                 "on_error", "journal", "commit", "write", "_unsynced", "_commit_due",
                 "_commit_marker", "_grouping", "_group_due")

    def __init__(self, *, next_seq: int = 1, on_error: ErrorHandler | None = None,
                 journal: Callable[[Any], object] | None = None,
                 commit: Callable[[], None] | None = None,
                 write: Callable[[], None] | None = None) -> None:
        """`journal(event)` is called for every published event, after its seq
        is stamped and before anyone sees it; if it raises, `publish` raises
        (nothing may act on an event that was not recorded). When it returns
        true, `commit()` is called before the event is dispatched (see the
        module docstring; `journal=Journal.stage, commit=Journal.commit`).
        With `write` (`Journal.flush`: what is staged goes to the OS, no fsync),
        `write()` is called there instead and `commit()` is left to `durable()`:
        at the latest when the outermost dispatch ends (module docstring)."""
        self._by_type: dict[type, list[Handler]] = {}
        self._catch_all: list[Handler] = []
        # type -> tuple of handlers (catch-all first), rebuilt on (un)subscribe
        self._routes: dict[type, tuple[Handler, ...]] = {}
        self._pending: deque[Event] = deque()
        self._dispatching = False
        self.next_seq = next_seq
        self.on_error: ErrorHandler = on_error or _default_on_error
        self.journal = journal
        self.commit = commit
        self.write = write
        self._unsynced = False  # written before its dispatch, its fsync left to durable()
        self._commit_due = False  # a commit marker waits in _pending
        self._commit_marker = _Deferred(self._commit_queued)
        self._grouping = 0  # depth of `grouped()` blocks
        self._group_due = False  # a critical event published in the group awaits its commit

    @property
    def awaiting_commit(self) -> bool:
        """An event already delivered is not durable yet: a critical one published
        in a `grouped()` block, committed when the block ends. Nothing may leave
        the process on its account before then (a venue sends from a task)."""
        return self._group_due

    # -- subscriptions -------------------------------------------------------

    def subscribe(self, event_type: type[Event], handler: Handler) -> None:
        """Call `handler(event)` for every event of exactly `event_type`."""
        self._by_type.setdefault(event_type, []).append(handler)
        self._routes.clear()

    def subscribe_all(self, handler: Handler) -> None:
        """Call `handler(event)` for every event, before type subscribers."""
        self._catch_all.append(handler)
        self._routes.clear()

    def unsubscribe(self, event_type: type[Event] | None, handler: Handler) -> None:
        """Remove a subscription (`event_type=None` for a catch-all one)."""
        handlers = self._catch_all if event_type is None else self._by_type.get(event_type, [])
        handlers.remove(handler)
        self._routes.clear()

    def route(self, cls: type) -> tuple[Handler, ...]:
        """The handlers an event of exactly `cls` is delivered to, in order."""
        return self._routes.get(cls) or self._route(cls)

    def _route(self, cls: type) -> tuple[Handler, ...]:
        if cls is _Deferred:
            route: tuple[Handler, ...] = (_run_deferred,)
            self._routes[cls] = route
            return route
        route = tuple(self._catch_all) + tuple(self._by_type.get(cls, ()))
        self._routes[cls] = route
        return route

    # -- publishing ----------------------------------------------------------

    def publish(self, event: Event, _stamp: Callable[[Event, int], None] = stamp_seq) -> Event:
        """Stamp `event.seq` and dispatch it (or queue it, if called from a
        handler). Returns the event, now carrying its seq."""
        seq = self.next_seq
        _stamp(event, seq)
        self.next_seq = seq + 1
        if self.journal is not None and self.journal(event):
            if not self._dispatching:
                if self._grouping:
                    self._group_due = True  # committed when the group ends
                elif self.write is not None:
                    self.write()  # recorded before anyone sees it, fsynced by durable()
                    self._unsynced = True
                else:
                    self.commit()  # type: ignore[misc]  # durable before anyone sees it
            elif not self._commit_due:
                # committed before this event's turn, with all staged by then
                self._commit_due = True
                self._pending.append(self._commit_marker)  # type: ignore[arg-type]
        if self._dispatching:
            self._pending.append(event)
            return event
        # Fast path, inlined: this is the hottest function in the daemon.
        route = self._routes.get(event.__class__)
        if route is None:
            route = self._route(event.__class__)
        self._dispatching = True
        try:
            for handler in route:
                try:
                    handler(event)
                except Exception as exc:  # a handler's failure is reported, not fatal
                    self.on_error(event, handler, exc)
            if self._pending:
                self._drain_locked()
        finally:
            self._dispatching = False
        if self._unsynced:
            self.durable()
        return event

    def publish_many(self, events: Iterable[Event]) -> None:
        """Publish a batch in order; cheaper per event than `publish`."""
        stamp = stamp_seq
        pending = self._pending
        journal = self.journal
        for event in events:
            stamp(event, self.next_seq)
            self.next_seq += 1
            if journal is not None and journal(event) and not self._commit_due:
                self._commit_due = True
                pending.append(self._commit_marker)  # type: ignore[arg-type]
            pending.append(event)
        if not self._dispatching:
            self._drain()

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Publish several events from outside a dispatch (what one incoming message
        yields) with one commit when the block ends; see the module docstring. Do not
        await inside it: the commit must come before the loop runs anything else."""
        self._grouping += 1
        try:
            yield
        finally:
            self._grouping -= 1
            if not self._grouping and self._group_due:
                self._group_due = False
                self._unsynced = False  # what this commit makes durable too
                self.commit()  # type: ignore[misc]

    def _commit_queued(self) -> None:
        """The commit marker's turn: make everything staged durable."""
        self._commit_due = False
        try:
            if self.write is not None:
                self.write()  # recorded before its turn, fsynced by durable()
                self._unsynced = True
            else:
                self.commit()  # type: ignore[misc]
        except BaseException:
            # nothing may act on an event that was not recorded
            self._pending.clear()
            raise

    def durable(self) -> None:
        """Make every critical event delivered so far durable (fsynced) now, if
        one is not yet (with it, everything staged: one commit): what sends a
        request on an event's account from inside its dispatch calls it just
        before the request leaves (see the module docstring). Raises what the
        commit raised."""
        if self._unsynced:
            self._unsynced = False
            self.commit()  # type: ignore[misc]

    def defer(self, fn: Callable[[], object]) -> None:
        """Run `fn` after every event already queued, i.e. after everything
        published so far in reaction to the event being dispatched (at once
        when nothing is being dispatched). Nothing is journaled for it."""
        if self._dispatching:
            self._pending.append(_Deferred(fn))  # type: ignore[arg-type]
        else:
            fn()

    def dispatch(self, event: Event) -> None:
        """Dispatch an event that already has its seq (e.g. read back from the
        store in a replay) without stamping a new one."""
        self.dispatch_many((event,))

    def dispatch_many(self, events: Iterable[Event]) -> None:
        """Dispatch already-sequenced events in order (the replay hot path).

        `events` is consumed lazily, one event per dispatch: the replay driver
        relies on it (its generator sets the clock to each event's time and
        stops at a timer's deadline), which is why the delivery loop is
        written out here rather than queueing the batch for `_drain_locked`."""
        if self._dispatching:
            self._pending.extend(events)
            return
        routes = self._routes
        pending = self._pending
        self._dispatching = True
        try:
            for event in events:
                cls = type(event)
                route = routes.get(cls)
                if route is None:
                    route = self._route(cls)
                for handler in route:
                    try:
                        handler(event)
                    except Exception as exc:
                        self.on_error(event, handler, exc)
                if pending:
                    self._drain_locked()
        finally:
            self._dispatching = False
        if self._unsynced:
            self.durable()

    def _drain(self) -> None:
        self._dispatching = True
        try:
            self._drain_locked()
        finally:
            self._dispatching = False
        if self._unsynced:
            self.durable()

    def _drain_locked(self) -> None:
        pending = self._pending
        routes = self._routes
        while pending:
            event = pending.popleft()
            cls = type(event)
            route = routes.get(cls)
            if route is None:
                route = self._route(cls)
            for handler in route:
                try:
                    handler(event)
                except Exception as exc:
                    self.on_error(event, handler, exc)


class _Deferred:
    """A callback waiting in the dispatch queue (see `Bus.defer`); routed to
    `_run_deferred`, so the delivery loop needs no special case."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn


def _run_deferred(item: _Deferred) -> None:
    item.fn()
