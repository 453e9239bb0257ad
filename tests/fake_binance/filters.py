"""Symbol filters from an exchangeInfo symbol, checked as Binance does (filters.md).

A zero value disables a check. Failures raise `ApiError(400, -1013,
"Filter failure: <NAME>")`. Only the filters that matter for LIMIT, LIMIT_MAKER
and MARKET orders are enforced: PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE,
NOTIONAL / MIN_NOTIONAL, PERCENT_PRICE_BY_SIDE and MAX_NUM_ORDERS.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.fake_binance.common import ZERO, filter_failure


def _filters(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filterType"]: f for f in info.get("filters", [])}


def _dec(f: dict[str, Any] | None, key: str) -> Decimal:
    return Decimal(str(f[key])) if f and key in f else ZERO


@dataclass(frozen=True)
class SymbolRules:
    """The trading rules of one symbol, as exact Decimals."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    min_to_market: bool
    max_notional: Decimal
    max_to_market: bool
    notional_filter: str  # "NOTIONAL" | "MIN_NOTIONAL" | ""
    percent: tuple[Decimal, Decimal, Decimal, Decimal] | None  # bid up/down, ask up/down
    max_num_orders: int

    @classmethod
    def from_symbol(cls, info: dict[str, Any]) -> SymbolRules:
        f = _filters(info)
        price, lot, mlot = f.get("PRICE_FILTER"), f.get("LOT_SIZE"), f.get("MARKET_LOT_SIZE")
        notional, old = f.get("NOTIONAL"), f.get("MIN_NOTIONAL")
        pct = f.get("PERCENT_PRICE_BY_SIDE")
        return cls(
            symbol=info["symbol"], base=info["baseAsset"], quote=info["quoteAsset"],
            tick_size=_dec(price, "tickSize"), min_price=_dec(price, "minPrice"),
            max_price=_dec(price, "maxPrice"),
            step_size=_dec(lot, "stepSize"), min_qty=_dec(lot, "minQty"),
            max_qty=_dec(lot, "maxQty"),
            market_step=_dec(mlot, "stepSize"), market_min_qty=_dec(mlot, "minQty"),
            market_max_qty=_dec(mlot, "maxQty"),
            min_notional=_dec(notional or old, "minNotional"),
            min_to_market=bool((notional or {}).get("applyMinToMarket",
                                                    (old or {}).get("applyToMarket", False))),
            max_notional=_dec(notional, "maxNotional"),
            max_to_market=bool((notional or {}).get("applyMaxToMarket", False)),
            notional_filter="NOTIONAL" if notional else "MIN_NOTIONAL" if old else "",
            percent=None if pct is None else (
                _dec(pct, "bidMultiplierUp"), _dec(pct, "bidMultiplierDown"),
                _dec(pct, "askMultiplierUp"), _dec(pct, "askMultiplierDown")),
            max_num_orders=int((f.get("MAX_NUM_ORDERS") or {}).get("maxNumOrders", 0)),
        )

    @property
    def tick(self) -> Decimal:
        """The price grid the simulator uses (0.01 if the filter is disabled)."""
        return self.tick_size or Decimal("0.01")

    @property
    def step(self) -> Decimal:
        """The quantity grid the simulator uses (1e-8 if the filter is disabled)."""
        return self.step_size or Decimal("0.00000001")

    def floor_qty(self, qty: Decimal) -> Decimal:
        """`qty` rounded down to the step grid."""
        return (qty // self.step) * self.step

    def check_price(self, price: Decimal) -> None:
        if (self.min_price and price < self.min_price) or (
                self.max_price and price > self.max_price) or (
                self.tick_size and (price - self.min_price) % self.tick_size != 0):
            raise filter_failure("PRICE_FILTER")
        if price <= 0:
            raise filter_failure("PRICE_FILTER")

    def check_qty(self, qty: Decimal, market: bool) -> None:
        if qty <= 0 or (self.min_qty and qty < self.min_qty) or (
                self.max_qty and qty > self.max_qty) or (
                self.step_size and (qty - self.min_qty) % self.step_size != 0):
            raise filter_failure("LOT_SIZE")
        if market and ((self.market_min_qty and qty < self.market_min_qty) or (
                self.market_max_qty and qty > self.market_max_qty) or (
                self.market_step and (qty - self.market_min_qty) % self.market_step != 0)):
            raise filter_failure("MARKET_LOT_SIZE")

    def check_notional(self, notional: Decimal, market: bool) -> None:
        if not self.notional_filter:
            return
        if self.min_notional and (not market or self.min_to_market) and (
                notional < self.min_notional):
            raise filter_failure(self.notional_filter)
        if self.max_notional and (not market or self.max_to_market) and (
                notional > self.max_notional):
            raise filter_failure(self.notional_filter)

    def check_percent(self, side: str, price: Decimal, reference: Decimal) -> None:
        """PERCENT_PRICE_BY_SIDE against `reference` (the simulator's mid price)."""
        if self.percent is None or reference <= 0:
            return
        bid_up, bid_down, ask_up, ask_down = self.percent
        up, down = (bid_up, bid_down) if side == "BUY" else (ask_up, ask_down)
        if (up and price > reference * up) or (down and price < reference * down):
            raise filter_failure("PERCENT_PRICE_BY_SIDE")
