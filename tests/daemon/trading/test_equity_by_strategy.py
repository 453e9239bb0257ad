"""`Portfolio.equity_by_strategy` values every strategy in one pass over the
positions; each figure must be exactly `pnl(strategy_id)`, the pass per strategy
it replaces: same value, same Decimal digits, for portfolios of several
instruments and strategies, quotes and fees in other currencies (valued through a
rate, or not at all), over a day's roll."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.trading.api import BUY, SELL
from daemon.trading.portfolio import DAY_NS, Portfolio
from events.base import Event
from events.instruments import Instrument
from events.market import Trade
from events.orders import Fill
from events.state import BalanceChanged
from tests.examples import examples

T0 = 1_700_000_000 * 10**9
D = Decimal


def _inst(symbol: str, base: str, quote: str) -> Instrument:
    return Instrument(venue="sim", symbol=symbol, base=base, quote=quote,
                      tick_size=D("0.01"), step_size=D("0.001"))


INSTRUMENTS = {("sim", i.symbol): i for i in (
    _inst("XUSDT", "X", "USDT"), _inst("YUSDT", "Y", "USDT"),
    _inst("XBTC", "X", "BTC"), _inst("ETHEUR", "ETH", "EUR"),
    _inst("BTCUSDT", "BTC", "USDT"))}
SYMBOLS = sorted(s for _, s in INSTRUMENTS)

prices = st.decimals(D("0.01"), D("5000"), places=2)
qtys = st.integers(1, 5000).map(lambda n: D(n) / 1000)


@st.composite
def runs(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    ts = T0
    for n in range(draw(st.integers(0, 30))):
        ts += draw(st.sampled_from((1, 10**9, DAY_NS // 2)))  # some runs cross midnight
        symbol = draw(st.sampled_from(SYMBOLS))
        quote = INSTRUMENTS[("sim", symbol)].quote
        if draw(st.integers(0, 2)) == 0:
            events.append(Trade(ts_event=ts, ts_recv=ts, seq=n + 1, venue="sim", symbol=symbol,
                                price=float(draw(prices)), size=1.0))
            continue
        sid = draw(st.sampled_from(("s1", "s2", "s3", "s4")))
        fee_currency = draw(st.sampled_from((quote, "USDT", "BNB", "BTC", "X")))
        events.append(Fill(
            ts_event=ts, ts_recv=ts, seq=n + 1, venue="sim", symbol=symbol, strategy_id=sid,
            client_order_id=f"{sid}-{n}", trade_id=f"t{n}",
            side=draw(st.sampled_from((BUY, SELL))), qty=draw(qtys), price=draw(prices),
            fee=draw(st.sampled_from((D(0), D("0.01"), D("0.0003")))),
            fee_currency=fee_currency, liquidity="TAKER"))
    return events


@settings(max_examples=examples(150), deadline=None)
@given(events=runs())
def test_every_strategys_equity_is_its_own_pnl(events: list[Event]) -> None:
    now = [T0]
    portfolio = Portfolio(lambda e: None, lambda: now[0], INSTRUMENTS, account_currency="USDT")
    for currency in ("USDT", "BTC", "X"):
        portfolio.apply(BalanceChanged(ts_event=T0, ts_recv=T0, venue="sim", currency=currency,
                                       total=D(10**6), free=D(10**6)))
    for i, e in enumerate(events):
        now[0] = e.ts_event
        portfolio.apply(e)
        by_strategy = portfolio.equity_by_strategy()
        ids = sorted({f.strategy_id for f in events[: i + 1] if isinstance(f, Fill)})
        reference = {sid: portfolio.pnl(sid) for sid in ids}
        assert list(by_strategy) == ids, f"event {i}: {e}"
        assert {k: str(v) for k, v in by_strategy.items()} == \
            {k: str(v) for k, v in reference.items()}, f"event {i}: {e}"
