"""What the kernel runs beside the trading node: one `adapters.venue.Venue` per
configured venue, and the log lines of trading facts.

- `make_venue`: a `sample` venue is a `SampleFeed` playing a recording into the
  bus (its simulated account is in the node); a `binance` venue is the live
  `BinanceVenue` (market data, orders, user stream, reconciliation); a `ccxt`
  venue is `adapters.ccxt.venue.CcxtVenue` (imported only then); a `binance-usdm`
  venue is `adapters.binance_usdm.venue.UsdmVenue` (perpetuals); a `sim` venue is a
  `SimulatedVenue` (its account is the node's; nothing to run).
  Every kind is one branch building its venue from its `[[venues]]` entry.
- `log_trading`: one structured log line per order, fill, position, strategy
  and trading-state fact, with its context bound (journald reads these).
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from adapters.venue import Venue
from daemon.config import Config, VenueConfig
from daemon.errors import EXIT_CONFIG, UserError
from events.bus import Bus
from events.orders import Fill, OrderRejected, OrderSubmitted
from events.perp import FundingPayment, LeverageChanged, Liquidation, MarginModeChanged
from events.state import PositionChanged
from events.system import StrategyStatus, TradingState

if TYPE_CHECKING:
    from daemon.node import TradingNode

log = structlog.get_logger("tapeloop.kernel")


def make_venue(vcfg: VenueConfig, config: Config, bus: Bus, node: TradingNode) -> Venue:
    """The venue the kernel runs for `vcfg` (not yet subscribed); a user's mistake
    in its entry is one line, exit 3."""
    if vcfg.kind == "sample":
        from adapters.sample.feed import SampleFeed

        symbols = [i.symbol for i in config.instruments if i.venue == vcfg.name]
        assert vcfg.file is not None  # the config checks this
        try:
            return SampleFeed(
                venue=vcfg.name, path=vcfg.file, symbol=symbols[0] if symbols else "",
                speed=None if vcfg.speed == "max" else float(vcfg.speed), loop=vcfg.loop,
                publish=bus.publish,
            )
        except (OSError, EOFError, ValueError, zlib.error) as exc:  # EOFError: a cut gzip
            where = "" if str(vcfg.file) in str(exc) else f"{vcfg.file}: "
            raise UserError(f"venue {vcfg.name!r}: {where}{exc}", code=EXIT_CONFIG) from None
    if vcfg.kind == "binance":
        return binance_venue(vcfg, bus, node)
    if vcfg.kind == "binance-usdm":
        return usdm_venue(vcfg, config, bus, node)
    if vcfg.kind == "ccxt":
        from adapters.ccxt.venue import ccxt_venue

        try:
            return ccxt_venue(vcfg, bus, node)
        except ValueError as exc:
            raise UserError(f"venue {vcfg.name!r}: {exc}".replace(
                f"venue {vcfg.name!r}: venue {vcfg.name!r}", f"venue {vcfg.name!r}"),
                code=EXIT_CONFIG) from None
    if vcfg.kind == "sim":
        from adapters.sim.paper import SimulatedVenue

        return SimulatedVenue(vcfg.name)
    # the config admits only the kinds above
    raise AssertionError(f"venue {vcfg.name!r}: kind {vcfg.kind!r} has no venue")


def binance_venue(vcfg: VenueConfig, bus: Bus, node: TradingNode) -> Venue:
    from adapters.binance.endpoints import resolve_endpoints
    from adapters.binance.signing import load_credentials
    from adapters.binance.venue import BinanceVenue

    try:
        endpoints = resolve_endpoints(vcfg.endpoints)
        credentials = load_credentials(vcfg.credentials) if vcfg.trade else None
    except ValueError as exc:
        raise UserError(f"venue {vcfg.name!r}: {exc}", code=EXIT_CONFIG) from None
    instruments = [i for k, i in node.instruments.items() if k[0] == vcfg.name]
    log.info("venue.binance", venue=vcfg.name, rest=endpoints.rest, streams=endpoints.streams,
             ws_api=endpoints.ws_api, trade=vcfg.trade,
             credentials=None if credentials is None else credentials.kind)
    return BinanceVenue(
        vcfg.name, instruments, bus, endpoints=endpoints, credentials=credentials,
        oms=node.oms, risk=node.risk, trade=vcfg.trade, streams=vcfg.streams,
        depth_limit=vcfg.depth_limit, stale_after_s=vcfg.stale_after_s,
        recv_window_ms=vcfg.recv_window_ms,
        unresolved_alert_after_s=vcfg.unresolved_alert_after_s)


def usdm_venue(vcfg: VenueConfig, config: Config, bus: Bus, node: TradingNode) -> Venue:
    """The live Binance USD-M venue: `endpoints` as Spot's (testnet, production or
    a URL; `TAPELOOP_BINANCE_USDM_ENDPOINTS` overrides), each instrument's
    `leverage` and `margin_mode` set at start, funding already journaled never
    published again (read from the store when the venue starts)."""
    from adapters.binance.signing import load_credentials
    from adapters.binance_usdm.endpoints import resolve_usdm_endpoints
    from adapters.binance_usdm.venue import UsdmVenue

    try:
        endpoints = resolve_usdm_endpoints(vcfg.endpoints)
        credentials = load_credentials(vcfg.credentials) if vcfg.trade else None
    except ValueError as exc:
        raise UserError(f"venue {vcfg.name!r}: {exc}", code=EXIT_CONFIG) from None
    instruments = [i for k, i in node.instruments.items() if k[0] == vcfg.name]
    settings = {i.symbol: (i.leverage, i.margin_mode) for i in config.instruments
                if i.venue == vcfg.name}
    data_dir = Path(config.daemon.data_dir)

    def journal_funding() -> list[FundingPayment]:
        from replay.reader import read_events

        if not (data_dir / "store.json").exists() and not (data_dir / "journal").exists():
            return []  # a first start: nothing journaled yet
        return [e for batch in read_events(data_dir, types=["FundingPayment"], journal=True)
                for e in batch if isinstance(e, FundingPayment) and e.venue == vcfg.name]

    def positions() -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for p in node.portfolio.positions(venue=vcfg.name):
            out[p.symbol] = out.get(p.symbol, Decimal(0)) + p.qty
        return out

    log.info("venue.binance_usdm", venue=vcfg.name, rest=endpoints.rest,
             streams=endpoints.streams, trade=vcfg.trade,
             credentials=None if credentials is None else credentials.kind)
    return UsdmVenue(
        vcfg.name, instruments, bus, endpoints=endpoints, credentials=credentials,
        oms=node.oms, risk=node.risk, trade=vcfg.trade, streams=vcfg.streams,
        settings=settings, journal_funding=journal_funding, positions=positions,
        depth_limit=vcfg.depth_limit, stale_after_s=vcfg.stale_after_s,
        recv_window_ms=vcfg.recv_window_ms,
        unresolved_alert_after_s=vcfg.unresolved_alert_after_s)


def log_trading(bus: Bus) -> None:
    """One log line per trading fact, with its context bound."""
    sub = bus.subscribe
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
    sub(FundingPayment, lambda e: log.info(
        "funding.received" if e.amount >= 0 else "funding.paid", strategy_id=e.strategy_id,
        venue=e.venue, symbol=e.symbol, amount=e.amount, currency=e.currency, rate=e.rate,
        mark=e.mark, qty=e.qty, funding_ts=e.funding_ts))
    sub(Liquidation, lambda e: log.error(
        "position.liquidated", strategy_id=e.strategy_id, venue=e.venue, symbol=e.symbol,
        side=e.side, qty=e.qty, price=e.price, mark=e.mark, fee=e.fee))
    sub(LeverageChanged, lambda e: log.info(
        "margin.leverage", venue=e.venue, symbol=e.symbol, leverage=e.leverage))
    sub(MarginModeChanged, lambda e: log.info(
        "margin.mode", venue=e.venue, symbol=e.symbol, mode=e.mode))


def log_margin(bus: Bus, portfolio: Any) -> None:
    """After each change of a perpetual position, one line with the account's
    position there: margin, liquidation price and funding so far."""
    def changed(e: PositionChanged) -> None:
        for p in portfolio.perp_positions(venue=e.venue, include_flat=True):
            if p.symbol == e.symbol:
                log.info("margin.position", venue=p.venue, symbol=p.symbol, qty=p.qty,
                         entry_price=p.entry_price, mark=p.mark, leverage=p.leverage,
                         margin_mode=p.margin_mode, initial_margin=p.initial_margin,
                         maintenance_margin=p.maintenance_margin,
                         liquidation_price=p.liquidation_price, funding=p.funding)
    bus.subscribe(PositionChanged, changed)
