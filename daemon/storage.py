"""The store's lifecycle while the daemon runs: the data directory from lock to close.

`Storage.open`: lock the data directory, undo interrupted store operations,
recover the journal (truncate a torn tail), open a new segment and the bus whose
journal hook records each event as it is published, before anything can react
to it. While running: `journal_timer` flushes and rotates the journal, `Roller`
rolls closed segments into Parquet in a child process. `close`: flush, close and
roll the journal, release the lock.

A fault of the data directory (a damaged file, a disk that refuses) is the
one-line EXIT_DATA refusal (`data_faults`). A journal that cannot write
(`JournalWriteError`: the disk is full or failing) refuses every event from then
on; the bus then publishes nothing (nothing may act on what was not recorded)
except the halt: trading halts with an alert (`halt`), the daemon stops and
exits 6 with one line. What the journal wrote is intact, and the next start,
once there is room, recovers all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog

from daemon.config import JournalConfig
from daemon.errors import EXIT_DATA, EXIT_LOCKED, UserError, data_error, one_line, storage_error
from daemon.metrics import KernelMetrics, LatencyHistogram
from daemon.supervisor import FatalError, Supervisor
from events.base import Event, event_type_name
from events.bus import Bus
from events.faults import DataFault, JournalWriteError
from events.journal import Journal, JournalPolicy
from events.store import EventStore, StoreLocked
from events.system import HALTED, TradingState

log = structlog.get_logger("tapeloop.kernel")

TICK_S = 0.02  # journal timer: flush window checks and rotation


class Roller:
    """Rolls closed journal segments into Parquet in a child process, one at a
    time, so encoding and compression never stall the event loop."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.queue: asyncio.Queue[Path] = asyncio.Queue()  # unbounded: a few paths at most
        self.rolled = 0
        self.current: Path | None = None  # taken from the queue, not rolled yet

    async def run(self) -> None:
        while True:
            self.current = await self.queue.get()
            # A stop that lands mid-roll waits for it: cancelled while the child
            # starts, asyncio would kill it and the segment would be in neither
            # the queue nor the Parquet (the stop then left it unrolled).
            roll = asyncio.ensure_future(self._roll(self.current))
            try:
                await asyncio.shield(roll)
            except asyncio.CancelledError:
                await roll
                raise
            finally:
                if roll.done():
                    self.current = None

    async def _roll(self, segment: Path) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "events.roll", str(self.store.root), str(segment),
            str(os.getpid()),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        self.store.reload_manifest()
        if proc.returncode == 0:
            self.rolled += 1
            log.info("journal.segment_rolled", segment=segment.name,
                     rolled_seq=self.store.manifest.rolled_seq)
        else:
            # The segment stays in the journal; the stop (or the next start) rolls it.
            log.error("journal.roll_failed", segment=segment.name, code=proc.returncode,
                      stderr=err.decode(errors="replace")[-2000:])

    def pending(self) -> list[Path]:
        """Segments not rolled yet: the one taken, if its roll never finished,
        then the queue."""
        out = [self.current] if self.current is not None and self.current.exists() else []
        self.current = None
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
        self.dispatch_seconds: LatencyHistogram | None = None
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

    @contextlib.contextmanager
    def grouped(self) -> Iterator[None]:
        """`Bus.grouped`, with its closing commit refused the way `publish` is: the
        journal failed, the kernel is stopping, the venue task need not unwind."""
        try:
            with Bus.grouped(self):
                yield
        except JournalWriteError:
            pass

    def _refused(self, event: Event) -> Event:
        if type(event) is TradingState and event.state == HALTED:  # type: ignore[attr-defined]
            journal, self.journal = self.journal, None
            try:
                return Bus.publish(self, event)
            finally:
                self.journal = journal
        return event


class Storage:
    """The data directory, its journal and the bus recording into it; see the
    module docstring. Faults stop the daemon through `supervisor`; `halt(reason)`
    (set once the trading node exists) halts trading when the journal fails."""

    def __init__(self, data_dir: Path, journal: JournalConfig, supervisor: Supervisor,
                 metrics: KernelMetrics) -> None:
        self.data_dir = data_dir
        self.policy = journal
        self.supervisor = supervisor
        self.metrics = metrics
        self.store: EventStore | None = None
        self.journal: Journal | None = None
        self.bus: TimedBus | None = None
        self.roller: Roller | None = None
        self.halt: Callable[[str], object] | None = None

    def open(self) -> TimedBus:
        """Lock and recover the data directory, open the journal and the bus."""
        t0 = time.perf_counter()
        with self.data_faults():
            try:
                # Segments an earlier run left unrolled (a crash) are rolled in the
                # background once running; recovery reads them from the journal.
                self.store = EventStore.open_writer(self.data_dir, roll=False)
            except StoreLocked as exc:
                raise UserError(str(exc), code=EXIT_LOCKED) from None
        j = self.policy
        policy = JournalPolicy(
            fsync=j.fsync, flush_interval_ms=j.flush_interval_ms,
            fsync_interval_ms=j.fsync_interval_ms, segment_max_bytes=j.segment_max_bytes,
            roll_interval_s=j.roll_interval_s, sync_wait=j.sync_wait,
        )
        self.journal = self.store.open_journal(policy)
        self.bus = TimedBus(next_seq=self.journal.next_seq, on_error=_on_handler_error,
                            journal=self._journal_stage, commit=self._journal_commit,
                            write=self._journal_write)
        self.bus.dispatch_seconds = self.metrics.bus_dispatch
        log.info("daemon.opened", data_dir=str(self.data_dir), next_seq=self.journal.next_seq,
                 open_ms=round((time.perf_counter() - t0) * 1000, 1))
        return self.bus

    @contextlib.contextmanager
    def data_faults(self, hint: str = "") -> Iterator[None]:
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

    def start_roller(self) -> Roller:
        """The roller, queued with the segments earlier runs left unrolled."""
        assert self.store is not None
        self.roller = Roller(self.store)
        for scan in self.store.journal_scans:
            self.roller.queue.put_nowait(scan.path)
        return self.roller

    def _journal_stage(self, event: Event) -> bool:
        """The bus's journal hook: stage `event`; True when the bus must commit
        before dispatching it (group commit: one fdatasync for the order events
        one dispatch produces, still before any venue task can send them)."""
        assert self.journal is not None
        try:
            return self.journal.stage(event)
        except JournalWriteError as exc:
            # The disk refused: refuse this event (TimedBus drops it) and stop.
            self._journal_failed(exc)
            raise
        except Exception as exc:
            # Nothing may act on an event the journal could not record: the
            # publish raises, and the daemon stops.
            log.critical("journal.append_failed", seq=event.seq, error=repr(exc))
            self.supervisor.fail(FatalError(f"journal append failed: {exc!r}"))
            raise

    def _journal_write(self) -> None:
        """The bus's write hook: hand what is staged to the OS (its fsync comes
        with `Bus.durable`, before anything is sent on its account)."""
        self._journal_guarded(sync=False)

    def _journal_commit(self) -> None:
        """The bus's commit hook: write and fsync what is staged."""
        self._journal_guarded(sync=True)

    def _journal_guarded(self, *, sync: bool) -> None:
        assert self.journal is not None
        try:
            self.journal.flush(sync=sync)
        except JournalWriteError as exc:
            self._journal_failed(exc)
            raise

    def _journal_failed(self, exc: JournalWriteError) -> None:
        """The journal cannot write (the module docstring): from now on the bus
        publishes nothing, trading halts with an alert, the daemon stops with EXIT_DATA."""
        assert self.bus is not None
        if self.bus.refusing:
            return
        self.bus.refusing = True
        log.critical("journal.write_failed", error=str(exc))
        self.supervisor.fail(exc, EXIT_DATA)
        if self.halt is not None:
            self.halt(f"journal write failed: {exc}")

    async def journal_timer(self) -> None:
        """Flush window checks and rotation; a rotated segment goes to the roller."""
        journal, roller = self.journal, self.roller
        assert journal is not None and roller is not None
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

    def close(self) -> None:
        """Flush, close and roll the journal; release the lock. A journal that
        cannot write is closed as it is (the next start reads it); a roll the disk
        refuses leaves its segment in the journal for the next start."""
        journal, store = self.journal, self.store
        assert journal is not None and store is not None
        pending = self.roller.pending() if self.roller is not None else []
        try:
            try:
                last = journal.close()
            except JournalWriteError as exc:
                self._journal_failed(exc)
                last = None
            if journal.failed is None:
                self._roll_at_close(store, [*pending, *([last] if last else [])])
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
            self.supervisor.fail(DataFault(
                f"the journal could not be rolled into Parquet: {one_line(exc)} (it keeps "
                "every event; the next start rolls it)"), EXIT_DATA)


def _on_handler_error(event: Event, handler: Any, exc: BaseException) -> None:
    log.error("bus.handler_failed", event_type=event_type_name(type(event)), seq=event.seq,
              handler=getattr(handler, "__qualname__", repr(handler)), error=repr(exc))
