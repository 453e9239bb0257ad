"""What `tapeloop run` builds before READY, built from a config without a store, a
control socket or a network: a config check-config accepts must build here without a
refusal (issue 10 item 4: check-config refuses first what run would refuse at start)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from daemon.config import Config, load_config
from daemon.errors import UserError
from events.instruments import Instrument


@contextlib.contextmanager
def credentials(config: object) -> Iterator[None]:
    """Fake keys for every trading Binance venue: the environment, not the config,
    holds them (check-config cannot know them; run refuses without)."""
    names = [f"{v.credentials}_API_{k}" for v in config.venues  # type: ignore[attr-defined]
             if v.kind in ("binance", "binance-usdm", "ccxt") and v.trade
             for k in ("KEY", "SECRET")]
    overrides = ["TAPELOOP_BINANCE_ENDPOINTS", "TAPELOOP_BINANCE_USDM_ENDPOINTS"]
    saved = {n: os.environ.get(n) for n in [*names, *overrides]}
    for name in overrides:
        os.environ.pop(name, None)
    os.environ.update({n: "fuzz" for n in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def exchange_instruments(config: Config) -> dict[tuple[str, str], Instrument]:
    """What a ccxt venue's exchange would state at start for the symbols named on it
    and not in `[[instruments]]` (the probe has no network): a BTC/USDT-like grid."""
    configured = {(i.venue, i.symbol) for i in config.instruments}
    out = {}
    for strat in config.strategies:
        kind = next((v.kind for v in config.venues if v.name == strat.venue), "")
        for symbol in strat.symbols:
            if kind == "ccxt" and (strat.venue, symbol) not in configured:
                base, _, quote = symbol.partition(":")[0].partition("/")
                out[strat.venue, symbol] = Instrument(
                    venue=strat.venue, symbol=symbol, base=base or symbol, quote=quote or "USDT",
                    tick_size=Decimal("0.01"), step_size=Decimal("0.00001"),
                    min_notional=Decimal(5))
    return out


def start_probe(path: Path, data: Path) -> tuple[str | None, bool]:
    """Build what `tapeloop run --config path --data data` builds before READY, minus
    the store, the control socket and the network: the refusal run would print (or
    None), and whether some instrument stood in for a ccxt exchange's market."""
    from daemon.alerts import Alerts
    from daemon.node import TradingNode
    from daemon.venues import make_venue
    from events.bus import Bus
    from events.journal import JournalPolicy
    from replay.clock import ReplayClock

    config = load_config(path, data_dir=data)
    j = config.journal
    JournalPolicy(fsync=j.fsync, flush_interval_ms=j.flush_interval_ms,
                  fsync_interval_ms=j.fsync_interval_ms,
                  segment_max_bytes=j.segment_max_bytes, roll_interval_s=j.roll_interval_s)
    config.daemon.control_address  # noqa: B018 - parsed at start
    bus, clock = Bus(), ReplayClock()
    clock.advance_to(1_700_000_000 * 10**9)
    stand_ins = exchange_instruments(config)
    try:
        node = TradingNode(config, bus, clock, replay=False, id_prefix="fuzz1",
                           venue_instruments=stand_ins)
    except UserError as exc:  # a strategy's params against the exchange's grid
        if not stand_ins:
            raise
        return str(exc), True
    Alerts(config.alerts, bus, clock.now_ns, env={})
    with credentials(config):
        for vcfg in config.venues:
            make_venue(vcfg, config, bus, node)
    try:
        failures = node.start(stop_at_failure=config.daemon.on_strategy_error == "stop")
        return node.start_refusal(failures, str(path)), bool(stand_ins)
    except UserError as exc:  # what run prints as its one line
        if not stand_ins:
            raise
        return str(exc), True
    finally:
        node.stop()
