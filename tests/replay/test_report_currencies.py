"""The report of a run in several currencies: `pnl` in the account currency (each
currency converted at the final marks), `pnl_by_currency` unconverted, `unvalued`
listing what had no conversion; the HTML and the CLI summary say the currency.
Fed by the real portfolio's `final_report`."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

from daemon.trading.portfolio import DAY_NS, Portfolio
from events.instruments import Instrument
from events.market import Trade
from events.orders import Fill
from events.state import BalanceChanged
from replay.report import ReportBuilder, summary_lines

T0 = 19_700 * DAY_NS


def inst(symbol: str, base: str, quote: str) -> Instrument:
    return Instrument(venue="sim", symbol=symbol, base=base, quote=quote,
                      tick_size=D("0.00001"), step_size=D("0.0001"))


INSTRUMENTS = {i.key: i for i in (inst("BTCUSDT", "BTC", "USDT"), inst("ETHBTC", "ETH", "BTC"))}


def fill(symbol: str, side: str, qty: str, price: str, fee: str, fee_currency: str) -> Fill:
    return Fill(ts_event=T0, ts_recv=T0, venue="sim", symbol=symbol, strategy_id="s1",
                client_order_id="s1-1", trade_id=f"{symbol}{side}{qty}", side=side,
                qty=D(qty), price=D(price), fee=D(fee), fee_currency=fee_currency,
                liquidity="TAKER")


def trade(symbol: str, price: float) -> Trade:
    return Trade(ts_event=T0, ts_recv=T0, venue="sim", symbol=symbol, price=price, size=1.0)


def test_a_run_in_two_quote_currencies_with_a_bnb_fee(tmp_path: Path) -> None:
    portfolio = Portfolio(lambda e: None, lambda: T0, INSTRUMENTS, account_currency="USDT")
    for event in (
        BalanceChanged(ts_event=T0, ts_recv=T0, venue="sim", currency="USDT",
                       total=D(1000), free=D(1000)),
        BalanceChanged(ts_event=T0, ts_recv=T0, venue="sim", currency="BNB",
                       total=D("0.5"), free=D("0.5")),
        fill("BTCUSDT", "BUY", "0.01", "50000", "0.5", "USDT"),
        fill("BTCUSDT", "SELL", "0.01", "51000", "0.5", "USDT"),  # +10 USDT, fees 1
        fill("ETHBTC", "BUY", "1", "0.05", "0.0075", "BNB"),
        # the ETH fee comes out of the position: 0.5001 closed, +0.0010002 BTC, fee 0.0000052
        fill("ETHBTC", "SELL", "0.5", "0.052", "0.0001", "ETH"),
        trade("BTCUSDT", 50000.0),
        trade("ETHBTC", 0.06),  # 0.4999 ETH open: +0.0049990 BTC unrealized
    ):
        portfolio.apply(event)
    b = ReportBuilder()
    b.add_equity(T0, D(1000))
    b.add_equity(T0 + 60 * 10**9, portfolio.equity())
    b.set_final(**portfolio.final_report(D(1000)))
    report = b.write(tmp_path, events_in=8, wall_s=1.0)
    assert report == json.loads((tmp_path / "report.json").read_text())
    assert report["account_currency"] == "USDT"
    assert report["pnl_by_currency"] == {
        "BNB": {"realized": "0", "unrealized": "0", "fees": "0.0075", "net": "-0.0075"},
        "BTC": {"realized": "0.0010002", "unrealized": "0.004999", "fees": "0.0000052",
                "net": "0.0059940"},
        "USDT": {"realized": "10", "unrealized": "0", "fees": "1", "net": "9"},
    }
    # BTC converted at 50000 USDT; BNB has no price: left out, never 1 USDT
    assert report["pnl"] == {"realized": "60.01", "unrealized": "249.95", "fees": "1.26",
                             "net": "308.70"}
    assert report["unvalued"] == [{
        "venue": "sim", "currency": "BNB", "balance": "0.5", "pnl": "-0.0075",
        "reason": "no conversion from BNB to USDT: no instrument links them and "
                  "[account] rates has no BNB"}]
    html = (tmp_path / "report.html").read_text()
    assert "Net PnL (USDT)" in html and "PnL by currency" in html
    assert "Unvalued (left out of equity and PnL)" in html
    lines = summary_lines(report)
    assert lines[2].startswith("net pnl    308.70 USDT")
    assert any(line.startswith("unvalued   0.5 BNB on sim") for line in lines)
