"""`tapeloop replay`: the trading node on a replay clock, fed from the store.

The run writes only its own events (orders, fills, positions, balances, state)
to `RUN_DIR/events/` through its own journal: the input market data is
dispatched to the components, not republished, so it is not copied. Every
component is stamped by the replay clock (the time of the event being
processed), never by the wall clock, so the same input and config give
byte-identical output events.
"""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import structlog

from daemon.config import Config
from daemon.errors import EXIT_LOCKED, UserError
from daemon.node import TradingNode
from events.bus import Bus
from events.journal import JournalPolicy
from events.orders import Fill, OrderRejected
from events.perp import FundingPayment, Liquidation
from events.registry import MARKET_TYPES
from events.store import EventStore, StoreLocked, list_parts
from replay.clock import ReplayClock
from replay.driver import reader_switch_interval, replay_into, replay_into_paced
from replay.pacing import Pacer
from replay.reader import read_events
from replay.report import ReportBuilder, summary_lines

log = structlog.get_logger("tapeloop.replay")

EQUITY_PERIOD_NS = 60 * 1_000_000_000  # one equity sample per minute of event time


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    data_dir: Path
    out_dir: Path
    date_from: date | None = None
    date_to: date | None = None
    speed: float | None = None  # None: as fast as possible
    coalesce: bool = True  # absorb quiet runs of trades (False: one by one, for tests)
    monte_carlo: int | None = None  # paths of a bootstrap of the closed trades (None: none)
    mc_seed: int = 0
    # what the user named as --data, for messages (an s3:// URL whose mirror is data_dir)
    data_name: str | None = None

    @property
    def data_shown(self) -> str:
        return self.data_name if self.data_name is not None else str(self.data_dir)


def _market_types() -> list[str]:
    return [t.__name__ for t in MARKET_TYPES]


def _scan_footers(spec: ReplaySpec, venues: set[str]) -> tuple[int, bool]:
    """From the Parquet footers alone (cheap): the rows to replay (the progress
    bar's total) and whether any may belong to a venue not configured (then
    each event is checked; otherwise no per-event filter is needed)."""
    from replay.runs import read_footer

    total = 0
    foreign = False
    for part in list_parts(spec.data_dir / "events", types=_market_types(),
                           date_from=spec.date_from, date_to=spec.date_to):
        meta = read_footer(part.path)  # a damaged part: StoreError, one line, exit 6
        total += meta.num_rows
        column = meta.schema.to_arrow_schema().get_field_index("venue")
        for rg in range(meta.num_row_groups):
            stats = meta.row_group(rg).column(column).statistics if column >= 0 else None
            # one configured venue in the whole row group, or we check each event
            if stats is None or not stats.has_min_max or stats.min != stats.max \
                    or stats.min not in venues:
                foreign = True
    return total, foreign


def _open_out(out_dir: Path) -> EventStore:
    if (out_dir / "events").exists() and any((out_dir / "events").iterdir()):
        raise UserError(f"--out {out_dir}: already holds a run; choose a new directory")
    try:
        return EventStore.open_writer(out_dir, durable=False)  # a run is re-made by replaying
    except StoreLocked as exc:
        raise UserError(str(exc), code=EXIT_LOCKED) from None


# An equity sample whose portfolio has seen no mark and no state change since the
# last one repeats its figures, and so does one whose portfolio reads no mark
# and has seen no state change (tests turn it off to compare).
_REUSE_SAMPLES = True


def run_replay(config: Config, spec: ReplaySpec) -> dict:
    """Replay the stored market data through the trading node; write the
    report files and return the report dict."""
    report, extra, events_in, wall_s = replay_report(config, spec)
    result = report.write(spec.out_dir, events_in=events_in, wall_s=wall_s, extra=extra)
    log.info("replay.done", out=str(spec.out_dir), events_in=events_in, wall_s=round(wall_s, 3))
    return result


def replay_report(config: Config, spec: ReplaySpec
                  ) -> tuple[ReportBuilder, dict | None, int, float]:
    """The replay itself (its events written to `spec.out_dir/events`): the report
    builder, the report's extra sections, the events fed and the loop's wall time.
    `run_replay` writes the report files from them; a sweep job that keeps no run
    directory takes its figures from the builder and writes none."""
    if not (spec.data_dir / "events").is_dir():
        raise UserError(f"--data {spec.data_shown}: no events/ (import or record data first)")
    symbols = sorted({s for st in config.strategies for s in st.symbols}
                     | {i.symbol for i in config.instruments})
    venues = {v.name for v in config.venues}
    total, foreign = _scan_footers(spec, venues)
    store = _open_out(spec.out_dir)
    # From the first read on, not only in the loop: the read-ahead thread starts
    # reading while the node is built (see replay.driver.READER_SWITCH_INTERVAL_S).
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(reader_switch_interval(switch_interval))
    try:
        journal = store.open_journal(JournalPolicy(fsync="never", roll_interval_s=1e12,
                                                   segment_max_bytes=1 << 40))
        bus = Bus(next_seq=journal.next_seq, journal=journal.append)
        batches = read_events(spec.data_dir, date_from=spec.date_from, date_to=spec.date_to,
                              lazy=spec.coalesce and spec.speed is None,
                              types=_market_types(), symbols=symbols or None)
        first = next(batches, None)
        if first is None:
            raise UserError(f"--data {spec.data_shown}: no market data for {', '.join(symbols)} "
                            "in the date range")
        clock = ReplayClock(start_ns=first[0].ts_event)
        node = TradingNode(config, bus, clock, replay=True)
        report = ReportBuilder(period_ns=EQUITY_PERIOD_NS)
        bus.subscribe(Fill, report.add_fill)
        bus.subscribe(OrderRejected, lambda e: report.count_rejection(e.check or "venue"))
        bus.subscribe(FundingPayment, report.add_funding)
        bus.subscribe(Liquidation, report.add_liquidation)
        # initial margin in use / margin balance, account-wide (None: no perpetual
        # position): sampled beside equity when the run has perpetuals
        margin_usage = node.portfolio.margin_usage \
            if any(i.perpetual for i in node.instruments.values()) else None

        # the report's price charts and benchmark: each instrument's mark, taken
        # only at equity samples (once a minute of event time), never per event
        marked = sorted(node.instruments)

        portfolio = node.portfolio
        last: list = [None, None]  # the valuation's versions, and what it gave
        account = portfolio.account_currency
        config_venues = sorted(venues)
        unmarked: list = [None, False]  # state_version, and whether no mark counted then

        def marks_unread() -> bool:
            """Whether the valuation reads no mark in the portfolio's present state
            (a flat account holding only its own currency): then a sample whose
            state has not changed since the last one has its figures, whatever
            the marks did. Asked once per state_version."""
            if unmarked[0] != portfolio.state_version:
                unmarked[:] = portfolio.state_version, (
                    margin_usage is None
                    and not portfolio.has_any_position()
                    # every position (flat) quoted in the account currency, no
                    # fee in a third one: its realized part needs no rate
                    and (not marked or portfolio.mark_exposure(*marked[0]) is not None)
                    and all(c == account or not amount for v in config_venues
                            for c, amount in portfolio.balances(v).items()))
            return unmarked[1]  # type: ignore[no-any-return]

        def add_sample(equity: Decimal | None = None) -> None:
            now = clock.now_ns()
            versions = (portfolio.mark_version, portfolio.state_version)
            if equity is None and versions == last[0] and _REUSE_SAMPLES:
                # nothing a valuation reads has changed (a quiet night): the same figures
                equity, by_strategy, marks, usage = last[1]
            else:
                marks = {}
                for venue, symbol in marked:
                    if marks.get(symbol) is None:
                        marks[symbol] = portfolio.last_price(venue, symbol)
                if equity is None and _REUSE_SAMPLES and last[0] is not None \
                        and versions[1] == last[0][1] and marks_unread():
                    # only marks moved, and none is read (a flat account): the
                    # same figures at the new marks
                    equity, by_strategy, _, usage = last[1]
                else:
                    if equity is None:
                        equity = portfolio.equity()
                    by_strategy = portfolio.equity_by_strategy()
                    usage = margin_usage() if margin_usage is not None else None
                last[:] = versions, (equity, by_strategy, marks, usage)
            report.add_equity(now, equity, by_strategy, marks)
            if margin_usage is not None:
                report.add_margin_usage(now, usage)

        def sample(_timer: object) -> None:
            add_sample()
            clock.set_timer("equity", clock.now_ns() + EQUITY_PERIOD_NS, sample, passive=True)

        node.start()
        initial_equity = node.portfolio.equity()
        add_sample(initial_equity)
        clock.set_timer("equity", clock.now_ns() + EQUITY_PERIOD_NS, sample, passive=True)

        def stream():
            if not foreign:
                yield first
                yield from batches
                return
            yield _own_venues(first, venues)
            for batch in batches:
                yield _own_venues(batch, venues)

        t0 = time.perf_counter()
        # The loop allocates millions of short-lived objects and no cycles that
        # matter: freeze what exists and keep the cyclic collector out of the
        # hot path (reference counting still frees everything at once). No
        # collection first: it would walk every object the imports made (25 ms)
        # to free the few cycles among them.
        gc.freeze()
        gc.disable()
        try:
            events_in = _drive(bus, clock, stream(), total, spec.speed, spec.coalesce)
        finally:
            gc.enable()
            gc.unfreeze()
        wall_s = time.perf_counter() - t0
        node.stop()
        add_sample()
        report.set_final(**node.portfolio.final_report(initial_equity),
                         quotes={s: i.quote for (_, s), i in sorted(node.instruments.items())})
        segment = journal.close()
        if segment is not None:
            store.roll_segment(segment)
    finally:
        sys.setswitchinterval(switch_interval)
        store.close()
    extra = None
    if spec.monte_carlo is not None:
        extra = {"monte_carlo": _monte_carlo(report, node, initial_equity, spec)}
    return report, extra, events_in, wall_s


def _monte_carlo(report: ReportBuilder, node: TradingNode, initial_equity: Decimal,
                 spec: ReplaySpec) -> dict:
    from daemon.research.montecarlo import monte_carlo_of_trades

    def settlement(venue: str, symbol: str) -> str | None:
        inst = node.instruments.get((venue, symbol))
        return inst.quote if inst is not None else None

    assert spec.monte_carlo is not None
    return monte_carlo_of_trades(report.closed_trades(), settlement,
                                 node.portfolio.account_currency, initial_equity,
                                 spec.monte_carlo, spec.mc_seed)


def _own_venues(batch: list, venues: set[str]) -> list:
    """Market data of the configured venues only (a store may hold others)."""
    return [e for e in batch if e.venue in venues]


def _drive(bus: Bus, clock: ReplayClock, batches, total: int, speed: float | None,
           coalesce: bool) -> int:
    if speed is not None:
        import asyncio

        return asyncio.run(replay_into_paced(bus, clock, batches, Pacer(speed)))
    if not sys.stderr.isatty():
        return replay_into(bus, clock, batches, coalesce)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    done = 0
    columns = (TextColumn("replay"), BarColumn(),
               TextColumn("{task.completed:,}/{task.total:,}"), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("replay", total=total or None)

        def counted():
            nonlocal done
            for batch in batches:
                yield batch
                done += len(batch)
                progress.update(task, completed=done)

        return replay_into(bus, clock, counted(), coalesce)


def print_summary(report: dict) -> None:
    for line in summary_lines(report):
        print(line)


__all__ = ["Decimal", "ReplaySpec", "print_summary", "replay_report", "run_replay"]
