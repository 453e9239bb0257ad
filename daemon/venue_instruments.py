"""Instruments a venue states itself: a `kind = "ccxt"` venue's markets, loaded at start.

For every ccxt venue, `resolve_venue_instruments` loads the exchange's markets
(`load_markets`, retried with backoff while the exchange does not answer, until a stop)
and maps the symbols the config names on it (its strategies' symbols and its
`[[instruments]]` entries) with `adapters.ccxt.markets`. The result completes the
config's instruments: `[[instruments]]` is optional for a ccxt venue, and an entry
given for one must agree with the exchange (a disagreement is one line, exit 3). A
symbol a strategy trades that the exchange lists but tapeloop does not trade
(significant-digit grids, non-spot, no grid) is one line too; record-only venues
record such markets.

It runs before the trading node is built (daemon/kernel.py: "the configuration is
final from here on"), so the node, risk and every venue see one set of instruments.
ccxt is imported only when a ccxt venue is configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from daemon.config import Config, VenueConfig
from daemon.errors import EXIT_AUTH, EXIT_CONFIG, UserError
from events.instruments import Instrument

log = structlog.get_logger("tapeloop.venues")

ExchangeFactory = Callable[[VenueConfig], Any]


def venue_symbols(config: Config, venue: str) -> list[str]:
    """The symbols the config names on `venue`: its instruments', then its strategies'."""
    named = [i.symbol for i in config.instruments if i.venue == venue]
    named += [s for strat in config.strategies if strat.venue == venue for s in strat.symbols]
    return list(dict.fromkeys(named))


def traded_symbols(config: Config, venue: str) -> set[str]:
    return {s for strat in config.strategies if strat.venue == venue and strat.enabled
            for s in strat.symbols}


async def resolve_venue_instruments(
        config: Config, *, stopping: Callable[[], bool] = lambda: False,
        exchange_factory: ExchangeFactory | None = None,
        status: Callable[[str], object] = lambda _: None) -> dict[tuple[str, str], Instrument]:
    """The instruments the ccxt venues' exchanges state, by (venue, symbol); {} when no
    ccxt venue is configured. UserError (one line) for what a person must fix."""
    venues = [v for v in config.venues if v.kind == "ccxt"]
    if not venues:
        return {}
    from adapters.ccxt.markets import MarketError, disagreement, markets_for
    from adapters.ccxt.orders import trading_problem

    if exchange_factory is None:
        from adapters.ccxt.exchange import build_exchange as exchange_factory
    configured = {(i.venue, i.symbol): i.instrument() for i in config.instruments}
    out: dict[tuple[str, str], Instrument] = {}
    for vcfg in venues:
        symbols = venue_symbols(config, vcfg.name)
        if not symbols:
            continue
        try:
            exchange = exchange_factory(vcfg)
        except ValueError as exc:
            raise UserError(f"venue {vcfg.name!r}: {exc}", code=EXIT_CONFIG) from None
        if vcfg.trade and (problem := trading_problem(exchange)) is not None:
            # before any network: an exchange where an order could be lost is refused
            # at once, even while it cannot be reached
            await exchange.close()
            raise UserError(f"venue {vcfg.name!r}: {problem}", code=EXIT_CONFIG)
        try:
            status(f"loading {vcfg.exchange}'s markets for venue {vcfg.name}")
            markets = await _load_markets(vcfg, exchange, stopping)
            if markets is None:  # stopped first
                return out
            mode = int(exchange.precisionMode)
        finally:
            await exchange.close()
        try:
            found = markets_for(vcfg.name, markets, mode, symbols)
        except MarketError as exc:
            raise UserError(str(exc), code=EXIT_CONFIG) from None
        traded = traded_symbols(config, vcfg.name) if vcfg.trade else set()
        for market in found:
            inst = market.instrument
            if (mine := configured.get(inst.key)) is not None and (
                    line := disagreement(mine, inst)):
                raise UserError(line, code=EXIT_CONFIG)
            if market.refused and inst.symbol in traded:
                raise UserError(market.refused, code=EXIT_CONFIG)
            out[inst.key] = inst
            log.info("venue.instrument", venue=vcfg.name, symbol=inst.symbol,
                     tick_size=str(inst.tick_size), step_size=str(inst.step_size),
                     min_notional=str(inst.min_notional), status=inst.status,
                     refused=market.refused)
    return out


async def _load_markets(vcfg: VenueConfig, exchange: Any, stopping: Callable[[], bool],
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
                        ) -> dict[str, Any] | None:
    """`exchange.load_markets()`, retried (0.5 s doubling to 30 s) while the exchange is
    unreachable; None if a stop came first. Refused keys are exit 5, one line."""
    import ccxt

    delay = 0.5
    while not stopping():
        try:
            return dict(await exchange.load_markets())
        except ccxt.AuthenticationError as exc:
            raise UserError(f"venue {vcfg.name!r}: {vcfg.exchange} refused the credentials: "
                            f"{_first_line(exc)}", code=EXIT_AUTH) from None
        except (ccxt.NetworkError, ccxt.ExchangeNotAvailable) as exc:
            log.warning("venue.markets_unavailable", venue=vcfg.name, error=_first_line(exc),
                        retry_in_s=delay)
        await sleep(delay)
        delay = min(delay * 2, 30.0)
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
