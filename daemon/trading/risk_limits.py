"""A strategy's effective risk limits, exact: the account's `[risk]`, tightened
by the strategy's own `[strategies.risk]` (each the smaller of the two), and the
order-rate window a rate allows. The engine that holds orders to them is
`daemon.trading.risk`.
"""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec

from daemon.config import RiskConfig, StrategyRiskConfig
from events.instruments import to_decimal

__all__ = ["SECOND_NS", "Limits"]

SECOND_NS = 1_000_000_000


def _tighter(account: float | None, strategy: float | None) -> Decimal | None:
    values = [to_decimal(v) for v in (account, strategy) if v is not None]
    return min(values) if values else None


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Effective limits, exact: the account's, or a strategy's (the tighter of both)."""

    max_order_qty: Decimal
    max_order_notional: Decimal
    max_position_qty: Decimal
    daily_loss_limit: Decimal
    max_orders_per_s: Decimal
    price_band_pct: Decimal
    max_position_notional: Decimal | None = None
    max_concentration_pct: Decimal | None = None
    max_leverage: Decimal | None = None
    max_margin_usage_pct: Decimal | None = None
    min_liquidation_distance_pct: Decimal | None = None

    @classmethod
    def from_config(cls, account: RiskConfig, strategy: StrategyRiskConfig | None = None
                    ) -> Limits:
        s = strategy or StrategyRiskConfig()
        required = {}
        for name in ("max_order_qty", "max_order_notional", "max_position_qty",
                     "daily_loss_limit", "max_orders_per_s", "price_band_pct"):
            value = _tighter(getattr(account, name), getattr(s, name))
            assert value is not None  # the account's are required
            required[name] = value
        return cls(
            **required,
            max_position_notional=_tighter(account.max_position_notional,
                                           s.max_position_notional),
            max_concentration_pct=_tighter(account.max_concentration_pct,
                                           s.max_concentration_pct),
            max_leverage=_tighter(account.max_leverage, None),
            max_margin_usage_pct=_tighter(account.max_margin_usage_pct, None),
            min_liquidation_distance_pct=(
                None if account.min_liquidation_distance_pct is None
                else to_decimal(account.min_liquidation_distance_pct)),
        )

    @property
    def rate_window(self) -> tuple[int, int]:
        """(orders allowed, window in ns): `max_orders_per_s` orders in any 1 s
        window; a rate below 1/s allows one order per 1/rate seconds."""
        # asked four times per order: worked out once per configured rate
        rate = self.max_orders_per_s
        window = _RATE_WINDOWS.get(rate)
        if window is None:
            window = _RATE_WINDOWS[rate] = _rate_window(rate)
        return window


_RATE_WINDOWS: dict[Decimal, tuple[int, int]] = {}


def _rate_window(rate: Decimal) -> tuple[int, int]:
    if rate >= 1:
        return int(rate), SECOND_NS
    return 1, math.ceil(SECOND_NS / rate)
