"""Which failed placements are looked up (never resent) and which are refusals,
by ccxt's exception classes; and which exchanges may trade at all."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import ccxt.pro
import pytest

from adapters.ccxt.orders import order_args, outcome_unknown, trading_problem
from events.orders import OrderSubmitted


@pytest.mark.parametrize("cls", [
    ccxt.RequestTimeout, ccxt.NetworkError, ccxt.ExchangeNotAvailable, ccxt.OnMaintenance,
    ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.BadResponse, ccxt.NullResponse,
    ccxt.ExchangeError, ccxt.DuplicateOrderId, ccxt.InvalidNonce, OSError, TimeoutError])
def test_what_may_have_reached_the_exchange_is_looked_up(cls: type[Exception]) -> None:
    assert outcome_unknown(cls("lost"))


@pytest.mark.parametrize("cls", [
    ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadRequest, ccxt.BadSymbol,
    ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.NotSupported,
    ccxt.OrderImmediatelyFillable, ccxt.OperationRejected, ccxt.MarketClosed])
def test_what_the_exchange_answered_no_to_is_a_rejection(cls: type[Exception]) -> None:
    assert not outcome_unknown(cls("no"))


@pytest.mark.parametrize("exchange_id", ["kraken", "coinbase", "kucoin", "bitfinex"])
def test_exchanges_without_client_id_look_ups_are_refused(exchange_id: str) -> None:
    problem = trading_problem(getattr(ccxt.pro, exchange_id)())
    assert problem is not None and "#10692" in problem and "trade = false" in problem


@pytest.mark.parametrize("exchange_id", ["binance", "okx", "bybit"])
def test_exchanges_with_client_id_look_ups_may_trade(exchange_id: str) -> None:
    assert trading_problem(getattr(ccxt.pro, exchange_id)()) is None


def _order(**kw: object) -> OrderSubmitted:
    base: dict[str, object] = dict(
        ts_event=0, ts_recv=0, venue="bn", symbol="BTC/USDT", strategy_id="s",
        client_order_id="s-1", side="BUY", order_type="LIMIT", qty=Decimal("0.001"),
        price=Decimal("100.5"))
    return OrderSubmitted(**{**base, **kw})  # type: ignore[arg-type]


def test_order_args() -> None:
    assert order_args(_order()) == ("limit", Decimal("100.5"), {})
    assert order_args(_order(post_only=True)) == ("limit", Decimal("100.5"), {"postOnly": True})
    assert order_args(_order(time_in_force="IOC"))[2] == {"timeInForce": "IOC"}
    assert order_args(_order(order_type="MARKET", price=None)) == ("market", None, {})
    with pytest.raises(ValueError, match="STOP_MARKET"):
        order_args(_order(order_type="STOP_MARKET"))
    with pytest.raises(ValueError, match="GTD"):
        order_args(_order(time_in_force="GTD"))
