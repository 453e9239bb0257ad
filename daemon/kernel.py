"""The kernel: the daemon's entry (`run_kernel`), one run from start to exit code.

Synchronous core, thin async shell: the bus and journal are plain objects; the
kernel adds the root TaskGroup and runs, in order, what its sibling modules own:
the store's lifecycle (daemon/storage.py: lock, recovery, journal, roller,
close, data faults), the wiring (daemon/wiring.py: control API, node, alerts,
venues) and task supervision (daemon/supervisor.py: venue tasks, what a failure
means, the exit code, the graceful stop). It also runs the periodic tasks
(stats, snapshots, SIGHUP reloads) and answers the control API's views.

Start order: lock the data directory → undo interrupted store operations,
recover the journal (truncate a torn tail) and roll what earlier runs left →
open a new journal segment → recover the trading state by folding the journal
from the last snapshot (daemon/recovery.py) → connect venues → wait until every
venue is ready (a live one has reconciled with its exchange) → start
strategies → `READY=1`.

Stop (SIGTERM/SIGINT): `STOPPING=1` → strategies stop (what they send on the
way out still goes) → open orders kept or cancelled (`daemon.on_stop`) → venues
get the rest of `daemon.stop_budget_s` to finish their requests → tasks
cancelled → journal flushed, closed and rolled into Parquet → lock released.
SIGHUP re-reads the strategies (daemon/strategy_control.py).

Exit codes (daemon/errors.py): 0 after a stop, 3 bad config, 4 data directory
locked, 5 a venue refused our credentials, 6 an unusable data directory (a
damaged part recovery needs, a full or read-only disk, an unreadable manifest;
a journal that cannot write, daemon/storage.py), 70 a crash (a live venue that
cannot run, a bug).
"""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from adapters.venue import Venue
from daemon import liquidation_watch
from daemon.alerts import Alerts
from daemon.config import Config
from daemon.control import ControlServer
from daemon.control_files import load_control_token
from daemon.errors import EXIT_CONFIG, EXIT_DATA, UserError, data_error
from daemon.liquidation_watch import alert_liquidations
from daemon.metrics import KernelMetrics
from daemon.recovery import Recovered, recover, resume_policies
from daemon.storage import Storage
from daemon.strategy_control import StrategyControl
from daemon.supervisor import Supervisor, graceful_stop
from daemon.systemd import Notifier
from daemon.venue_instruments import resolve_venue_instruments
from daemon.venues import log_margin, log_trading
from daemon.wiring import build_alerts, build_node, build_venues, open_control, venue_states
from events import native
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument
from events.journal import Journal
from events.store import EventStore

if TYPE_CHECKING:
    from daemon.node import TradingNode

log = structlog.get_logger("tapeloop.kernel")

STATS_EVERY_S = 10.0


class Kernel:
    """One daemon run over `config`; `open()` then `await run()` (see the module docstring)."""

    def __init__(self, config: Config, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.data_dir = Path(config.daemon.data_dir)
        self.supervisor = Supervisor()
        self.metrics = KernelMetrics()
        self.storage = Storage(self.data_dir, config.journal, self.supervisor, self.metrics)
        self.store: EventStore | None = None  # the storage's, once open
        self.journal: Journal | None = None
        self.bus: Bus | None = None
        self.counts: Counter[str] = Counter()
        self._reload = asyncio.Event()
        self.venues: dict[str, Venue] = {}
        self.node: TradingNode | None = None
        # what venues state of their instruments (a ccxt exchange's markets), at start
        self.venue_instruments: dict[tuple[str, str], Instrument] = {}
        self.alerts: Alerts | None = None
        self.notifier = Notifier()
        self.strategies = StrategyControl(self)
        self.ready = False
        self.stopping = False
        self.started_monotonic = time.monotonic()
        self.recovered: Recovered | None = None

    @property
    def fatal(self) -> BaseException | None:
        """What stopped the daemon, if it did not stop on request."""
        return self.supervisor.fatal

    def open(self) -> None:
        """Lock and recover the data directory, open the journal and the bus."""
        self.bus = self.storage.open()
        self.store, self.journal = self.storage.store, self.storage.journal
        self.bus.subscribe_all(self._count)

    def _count(self, event: Event) -> None:
        self.counts[type(event).__name__] += 1

    def request_stop(self, reason: str = "requested") -> None:
        self.supervisor.request_stop(reason)

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
        return venue_states(self.config, self.venues)

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or a fatal error); returns the exit code."""
        storage, stop = self.storage, self.supervisor.stop
        assert storage.store is not None and self.bus is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        roller = storage.start_roller()
        self.notifier.status("recovering state from the journal")
        control: ControlServer | None = None
        try:
            # first, so /health answers "starting" while the state is recovered
            with storage.data_faults():
                token = load_control_token(self.data_dir)
            control = await open_control(self, self.config, token)
            # The configuration is final from here on: the node, risk and the venues read
            # its instruments, so whatever completes them from the venues goes before this.
            self.venue_instruments = await resolve_venue_instruments(
                self.config, stopping=stop.is_set, status=self.notifier.status)
            node, alerts = self._wire()
            check = f"`tapeloop store check --data {self.data_dir}` lists every damaged file"
            with storage.data_faults(f"the state cannot be recovered without it; {check}"):
                self.recovered = recover(node, self.bus, self.data_dir)
            log_trading(self.bus)
            log_margin(self.bus, node.portfolio)
            alert_liquidations(self.bus, alerts)
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(storage.journal_timer(), name="journal-timer"),
                    tg.create_task(roller.run(), name="roller"),
                    tg.create_task(self._stats(), name="stats"),
                    tg.create_task(self._snapshots(node), name="snapshots"),
                    tg.create_task(self.notifier.watchdog(), name="watchdog"),
                    tg.create_task(self._reloader(), name="reloader"),
                    tg.create_task(alerts.run(), name="alerts"),
                    tg.create_task(liquidation_watch.watch(
                        node.portfolio, alerts, self.config.risk.liquidation_alert_pct),
                        name="liquidation-watch"),
                ]
                tasks += [tg.create_task(self.supervisor.run_venue(venue), name=name)
                          for name, venue in self.venues.items()]
                if await self.supervisor.wait_ready(list(self.venues.values()),
                                                    self.notifier.status):
                    self._start_trading(node)
                await stop.wait()
                self.stopping, self.ready = True, False
                self.notifier.stopping("stopping: strategies, orders, journal")
                await graceful_stop(node, list(self.venues.values()), self.config.daemon)
                # alerts raised while stopping still go out (within their timeout)
                await alerts.close()
                for task in tasks:
                    task.cancel()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if self.node is not None:
                self.node.stop()
            if control is not None:
                await control.close()
            storage.close()
            self.notifier.close()
        code = self.supervisor.result()  # raises a refused start's one line
        if self.supervisor.fatal is None:
            log.info("daemon.stopped", events=sum(self.counts.values()))
        return code

    def _wire(self) -> tuple[TradingNode, Alerts]:
        """The node, the alerts and the venues on the bus (daemon/wiring.py)."""
        assert self.bus is not None and self.store is not None
        with self.storage.data_faults():
            prefix = self.store.client_id_prefix()
        self.node = node = build_node(self.config, self.bus, prefix, self.venue_instruments)
        self.storage.halt = node.risk.halt
        self.alerts = alerts = build_alerts(self.config, self.bus)
        self.venues = build_venues(self.config, self.bus, node, alerts)
        return node, alerts

    def _start_trading(self, node: TradingNode) -> None:
        """Every venue is ready: resume the policies, start the strategies, READY=1;
        or, a strategy that could not start, refuse the start (never READY with it)."""
        assert self.recovered is not None
        resume_policies(node, self.recovered)
        stop_first = self.config.daemon.on_strategy_error == "stop"
        failures = node.start(stop_at_failure=stop_first)
        refusal = node.start_refusal(failures, self.config_path or "config")
        if refusal is not None:
            # stop as for SIGTERM, then exit with this one line (run() raises it)
            log.critical("daemon.start_refused", reason=refusal)
            self.supervisor.refuse(UserError(refusal, EXIT_CONFIG))
            return
        tune_gc()
        self.ready = True
        self.notifier.ready(self._status_line())
        log.info("daemon.ready", venues=[v.name for v in self.config.venues],
                 ready_s=round(time.monotonic() - self.started_monotonic, 3),
                 code=native.STATUS)

    def _status_line(self) -> str:
        node = self.node
        if node is None:
            return "starting"
        running = sum(1 for s in self.strategy_states().values() if s == "running")
        return (f"trading {node.risk.state}; {running} strategies running; "
                f"{len(node.oms.open_orders())} open orders; "
                f"{sum(self.counts.values())} events")

    # -- periodic tasks ------------------------------------------------------------

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

    async def _snapshots(self, node: TradingNode) -> None:
        assert self.bus is not None
        while True:
            await asyncio.sleep(self.config.daemon.snapshot_interval_s)
            self.bus.publish(node.portfolio.snapshot())

    async def _reloader(self) -> None:
        while True:
            await self._reload.wait()
            self._reload.clear()
            if self.config_path is None:
                log.warning("config.reload_unavailable", reason="no config file to re-read")
                continue
            log.info("config.reloading", path=self.config_path)
            self.strategies.reload(self.config_path)


def tune_gc() -> None:
    """Once started: everything built so far (modules, config, the node) moves to
    the permanent generation, and young collections run ten times less often.
    Events are untracked msgspec structs, so little else is allocated; this cuts
    the tick-to-order tail (bench_tick_to_order, a fast period: p99 213 -> 175 us,
    p99.9 440 -> 280 us)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(7_000, 20, 100)


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
