"""Perpetual-futures events: mark prices, funding, and the account's margin settings.

Market data (`MarkPrice`, `FundingRate`) is float64 like every market price and
becomes exact through `events.instruments.to_decimal` where it turns into money.
What changes an account (`FundingPayment`, `Liquidation`, `LeverageChanged`,
`MarginModeChanged`) is state: Decimal money, journaled durably, folded by the
portfolio and by a simulated venue's restore exactly like fills.

Sign convention: a `FundingPayment.amount` is what the account *received*
(negative when it paid). Binance's rule: with a positive rate, longs pay shorts,
so amount = -(qty x contract_size x mark x rate) for a signed position `qty`.
"""

from __future__ import annotations

from decimal import Decimal

from events.base import Event

CROSS = "cross"
ISOLATED = "isolated"
MARGIN_MODES = (CROSS, ISOLATED)


class MarkPrice(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """The venue's mark price (what unrealized PnL, margin and liquidation use).
    Binance's `markPrice` stream also carries the index, the funding rate that
    will apply next (an estimate until then) and that funding time (0: unknown)."""

    venue: str
    symbol: str
    mark: float
    index: float = 0.0
    funding_rate: float = 0.0
    next_funding_ts: int = 0


class FundingRate(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """The funding rate settled at `funding_ts` (recorded from the venue or
    imported). A simulated venue pays funding on it; `mark` is the mark price the
    venue settled at, 0.0 when not known (then the last mark is used)."""

    venue: str
    symbol: str
    rate: float
    funding_ts: int
    mark: float = 0.0


class FundingPayment(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """Funding paid or received on one position at one funding time. `amount` is
    signed (+ received, - paid) in `currency` (the margin asset); `qty` the
    signed position it was paid on, `rate` and `mark` what it was computed from.
    `strategy_id` "" means the venue reported the account's payment (the
    portfolio attributes it to the strategies holding the symbol)."""

    venue: str
    symbol: str
    amount: Decimal
    currency: str
    rate: Decimal
    mark: Decimal
    qty: Decimal
    funding_ts: int
    strategy_id: str = ""


class Liquidation(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """A position closed by the venue because its margin fell to maintenance:
    `qty` (unsigned) closed on `side` (SELL closes a long) at `price`, with
    the venue's liquidation `fee`. `mark` is the mark that breached
    maintenance. `strategy_id` "" means the venue reported the account's
    position (the portfolio closes every strategy's share of it)."""

    venue: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    mark: Decimal
    fee: Decimal
    fee_currency: str
    trade_id: str
    strategy_id: str = ""


class LeverageChanged(Event, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """The leverage the venue applies to a symbol from now on."""

    venue: str
    symbol: str
    leverage: int


class MarginModeChanged(Event, frozen=True, kw_only=True, tag=True, array_like=True,
                        gc=False):
    """The symbol's margin mode from now on: "cross" or "isolated"."""

    venue: str
    symbol: str
    mode: str
