"""The kernel: wires the store, the journal, the bus, the node and the venues, and runs them.

Synchronous core, thin async shell: the bus and journal are plain objects; this
module adds the root TaskGroup, the journal's timer, the background roll of
closed journal segments into Parquet, stats, snapshots, systemd notification
and signal handling.

Start order: lock the data directory → undo interrupted store operations,
recover the journal (truncate a torn tail) and roll what earlier runs left →
open a new journal segment → recover the trading state by folding the journal
from the last snapshot (daemon/recovery.py) → connect venues → wait until every
live venue has reconciled with its exchange → start strategies → `READY=1`.

Stop (SIGTERM/SIGINT): `STOPPING=1` → strategies stop (what they send on the
way out still goes) → open orders kept or cancelled (`daemon.on_stop`) → venues
get the rest of `daemon.stop_budget_s` to finish their requests → tasks
cancelled → journal flushed, closed and rolled into Parquet → lock released.
SIGHUP re-reads the strategies (daemon/strategy_control.py).

Exit codes (daemon/errors.py): 0 after a stop, 3 bad config, 4 data directory
locked, 5 a venue refused our credentials, 6 an unusable data directory (a
damaged part recovery needs, a full or read-only disk, an unreadable manifest),
70 a crash (a live venue that cannot run, a bug).

A journal that cannot write (`JournalWriteError`: the disk is full or failing)
refuses every event from then on; the bus then publishes nothing (nothing may act
on what was not recorded) except the halt: trading halts with an alert, the daemon
stops and exits 6 with one line. What the journal wrote is intact, and the next
start, once there is room, recovers all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from daemon.alerts import Alerts
from daemon.config import Config
from daemon.control import ControlServer, load_control_token
from daemon.errors import (
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_CRASH,
    EXIT_DATA,
    EXIT_LOCKED,
    EXIT_OK,
    UserError,
    data_error,
    one_line,
    storage_error,
)
from daemon.metrics import KernelMetrics
from daemon.recovery import Recovered, recover, resume_policies
from daemon.strategy_control import StrategyControl
from daemon.systemd import Notifier
from daemon.venues import log_trading, make_venue
from events.base import Event, event_type_name
from events.bus import Bus
from events.faults import DataFault, JournalWriteError
from events.journal import Journal, JournalPolicy
from events.store import EventStore, StoreLocked
from events.system import HALTED, TradingState

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
            str(os.getpid()),
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


class TimedBus(Bus):
    """The daemon's bus: one publish in 64 is timed (journal append and every
    handler, nested publishes included) into the bus-dispatch histogram.

    Once the journal has failed (`refusing`), an event the journal refuses is
    dropped rather than raised into whatever published it, and so is every later
    one: nobody sees an event that was not recorded, and no component unwinds
    through an exception on its way to the stop. The one exception is a halt,
    dispatched unrecorded so that risk, the alerts and the log see it."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.dispatch_seconds: Any = None
        self._published = 0
        self.refusing = False

    def publish(self, event: Event, _stamp: Any = None) -> Event:
        if self.refusing:
            return self._refused(event)
        self._published += 1
        try:
            if self._published & 63 or self.dispatch_seconds is None:
                return Bus.publish(self, event)
            t0 = time.perf_counter()
            out = Bus.publish(self, event)
            self.dispatch_seconds.observe(time.perf_counter() - t0)
            return out
        except JournalWriteError:
            return event  # refused before anyone saw it; the kernel is stopping

    def _refused(self, event: Event) -> Event:
        if type(event) is TradingState and event.state == HALTED:  # type: ignore[attr-defined]
            journal, self.journal = self.journal, None
            try:
                return Bus.publish(self, event)
            finally:
                self.journal = journal
        return event


class Kernel:
    def __init__(self, config: Config, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.data_dir = Path(config.daemon.data_dir)
        self.store: EventStore | None = None
        self.journal: Journal | None = None
        self.bus: Bus | None = None
        self.counts: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._fatal: BaseException | None = None
        self._exit_code = EXIT_OK
        self._refused: UserError | None = None  # a strategy could not start
        self.venues: list[Any] = []
        self.venues_by_name: dict[str, Any] = {}
        self.node: Any = None
        self.notifier = Notifier()
        self.strategies = StrategyControl(self)
        self.ready = False
        self.stopping = False
        self.started_monotonic = time.monotonic()
        self.recovered: Recovered | None = None
        self.alerts: Any = None
        self.metrics = KernelMetrics()

    def open(self) -> None:
        """Lock and recover the data directory, open the journal and the bus."""
        t0 = time.perf_counter()
        with self._data_faults():
            try:
                # Segments an earlier run left unrolled (a crash) are rolled in the
                # background once running; recovery reads them from the journal.
                self.store = EventStore.open_writer(self.data_dir, roll=False)
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
        self.bus = TimedBus(next_seq=self.journal.next_seq, on_error=self._on_handler_error,
                            journal=self._journal_append)
        self.bus.dispatch_seconds = self.metrics.bus_dispatch
        self.bus.subscribe_all(self._count)
        log.info("daemon.opened", data_dir=str(self.data_dir), next_seq=self.journal.next_seq,
                 open_ms=round((time.perf_counter() - t0) * 1000, 1))

    @contextlib.contextmanager
    def _data_faults(self, hint: str = "") -> Iterator[None]:
        """A fault of the data directory (a damaged file, a disk that refuses) as
        the one-line EXIT_DATA refusal; `hint` says what to do about it."""
        try:
            yield
        except (DataFault, OSError) as exc:
            if isinstance(exc, OSError) and not storage_error(exc):
                raise
            error = data_error(exc, f"data directory {self.data_dir}")
            if hint:
                error = UserError(f"{error}; {hint}", code=EXIT_DATA)
            raise error from None

    def _count(self, event: Event) -> None:
        self.counts[type(event).__name__] += 1

    def _journal_append(self, event: Event) -> None:
        assert self.journal is not None
        try:
            self.journal.append(event)
        except JournalWriteError as exc:
            # The disk refused: refuse this event (TimedBus drops it) and stop.
            self._journal_failed(exc)
            raise
        except Exception as exc:
            # Nothing may act on an event the journal could not record: the
            # publish raises, and the daemon stops.
            log.critical("journal.append_failed", seq=event.seq, error=repr(exc))
            self._fail(FatalError(f"journal append failed: {exc!r}"))
            raise

    def _journal_failed(self, exc: JournalWriteError) -> None:
        """The journal cannot write (its module doc): from now on the bus publishes
        nothing, trading halts with an alert, and the daemon stops with EXIT_DATA."""
        assert isinstance(self.bus, TimedBus)
        if self.bus.refusing:
            return
        self.bus.refusing = True
        log.critical("journal.write_failed", error=str(exc))
        self._fail(exc, EXIT_DATA)
        if self.node is not None:
            self.node.risk.halt(f"journal write failed: {exc}")

    def _fail(self, error: BaseException, code: int = EXIT_CRASH) -> None:
        """Stop with `error`; the first fault is the one reported (what follows it is
        usually its consequence)."""
        if self._fatal is None:
            self._fatal, self._exit_code = error, code
        self._stop.set()

    def _on_handler_error(self, event: Event, handler: Any, exc: BaseException) -> None:
        log.error("bus.handler_failed", event_type=event_type_name(type(event)), seq=event.seq,
                  handler=getattr(handler, "__qualname__", repr(handler)), error=repr(exc))

    def request_stop(self, reason: str = "requested") -> None:
        if not self._stop.is_set():
            log.info("daemon.stopping", reason=reason)
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    # -- views for the control API --------------------------------------------------

    def strategy_states(self) -> dict[str, str]:
        return self.strategies.states() if self.node is not None else {}

    def stop_strategy(self, strategy_id: str) -> None:
        self.strategies.stop(strategy_id)

    def start_strategy(self, strategy_id: str) -> None:
        self.strategies.start(strategy_id)

    def venue_states(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {v.name: {"status": "simulated", "reconnects": 0}
                                          for v in self.config.venues}
        for name, venue in self.venues_by_name.items():
            market = getattr(venue, "market", None)
            if market is not None:
                user = getattr(venue, "user", None)
                out[name] = {"status": market.status or "connecting",
                             "reconnects": market.reconnects
                             + (user.reconnects if user is not None else 0),
                             "reconciled": getattr(venue, "reconciled", 0)}
            else:
                out[name] = {"status": "connected", "reconnects": 0}
        return out

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or a fatal error); returns the exit code."""
        assert self.store is not None and self.journal is not None and self.bus is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        roller = Roller(self.store)
        for scan in self.store.journal_scans:
            roller.queue.put_nowait(scan.path)
        self.notifier.status("recovering state from the journal")
        control: ControlServer | None = None
        try:
            # first, so /health answers "starting" while the state is recovered
            with self._data_faults():
                token = load_control_token(self.data_dir)
            control = ControlServer(self, self.config.daemon.control_address, token)
            url = await control.start()
            log.info("control.listening", url=url)
            from daemon.node import TradingNode
            from replay.clock import LiveClock

            with self._data_faults():
                prefix = self.store.client_id_prefix()
            self.node = TradingNode(self.config, self.bus, LiveClock(loop), replay=False,
                                    id_prefix=prefix)
            try:
                self.alerts = Alerts(self.config.alerts, self.bus, time.time_ns)
            except ValueError as exc:
                raise UserError(f"[alerts]: {exc}", code=EXIT_CONFIG) from None
            self.alerts.subscribe()
            for vcfg in self.config.venues:
                venue = make_venue(vcfg, self.config, self.bus, self.node)
                if venue is not None:
                    self.venues_by_name[vcfg.name] = venue
                    if hasattr(venue, "subscribe"):
                        venue.subscribe(self.bus)
                    if hasattr(venue, "alert"):
                        venue.alert = self.alerts.raise_alert
            check = f"`tapeloop store check --data {self.data_dir}` lists every damaged file"
            with self._data_faults(f"the state cannot be recovered without it; {check}"):
                self.recovered = recover(self.node, self.bus, self.data_dir)
            log_trading(self.bus)
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._journal_timer(roller), name="journal-timer"),
                    tg.create_task(roller.run(), name="roller"),
                    tg.create_task(self._stats(), name="stats"),
                    tg.create_task(self._snapshots(), name="snapshots"),
                    tg.create_task(self.notifier.watchdog(), name="watchdog"),
                    tg.create_task(self._reloader(), name="reloader"),
                    tg.create_task(self.alerts.run(), name="alerts"),
                ]
                for name, venue in self.venues_by_name.items():
                    self.venues.append(venue)
                    tasks.append(tg.create_task(self._run_venue(venue), name=name))
                if await self._venues_reconciled():
                    resume_policies(self.node, self.recovered)
                    stop_first = self.config.daemon.on_strategy_error == "stop"
                    failures = self.node.start(stop_at_failure=stop_first)
                    refusal = self.node.start_refusal(failures, self.config_path or "config")
                    if refusal is not None:
                        # never READY with a strategy that could not start: stop as
                        # for SIGTERM, then exit with this one line (run() raises it)
                        log.critical("daemon.start_refused", reason=refusal)
                        self._refused = UserError(refusal, EXIT_CONFIG)
                        self._stop.set()
                    else:
                        tune_gc()
                        self.ready = True
                        self.notifier.ready(self._status_line())
                        log.info("daemon.ready", venues=[v.name for v in self.config.venues],
                                 ready_s=round(time.monotonic() - self.started_monotonic, 3))
                await self._stop.wait()
                await self._graceful_stop(loop)
                # alerts raised while stopping still go out (within their timeout)
                await self.alerts.close()
                for task in tasks:
                    task.cancel()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if self.node is not None:
                self.node.stop()
            if control is not None:
                await control.close()
            self._close(roller)
            self.notifier.close()
        if self._fatal is not None:
            log.critical("daemon.fatal", error=str(self._fatal), code=self._exit_code)
            return self._exit_code if self._exit_code != EXIT_OK else EXIT_CRASH
        if self._refused is not None:
            raise self._refused
        log.info("daemon.stopped", events=sum(self.counts.values()))
        return EXIT_OK

    @property
    def fatal(self) -> BaseException | None:
        """What stopped the daemon, if it did not stop on request."""
        return self._fatal

    async def _venues_reconciled(self) -> bool:
        """Wait until every live trading venue has reconciled once (False if a
        stop came first). Strategies start only then."""
        waiting = [v for v in self.venues_by_name.values()
                   if getattr(v, "critical", False) and hasattr(v, "reconciled")]
        while waiting and not self._stop.is_set():
            waiting = [v for v in waiting if not v.reconciled]
            if waiting:
                self.notifier.status("waiting for " + ", ".join(v.name for v in waiting)
                                     + " to reconcile")
                try:
                    await asyncio.wait_for(self._stop.wait(), 0.05)
                except TimeoutError:
                    pass
        return not self._stop.is_set()

    async def _graceful_stop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Strategies stop first, so what they send on the way out (a market
        maker's cancels) still reaches live venues; then the open orders are
        kept or cancelled; venues get what is left of the stop budget."""
        self.stopping, self.ready = True, False
        self.notifier.stopping("stopping: strategies, orders, journal")
        deadline = loop.time() + self.config.daemon.stop_budget_s
        if self.node is not None:
            self.node.stop()
            if self.config.daemon.on_stop == "cancel":
                for order in self.node.oms.open_orders():
                    self.node.oms.cancel(order.strategy_id, order.client_order_id,
                                         reason="daemon stopping")
            # a simulated venue answers requests on market events; at a stop it answers
            # what waits now (the cancels above), against the last market it saw
            for sim in self.node.venues:
                sim.answer_pending()
        for venue in self.venues:
            drain = getattr(venue, "drain", None)
            left = deadline - loop.time()
            if drain is not None and left > 0:
                await drain(left)

    def _status_line(self) -> str:
        node = self.node
        if node is None:
            return "starting"
        running = sum(1 for s in self.strategy_states().values() if s == "running")
        return (f"trading {node.risk.state}; {running} strategies running; "
                f"{len(node.oms.open_orders())} open orders; "
                f"{sum(self.counts.values())} events")

    def _close(self, roller: Roller) -> None:
        """Flush, close and roll the journal; release the lock. A journal that
        cannot write is closed as it is (the next start reads it); a roll the disk
        refuses leaves its segment in the journal for the next start."""
        journal, store = self.journal, self.store
        assert journal is not None and store is not None
        try:
            try:
                last = journal.close()
            except JournalWriteError as exc:
                self._journal_failed(exc)
                last = None
            if journal.failed is None:
                self._roll_at_close(store, [*roller.pending(), *([last] if last else [])])
            log.info("journal.closed", last_seq=journal.written_seq,
                     rolled_seq=store.manifest.rolled_seq)
        finally:
            store.close()

    def _roll_at_close(self, store: EventStore, segments: list[Path]) -> None:
        try:
            store.reload_manifest()
            for segment in segments:
                if segment.exists():
                    store.roll_segment(segment)
        except (DataFault, OSError) as exc:
            if isinstance(exc, OSError) and not storage_error(exc):
                raise
            log.error("journal.roll_failed", error=one_line(exc))
            self._fail(DataFault(f"the journal could not be rolled into Parquet: "
                                 f"{one_line(exc)} (it keeps every event; the next start "
                                 "rolls it)"), EXIT_DATA)

    # -- tasks -------------------------------------------------------------------

    async def _journal_timer(self, roller: Roller) -> None:
        journal = self.journal
        assert journal is not None
        flush = self.metrics.journal_flush
        while True:
            await asyncio.sleep(TICK_S)
            t0 = time.perf_counter()
            try:
                rotate = journal.tick()
                flush.observe(time.perf_counter() - t0)
                segment = journal.rotate() if rotate else None
            except JournalWriteError as exc:
                self._journal_failed(exc)
                return
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
            if self.ready:
                self.notifier.status(self._status_line())

    async def _snapshots(self) -> None:
        assert self.bus is not None
        while True:
            await asyncio.sleep(self.config.daemon.snapshot_interval_s)
            self.bus.publish(self.node.portfolio.snapshot())

    async def _reloader(self) -> None:
        while True:
            await self._reload.wait()
            self._reload.clear()
            if self.config_path is None:
                log.warning("config.reload_unavailable", reason="no config file to re-read")
                continue
            log.info("config.reloading", path=self.config_path)
            self.strategies.reload(self.config_path)

    async def _run_venue(self, venue: Any) -> None:
        try:
            await venue.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            name = getattr(venue, "venue", "?")
            log.error("venue.failed", venue=name, error=str(exc) or repr(exc))
            if _category(exc) == "auth":
                # Binance refused the key or signature: restarting will not help.
                self._fail(FatalError(f"venue {name}: credentials refused: {exc}"), EXIT_AUTH)
            elif getattr(venue, "critical", False):
                # A live trading venue that cannot run leaves orders unwatched:
                # stop, so the supervisor restarts us and reconciliation runs.
                self._fail(FatalError(f"venue {name} failed: {exc}"))
            # Otherwise (a feed) the daemon goes on without it.


def tune_gc() -> None:
    """Once started: everything built so far (modules, config, the node) moves to
    the permanent generation, and young collections run ten times less often.
    Events are untracked msgspec structs, so little else is allocated; this cuts
    the tick-to-order tail (bench_tick_to_order, a fast period: p99 213 -> 175 us,
    p99.9 440 -> 280 us)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(7_000, 20, 100)


def _category(exc: BaseException) -> str:
    """A Binance error's category, looking inside a TaskGroup's ExceptionGroup."""
    if isinstance(exc, BaseExceptionGroup):
        return next((c for e in exc.exceptions if (c := _category(e))), "")
    return str(getattr(exc, "category", ""))


def run_kernel(config: Config, config_path: str | None = None) -> int:
    """Open the kernel and run it on uvloop (when available)."""
    kernel = Kernel(config, config_path)
    kernel.open()

    async def main() -> int:
        return await kernel.run()

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        code = asyncio.run(main())
    else:
        code = uvloop.run(main())
    if code == EXIT_DATA and kernel.fatal is not None:
        # one line on stderr, as for every other refusal (the log has the details)
        raise data_error(kernel.fatal, f"data directory {kernel.data_dir}")
    return code
