"""The embedded default (configs/paper.toml) paper-trades the bundled USD-M sample as
the perpetual it is, as a real child process: fills, funding and margin in the logs
and in `tapeloop status`; a `kill -9` and a restart are invisible (funding goes on, the
strategy keeps trading), and the perpetual state the daemon shows equals the one
folded from its journal from scratch."""

from __future__ import annotations

import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

from daemon.config import load_config
from daemon.node import instruments_from_config, perp_settings
from daemon.recovery import read_journal
from daemon.trading.order_book import OrderBook
from daemon.trading.portfolio import Portfolio
from tests.conftest import eventually
from tests.daemon.test_run_process import start, wait_ready, write_config
from tests.daemon.user_view import ask

STILL = ("symbol", "qty", "entry_price", "leverage", "margin_mode", "initial_margin",
         "funding")


def count(log: Path, word: bytes) -> int:
    return log.read_bytes().count(word)


def shown(config: Path, data: Path) -> tuple[Any, ...]:
    """What status shows of the perpetuals that does not move with the mark."""
    perp = ask(config, data, "status").get("perpetuals") or {}
    rows = tuple(tuple(str(p[k]) for k in STILL) for p in perp.get("positions", ()))
    wallets = tuple((a["currency"], str(a["wallet"]), str(a["funding"]))
                    for a in perp.get("accounts", ()))
    return rows, wallets


def folded(config: Path, data: Path) -> tuple[Any, ...]:
    """The same, from a portfolio folded from the journal from scratch."""
    cfg = load_config(config)
    book = OrderBook()
    pf = Portfolio(lambda e: None, lambda: 0, instruments_from_config(cfg),
                   fill_gate=book.fill_applied, perp_settings=perp_settings(cfg))
    for event in read_journal(data):
        book.apply(event)
        pf.apply(event)
    rows = tuple(tuple(str(getattr(p, k)) for k in STILL)
                 for p in pf.perp_positions() if p.qty)
    wallets = tuple((a.currency, str(a.wallet), str(a.funding)) for a in pf.margin())
    return rows, wallets


def test_the_default_trades_the_perpetual_through_a_kill(tmp_path: Path) -> None:
    config, data, log = write_config(tmp_path, speed="60.0"), tmp_path / "data", \
        tmp_path / "daemon.log"
    proc = start(config, data, log)
    try:
        wait_ready(log, 1)
        # at 60x a funding time (every 6 minutes of market time) comes every 6 s
        eventually(lambda: count(log, b'"event":"funding.') >= 1 and
                   count(log, b'"order.filled"') >= 2, timeout=90,
                   message="fills and a funding payment")
        status = ask(config, data, "status")
        perp = status["perpetuals"]
        (acct,) = perp["accounts"]
        assert acct["currency"] == "USDT" and Decimal(str(acct["funding"])) != 0
        assert b'"event":"margin.position"' in log.read_bytes()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    fills, funded = count(log, b'"order.filled"'), count(log, b'"event":"funding.')
    proc = start(config, data, log)
    try:
        wait_ready(log, 2)
        eventually(lambda: count(log, b'"event":"funding.') > funded and
                   count(log, b'"order.filled"') > fills, timeout=90,
                   message="funding and fills after the restart")
        ask(config, data, "strategy", "stop", "sma")
        # compare once nothing moves: two equal views, and the fold between them
        for _ in range(50):
            before = shown(config, data)
            fold = folded(config, data)
            if before == shown(config, data):
                break
        assert before == fold, f"status {before}\nfolded {fold}"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
