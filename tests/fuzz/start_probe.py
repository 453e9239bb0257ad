"""What `tapeloop run` builds before READY, built from a config without a store, a
control socket or a network: a config check-config accepts must build here without a
refusal (issue 10 item 4: check-config refuses first what run would refuse at start)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from daemon.config import load_config


@contextlib.contextmanager
def credentials(config: object) -> Iterator[None]:
    """Fake keys for every trading Binance venue: the environment, not the config,
    holds them (check-config cannot know them; run refuses without)."""
    names = [f"{v.credentials}_API_{k}" for v in config.venues  # type: ignore[attr-defined]
             if v.kind == "binance" and v.trade for k in ("KEY", "SECRET")]
    saved = {n: os.environ.get(n) for n in [*names, "TAPELOOP_BINANCE_ENDPOINTS"]}
    os.environ.pop("TAPELOOP_BINANCE_ENDPOINTS", None)
    os.environ.update({n: "fuzz" for n in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start_probe(path: Path, data: Path) -> str | None:
    """Build what `tapeloop run --config path --data data` builds before READY, minus
    the store, the control socket and the network; the refusal run would print, or None."""
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
    node = TradingNode(config, bus, clock, replay=False, id_prefix="fuzz1")
    Alerts(config.alerts, bus, clock.now_ns, env={})
    with credentials(config):
        for vcfg in config.venues:
            make_venue(vcfg, config, bus, node)
    failures = node.start(stop_at_failure=config.daemon.on_strategy_error == "stop")
    try:
        return node.start_refusal(failures, str(path))
    finally:
        node.stop()
