"""The trading node: the components one run wires onto its bus.

The same objects serve paper trading, live trading and replay; only the clock,
the venues and where market data comes from differ:

- replay: every configured venue becomes a simulated venue of the same name and
  instruments, fed by the stored market data the replay dispatches;
- paper (`kind = "sim"` or `"sample"`): a simulated venue of that name, fed by
  the live (or sample) market data published on the bus.

Subscription order is the order-flow contract (daemon/trading/FLOW.md):
venues, OMS, risk, portfolio, then the strategy runtime, so a venue has seen a
market event before any strategy can react to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import structlog

from adapters.sim.venue import SimVenue
from daemon.config import Config, InstrumentConfig, StrategyConfig, VenueConfig
from daemon.errors import UserError
from daemon.strategies.routing import RUNNING
from daemon.strategies.runtime import StartFailure, StrategyError, StrategyRuntime, paper_venue
from daemon.trading.oms import OMS
from daemon.trading.order_book import Quarantined
from daemon.trading.portfolio import Portfolio, load_positions
from daemon.trading.risk import RiskEngine
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument, to_decimal
from events.system import HALTED
from replay.clock import Clock

log = structlog.get_logger("tapeloop.node")


def instruments_from_config(config: Config) -> dict[tuple[str, str], Instrument]:
    return {(i.venue, i.symbol): i.instrument() for i in config.instruments}


def perp_settings(config: Config) -> dict[tuple[str, str], tuple[int, str]]:
    """Each configured perpetual's (leverage, margin mode), keyed like instruments."""
    return {(i.venue, i.symbol): (i.leverage, i.margin_mode)
            for i in config.instruments if i.perpetual}


def sim_venue(vcfg: VenueConfig, instruments: list[Instrument], bus: Bus,
              now_ns: Callable[[], int], *, name: str | None = None,
              instrument_configs: Iterable[InstrumentConfig] = ()) -> SimVenue:
    """A simulated venue configured as `vcfg`; named `name` (a paper twin)
    while matching against `vcfg.name`'s market data. `instrument_configs`
    (the config's `[[instruments]]`) give each perpetual of `vcfg` its
    leverage and margin mode."""
    perps = [i for i in instrument_configs if i.venue == vcfg.name and i.perpetual]
    return SimVenue(
        name or vcfg.name, instruments, bus.publish, now_ns, data_venue=vcfg.name,
        fill_model=vcfg.fill_model, slippage_model=vcfg.slippage_model,
        slippage_bps=vcfg.slippage_bps,
        volume_limit_pct=10.0 if vcfg.volume_limit_pct is None else vcfg.volume_limit_pct,
        maker_fee_bps=vcfg.maker_fee_bps, taker_fee_bps=vcfg.taker_fee_bps,
        latency_ms=vcfg.latency_ms,
        balances={c: to_decimal(v) for c, v in sorted(vcfg.balances.items())},
        allow_short=vcfg.allow_short,
        fee_asset=vcfg.fee_asset or ("received" if vcfg.kind == "binance" else "quote"),
        funding_rate=vcfg.funding_rate, funding_interval_h=vcfg.funding_interval_h,
        liquidation_fee_pct=vcfg.liquidation_fee_pct,
        leverage={i.symbol: i.leverage for i in perps},
        margin_mode={i.symbol: i.margin_mode for i in perps},
    )


class TradingNode:
    """Venues (simulated where asked), OMS, risk, portfolio and strategies."""

    def __init__(self, config: Config, bus: Bus, clock: Clock, *, replay: bool,
                 id_prefix: str = "",
                 venue_instruments: Mapping[tuple[str, str], Instrument] | None = None
                 ) -> None:
        """`id_prefix` starts every client order id (the data directory's, so ids are
        unique for ever on an account; see events.store.Manifest). `venue_instruments`:
        what venues state of their own instruments (a ccxt exchange's markets,
        daemon/venue_instruments.py), completing and overriding the config's."""
        self.config = config
        self.bus = bus
        self.clock = clock
        now_ns = clock.now_ns
        self.instruments = instruments_from_config(config)
        self.instruments.update(venue_instruments or {})
        self.venues: list[SimVenue] = []
        twins: dict[str, str] = {}  # paper twin -> the venue whose market it trades
        for vcfg in config.venues:
            insts = [i for k, i in self.instruments.items() if k[0] == vcfg.name]
            if replay or vcfg.kind in ("sim", "sample"):
                self.venues.append(sim_venue(vcfg, insts, bus, now_ns,
                                             instrument_configs=config.instruments))
            if any(s.paper and s.venue == vcfg.name for s in config.strategies):
                # `paper = true` strategies trade on a simulated twin of their
                # venue, fed by the same market data (the others trade for real)
                twin = paper_venue(vcfg.name)
                twins[twin] = vcfg.name
                twin_insts = [msgspec.structs.replace(i, venue=twin) for i in insts]
                self.instruments.update((i.key, i) for i in twin_insts)
                self.venues.append(sim_venue(vcfg, twin_insts, bus, now_ns, name=twin,
                                             instrument_configs=config.instruments))
        for venue in self.venues:
            venue.subscribe(bus)
        # the portfolio applies exactly the fills the OMS applied (one decision: a
        # repeated trade or a quarantined fill changes neither)
        self.portfolio = Portfolio(bus.publish, now_ns, self.instruments,
                                   account_currency=config.account.currency,
                                   rates=config.account.decimal_rates,
                                   fill_gate=lambda fill: self.oms.fill_applied(fill),
                                   perp_settings=perp_settings(config))
        for twin, data_venue in twins.items():
            self.portfolio.mark_as(twin, data_venue)
        limits = {s.id: s.risk for s in config.strategies}
        twin_configs = [msgspec.structs.replace(v, name=t) for t, d in twins.items()
                        for v in config.venues if v.name == d]
        self.risk = RiskEngine(config.risk, limits, self.instruments, self.portfolio, now_ns,
                               bus.publish, venues=[*config.venues, *twin_configs])
        self.oms = OMS(bus.publish, now_ns, self.risk, id_prefix=id_prefix,
                       instruments=self.instruments)
        self.oms.on_quarantine = self._on_quarantine
        self.oms.subscribe(bus)
        self.risk.subscribe(bus)
        self.portfolio.subscribe(bus)
        # Fail-safe core: a handler of the OMS, risk, portfolio or a simulated venue
        # that raises leaves their states diverged; trading halts (an alert goes out).
        self._core = {id(c) for c in (self.oms, self.risk, self.portfolio, *self.venues)}
        self._on_error = bus.on_error
        bus.on_error = self._on_handler_error
        self.runtime = StrategyRuntime(bus, clock, self.oms, self.portfolio, self.instruments,
                                       seed_positions=self._seed_positions)
        for scfg in config.strategies:
            try:
                # live: one that cannot be built is a start failure, reported with
                # the others (`start`); a replay refuses it at once
                self.runtime.add(scfg, keep_failed=not replay)
            except StrategyError as exc:
                raise UserError(str(exc), code=3) from None

    def _on_quarantine(self, entry: Quarantined) -> None:
        self.risk.halt(f"quarantined {entry.event_type} seq {entry.seq} "
                       f"({entry.client_order_id}): {entry.reason}")

    def _on_handler_error(self, event: Event, handler: Any, exc: BaseException) -> None:
        self._on_error(event, handler, exc)
        owner = getattr(handler, "__self__", None)
        if id(owner) in self._core:
            reason = (f"{type(owner).__name__} failed on {type(event).__name__} "
                      f"seq {event.seq}: {exc!r}")[:500]
            try:
                self.risk.halt(reason)
            except Exception as halt_exc:  # the risk engine itself is broken
                self.risk.state = HALTED
                log.critical("trading.halt_failed", reason=reason, error=repr(halt_exc))

    def _seed_positions(self, scfg: StrategyConfig) -> None:
        """Seed a strategy's `initial_positions` once: at a restart (or a reload) the
        journal already holds them, and what it traded since."""
        if any(p.strategy_id == scfg.id for p in self.portfolio.positions(include_flat=True)):
            log.info("strategy.seed_skipped", strategy_id=scfg.id,
                     reason="the journal holds its positions")
            return
        path = scfg.initial_positions
        assert path is not None
        try:
            positions = load_positions(Path(path))
        except (OSError, ValueError) as exc:
            raise UserError(f"strategies[{scfg.id}].initial_positions: {exc}") from None
        if scfg.paper:  # a paper strategy holds them on its venue's twin
            twin = paper_venue(scfg.venue)
            positions = [msgspec.structs.replace(p, venue=twin) if p.venue == scfg.venue else p
                         for p in positions]
        self.portfolio.seed(scfg.id, positions)
        # On a simulated venue the account must hold what the file says it does,
        # or the first sell of a seeded long would be refused for lack of base.
        simulated = {v.name: v for v in self.venues}
        for p in positions:
            venue = simulated.get(p.venue)
            if venue is not None and p.qty:
                venue.seed_position(p.symbol, p.qty)

    def start(self, *, stop_at_failure: bool = False) -> list[StartFailure]:
        """Publish the venues' opening balances, then start the strategies; returns
        those that failed to start (`StrategyRuntime.start`)."""
        for venue in self.venues:
            venue.start()
        self.risk.schedule(self.clock)
        return self.runtime.start(stop_at_failure=stop_at_failure)

    def start_refusal(self, failures: list[StartFailure], file: str) -> str | None:
        """The one line refusing a start whose strategies did not all start, or None
        to go on. `[daemon] on_strategy_error = "stop"` refuses any failure;
        "continue" goes on while another strategy runs (each failure is then a
        StrategyStatus failed and an alert), never with none running."""
        if not failures:
            return None
        runtime = self.runtime
        running = [s for s in runtime.strategy_ids if runtime.status(s) == RUNNING]
        if self.config.daemon.on_strategy_error == "continue" and running:
            log.error("strategy.start_failed", strategy_ids=[f.strategy_id for f in failures],
                      running=running)
            return None
        first = failures[0]
        index = next(i for i, s in enumerate(self.config.strategies) if s.id == first.strategy_id)
        error = " ".join(first.error.splitlines())  # an exception's own repr may not be one line
        error = error if len(error) <= 500 else error[:499] + "…"
        tail = "" if self.config.daemon.on_strategy_error == "stop" else "; no strategy runs"
        return (f"{file}: $.strategies[{index}]: strategy {first.strategy_id!r} failed to "
                f"start ({first.hook}): {error}{tail}")

    def stop(self) -> None:
        self.runtime.stop()

    def equity(self) -> Decimal:
        return self.portfolio.equity()
