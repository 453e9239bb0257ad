"""The kernel: wires the store, the journal, the bus and the venues, and runs them.

Synchronous core, thin async shell: the bus and journal are plain objects; this
module adds the root TaskGroup, the journal's timer, the background roll of
closed journal segments into Parquet, periodic stats and signal handling.

Start order: lock the data directory → undo interrupted store operations,
recover the journal (truncate a torn tail) and roll what earlier runs left →
open a new journal segment → start venues. Stop order (SIGTERM/SIGINT): stop
venues → flush and close the journal → roll it into Parquet → release the lock.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import structlog

from daemon.config import Config, VenueConfig
from daemon.errors import EXIT_CONFIG, EXIT_CRASH, EXIT_LOCKED, EXIT_OK, UserError
from events.base import Event, event_type_name
from events.bus import Bus
from events.journal import Journal, JournalPolicy
from events.orders import Fill, OrderCanceled, OrderRejected, OrderSubmitted
from events.registry import ORDER_TYPES
from events.state import BalanceChanged, PositionChanged
from events.store import EventStore, StoreLocked
from events.system import StrategyStatus, TradingState

log = structlog.get_logger("tapeloop.kernel")

TICK_S = 0.02  # journal timer: flush window checks and rotation
STATS_EVERY_S = 10.0


class FatalError(Exception):
    """The daemon cannot go on safely (e.g. the journal cannot write)."""


class Roller:
    """Rolls closed journal segments into Parquet in a child process, one at a
    time, so encoding and compression never stall the event loop."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.queue: asyncio.Queue[Path] = asyncio.Queue()  # unbounded: a few paths at most
        self.rolled = 0

    async def run(self) -> None:
        while True:
            segment = await self.queue.get()
            await self._roll(segment)

    async def _roll(self, segment: Path) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "events.roll", str(self.store.root), str(segment),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await proc.communicate()
        except asyncio.CancelledError:
            # Let a started roll finish: it is atomic per part and the manifest
            # records it, but finishing keeps the next start cheap.
            await asyncio.shield(proc.wait())
            raise
        self.store.reload_manifest()
        if proc.returncode == 0:
            self.rolled += 1
            log.info("journal.segment_rolled", segment=segment.name,
                     rolled_seq=self.store.manifest.rolled_seq)
        else:
            # The segment stays in the journal; the next start rolls it.
            log.error("journal.roll_failed", segment=segment.name, code=proc.returncode,
                      stderr=err.decode(errors="replace")[-2000:])

    def pending(self) -> list[Path]:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait())
        return out


class Kernel:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_dir = Path(config.daemon.data_dir)
        self.store: EventStore | None = None
        self.journal: Journal | None = None
        self.bus: Bus | None = None
        self.counts: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._fatal: BaseException | None = None
        self.venues: list[Any] = []
        self.venues_by_name: dict[str, Any] = {}
        self.node: Any = None

    # -- lifecycle ---------------------------------------------------------------

    def open(self) -> None:
        """Lock and recover the data directory, open the journal and the bus."""
        t0 = time.perf_counter()
        try:
            self.store = EventStore.open_writer(self.data_dir)
        except StoreLocked as exc:
            raise UserError(str(exc), code=EXIT_LOCKED) from None
        j = self.config.journal
        policy = JournalPolicy(
            fsync=j.fsync, flush_interval_ms=j.flush_interval_ms,
            fsync_interval_ms=j.fsync_interval_ms, segment_max_bytes=j.segment_max_bytes,
            roll_interval_s=j.roll_interval_s,
        )
        self.journal = self.store.open_journal(policy)
        # The journal hook records each event as it is published, before anything
        # can react to it.
        self.bus = Bus(next_seq=self.journal.next_seq, on_error=self._on_handler_error,
                       journal=self._journal_append)
        self.bus.subscribe_all(self._count)
        log.info("daemon.opened", data_dir=str(self.data_dir), next_seq=self.journal.next_seq,
                 open_ms=round((time.perf_counter() - t0) * 1000, 1))

    def _recover_orders(self) -> None:
        """Fold the recorded order events into the OMS, so client order ids
        continue where the last run stopped (never reused). The simulated
        account of a paper venue starts afresh from the config, so orders the
        last run left open there are closed, with the reason said."""
        from replay.reader import read_events

        assert self.node is not None and self.bus is not None
        oms = self.node.oms
        names = [t.__name__ for t in ORDER_TYPES]
        recorded = [e for batch in read_events(self.data_dir, types=names) for e in batch]
        recorded.sort(key=lambda e: e.seq)
        for event in recorded:
            oms.apply(event)
        # Live venues keep their orders: reconciliation asks the venue about each.
        live = {v.name for v in self.config.venues if v.kind == "binance"}
        now = time.time_ns()
        for order in oms.open_orders():
            if order.venue in live:
                continue
            self.bus.publish(OrderCanceled(
                ts_event=now, ts_recv=now, venue=order.venue, symbol=order.symbol,
                strategy_id=order.strategy_id, client_order_id=order.client_order_id,
                reason="paper venue restarted"))
        if recorded:
            log.info("oms.recovered", orders=len(oms.orders), events=len(recorded))
        if live:
            self._recover_live_positions(live)

    def _recover_live_positions(self, live: set[str]) -> None:
        """A live venue's positions and balances outlive the process: fold its
        recorded fills and balances into the portfolio (a simulated account
        starts afresh from its config instead)."""
        from replay.reader import read_events

        names = ["Fill", "BalanceChanged"]
        recorded = [e for batch in read_events(self.data_dir, types=names) for e in batch
                    if getattr(e, "venue", "") in live]
        recorded.sort(key=lambda e: e.seq)
        self.node.portfolio.recover(recorded)
        for venue in self.venues_by_name.values():
            balances = getattr(venue, "balances", None)
            if balances is not None:
                for e in recorded:
                    if isinstance(e, BalanceChanged) and e.venue == venue.name:
                        balances[e.currency] = (e.free, e.locked)
        if recorded:
            log.info("portfolio.recovered", venues=sorted(live), events=len(recorded))

    def _log_trading(self) -> None:
        """One log line per trading fact, with its context bound."""
        assert self.bus is not None
        sub = self.bus.subscribe
        sub(OrderSubmitted, lambda e: log.info(
            "order.submitted", strategy_id=e.strategy_id, client_order_id=e.client_order_id,
            venue=e.venue, symbol=e.symbol, side=e.side, order_type=e.order_type, qty=e.qty,
            price=e.price))
        sub(OrderRejected, lambda e: log.warning(
            "order.rejected", strategy_id=e.strategy_id, client_order_id=e.client_order_id,
            venue=e.venue, symbol=e.symbol, check=e.check, reason=e.reason))
        sub(Fill, lambda e: log.info(
            "order.filled", strategy_id=e.strategy_id, client_order_id=e.client_order_id,
            venue=e.venue, symbol=e.symbol, side=e.side, qty=e.qty, price=e.price, fee=e.fee,
            liquidity=e.liquidity))
        sub(PositionChanged, lambda e: log.info(
            "position.changed", strategy_id=e.strategy_id, venue=e.venue, symbol=e.symbol,
            qty=e.qty, avg_price=e.avg_price, realized_pnl=e.realized_pnl, fees=e.fees))
        sub(StrategyStatus, lambda e: (log.error if e.status == "failed" else log.info)(
            "strategy.status", strategy_id=e.strategy_id, status=e.status, reason=e.reason))
        sub(TradingState, lambda e: log.warning("trading.state", state=e.state, reason=e.reason))

    def _count(self, event: Event) -> None:
        self.counts[type(event).__name__] += 1

    def _journal_append(self, event: Event) -> None:
        assert self.journal is not None
        try:
            self.journal.append(event)
        except Exception as exc:
            # Nothing may act on an event the journal could not record: the
            # publish raises, and the daemon stops.
            log.critical("journal.append_failed", seq=event.seq, error=repr(exc))
            self._fatal = FatalError(f"journal append failed: {exc!r}")
            self._stop.set()
            raise

    def _on_handler_error(self, event: Event, handler: Any, exc: BaseException) -> None:
        log.error("bus.handler_failed", event_type=event_type_name(type(event)), seq=event.seq,
                  handler=getattr(handler, "__qualname__", repr(handler)), error=repr(exc))

    def request_stop(self, reason: str = "requested") -> None:
        if not self._stop.is_set():
            log.info("daemon.stopping", reason=reason)
        self._stop.set()

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or a fatal error); returns the exit code."""
        assert self.store is not None and self.journal is not None and self.bus is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        roller = Roller(self.store)
        from daemon.node import TradingNode
        from replay.clock import LiveClock

        try:
            self.node = TradingNode(self.config, self.bus, LiveClock(loop), replay=False)
            for vcfg in self.config.venues:
                venue = self._make_venue(vcfg)
                if venue is not None:
                    self.venues_by_name[vcfg.name] = venue
                    if hasattr(venue, "subscribe"):
                        venue.subscribe(self.bus)
            self._recover_orders()
            self._log_trading()
            self.node.start()
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._journal_timer(roller), name="journal-timer"),
                    tg.create_task(roller.run(), name="roller"),
                    tg.create_task(self._stats(), name="stats"),
                    tg.create_task(self._snapshots(), name="snapshots"),
                ]
                for name, venue in self.venues_by_name.items():
                    self.venues.append(venue)
                    tasks.append(tg.create_task(self._run_venue(venue), name=name))
                log.info("daemon.ready", venues=[v.name for v in self.config.venues])
                await self._stop.wait()
                # Strategies stop first, so what they send on the way out (a
                # market maker's cancels) still reaches live venues.
                self.node.stop()
                for venue in self.venues:
                    drain = getattr(venue, "drain", None)
                    if drain is not None:
                        await drain()
                for task in tasks:
                    task.cancel()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if self.node is not None:
                self.node.stop()
            self._close(roller)
        if self._fatal is not None:
            log.critical("daemon.fatal", error=str(self._fatal))
            return EXIT_CRASH
        log.info("daemon.stopped", events=sum(self.counts.values()))
        return EXIT_OK

    def _close(self, roller: Roller) -> None:
        """Flush, close and roll the journal; release the lock."""
        journal, store = self.journal, self.store
        assert journal is not None and store is not None
        try:
            last = journal.close()
            store.reload_manifest()
            for segment in [*roller.pending(), *([last] if last else [])]:
                if segment.exists():
                    store.roll_segment(segment)
            log.info("journal.closed", last_seq=journal.written_seq,
                     rolled_seq=store.manifest.rolled_seq)
        finally:
            store.close()

    # -- tasks -------------------------------------------------------------------

    async def _journal_timer(self, roller: Roller) -> None:
        journal = self.journal
        assert journal is not None
        while True:
            await asyncio.sleep(TICK_S)
            if journal.tick():
                segment = journal.rotate()
                if segment is not None:
                    roller.queue.put_nowait(segment)

    async def _stats(self) -> None:
        last = Counter[str]()
        last_t = time.monotonic()
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            now = time.monotonic()
            delta = self.counts - last
            rate = sum(delta.values()) / (now - last_t)
            journal = self.journal
            assert journal is not None
            log.info("daemon.stats", events_per_s=round(rate, 1), events=dict(self.counts),
                     journal_written_seq=journal.written_seq, journal_synced_seq=journal.synced_seq,
                     journal_buffered_bytes=journal.buffered_bytes)
            last, last_t = Counter(self.counts), now

    async def _snapshots(self) -> None:
        assert self.bus is not None
        while True:
            await asyncio.sleep(self.config.daemon.snapshot_interval_s)
            self.bus.publish(self.node.portfolio.snapshot())

    def _make_venue(self, vcfg: VenueConfig) -> Any:
        assert self.bus is not None
        if vcfg.kind == "sample":
            from adapters.sample.feed import SampleFeed

            symbols = [i.symbol for i in self.config.instruments if i.venue == vcfg.name]
            assert vcfg.file is not None  # the config checks this
            try:
                return SampleFeed(
                    venue=vcfg.name, path=vcfg.file, symbol=symbols[0] if symbols else "",
                    speed=None if vcfg.speed == "max" else float(vcfg.speed), loop=vcfg.loop,
                    publish=self.bus.publish,
                )
            except (OSError, ValueError) as exc:
                raise UserError(f"venue {vcfg.name!r}: {exc}") from None
        if vcfg.kind == "binance":
            return self._binance_venue(vcfg)
        return None

    def _binance_venue(self, vcfg: VenueConfig) -> Any:
        from adapters.binance.endpoints import resolve_endpoints
        from adapters.binance.signing import load_credentials
        from adapters.binance.venue import BinanceVenue

        assert self.bus is not None and self.node is not None
        try:
            endpoints = resolve_endpoints(vcfg.endpoints)
            credentials = load_credentials(vcfg.credentials) if vcfg.trade else None
        except ValueError as exc:
            raise UserError(f"venue {vcfg.name!r}: {exc}", code=EXIT_CONFIG) from None
        instruments = [i for k, i in self.node.instruments.items() if k[0] == vcfg.name]
        log.info("venue.binance", venue=vcfg.name, rest=endpoints.rest, streams=endpoints.streams,
                 ws_api=endpoints.ws_api, trade=vcfg.trade,
                 credentials=None if credentials is None else credentials.kind)
        return BinanceVenue(
            vcfg.name, instruments, self.bus, endpoints=endpoints, credentials=credentials,
            oms=self.node.oms, risk=self.node.risk, trade=vcfg.trade, streams=vcfg.streams,
            depth_limit=vcfg.depth_limit, stale_after_s=vcfg.stale_after_s,
            recv_window_ms=vcfg.recv_window_ms)

    async def _run_venue(self, venue: Any) -> None:
        try:
            await venue.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            name = getattr(venue, "venue", "?")
            log.error("venue.failed", venue=name, error=str(exc) or repr(exc))
            if getattr(venue, "critical", False):
                # A live trading venue that cannot run leaves orders unwatched:
                # stop, so the supervisor restarts us and reconciliation runs.
                self._fatal = FatalError(f"venue {name} failed: {exc}")
                self._stop.set()
            # Otherwise (a feed) the daemon goes on without it.


def run_kernel(config: Config) -> int:
    """Open the kernel and run it on uvloop (when available)."""
    kernel = Kernel(config)
    kernel.open()

    async def main() -> int:
        return await kernel.run()

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(main())
    return uvloop.run(main())
