"""The config's venues, instruments and account: `[[venues]]`, `[[instruments]]`
(with their margin tiers) and `[account]`. Re-exported by `daemon.config`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from daemon.config_types import (
    FillModel,
    InstrumentKind,
    MarginMode,
    Name,
    NonNegFloat,
    PositiveFloat,
    SlippageModel,
    VenueKind,
    _Section,
)
from events.instruments import CANCEL_ONLY, PERPETUAL, TRADING, Instrument, to_decimal
from events.margin import tiers


class VenueConfig(_Section, frozen=True):
    """One `[[venues]]` entry; events carry `name` as their `venue`."""

    name: Name
    kind: VenueKind = "sim"
    # Simulation parameters apply to every kind: `replay` simulates each venue.
    fill_model: FillModel = "next"
    slippage_bps: NonNegFloat = 0.0
    # None: "fixed_bps" when slippage_bps > 0, else "none" (adapters/sim/slippage.py)
    slippage_model: SlippageModel | None = None
    volume_limit_pct: Annotated[float, msgspec.Meta(gt=0, le=100)] | None = None
    maker_fee_bps: float = 0.0  # negative = rebate
    taker_fee_bps: float = 0.0
    latency_ms: NonNegFloat = 0.0
    balances: dict[str, float] = {}
    allow_short: bool = False
    # What a simulated fill pays its fee in: "quote", "received" (a buy pays in
    # the base, a sell in the quote) or a currency such as "BNB" (priced by the
    # instrument BNB/<quote> on this venue). None: "received" for a binance
    # venue (its replays and paper twins charge as Binance does), else "quote".
    fee_asset: Name | None = None
    # Perpetuals (simulated): funding at each funding time comes from recorded or
    # imported FundingRate events; a symbol with none pays `funding_rate` (a
    # constant, e.g. 0.0001 = 0.01 %) every `funding_interval_h` hours from 00:00
    # UTC, when set. A liquidation pays `liquidation_fee_pct` of the notional (at
    # most what margin is left). Hedge mode (two positions per symbol) is refused.
    funding_rate: float | None = None
    funding_interval_h: Annotated[float, msgspec.Meta(gt=0, le=24)] = 8.0
    liquidation_fee_pct: Annotated[float, msgspec.Meta(ge=0, lt=100)] = 1.25
    position_mode: Literal["one-way", "hedge"] = "one-way"
    # kind = "sample" only: replay a raw Binance recording as a live feed.
    file: Path | None = None
    speed: PositiveFloat | Literal["max"] = 1.0
    loop: bool = True
    # kind = "binance" only (adapters/binance/venue.py).
    endpoints: str = "testnet"  # testnet | production | demo | "http://host:port" (a fake)
    trade: bool = True  # false: record market data only (no keys needed)
    streams: tuple[str, ...] = ("trade", "bookTicker", "depth@100ms")  # per symbol
    depth_limit: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 1000
    stale_after_s: PositiveFloat = 10.0
    recv_window_ms: Annotated[int, msgspec.Meta(gt=0, le=60000)] = 5000
    credentials: Name = "BINANCE"  # env ${credentials}_API_KEY..., or systemd credential files
    # an order whose placement outcome is unknown (it is looked up, never resent) raises
    # an alert once unresolved this long, and again at a slow pace while it stays so
    unresolved_alert_after_s: PositiveFloat = 30.0
    # kind = "ccxt" only (adapters/ccxt/): a ccxt exchange id, its sandbox, ccxt
    # constructor options, and URLs laid over ccxt's urls["api"] ("*": every URL's
    # host moved there, e.g. a local fake); credentials is the env prefix as above
    exchange: str = ""
    sandbox: bool = True
    options: dict[str, Any] = {}
    urls: dict[str, Any] = {}


class MarginTierConfig(_Section, frozen=True):
    """One `margin_tiers` entry: up to `cap` of notional, `maint_rate` of it is
    maintenance margin and at most `max_leverage` may be used."""

    cap: PositiveFloat
    maint_rate: Annotated[float, msgspec.Meta(ge=0, lt=1)]
    max_leverage: Annotated[int, msgspec.Meta(ge=1, le=1000)]


class InstrumentConfig(_Section, frozen=True):
    """One `[[instruments]]` entry: a symbol's trading grid on one venue (tick and
    step positive multiples of 1e-12, checked by `config_checks`)."""

    venue: Name
    symbol: Name
    base: Name
    quote: Name
    tick_size: PositiveFloat
    step_size: PositiveFloat
    min_notional: NonNegFloat = 0.0
    tradable: bool = True
    # kind = "perpetual": a linear (USDT-margined) perpetual, settled in
    # `margin_asset` (default: the quote), quantities in contracts of
    # `contract_size` base units. Maintenance margin: `margin_tiers` (Binance's
    # leverage brackets, ascending `cap`s of notional), or one tier of
    # `maintenance_margin_rate` up to `max_leverage`. `leverage` and
    # `margin_mode` are set on the venue at start.
    kind: InstrumentKind = "spot"
    margin_asset: Name | None = None
    contract_size: PositiveFloat = 1.0
    max_leverage: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    maintenance_margin_rate: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.005
    margin_tiers: list[MarginTierConfig] = []
    leverage: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    margin_mode: MarginMode = "cross"

    @property
    def perpetual(self) -> bool:
        return self.kind == PERPETUAL

    def instrument(self) -> Instrument:
        """The exact (Decimal) instrument the trading core uses."""
        perp = self.perpetual
        if not perp:
            rows = []
        elif self.margin_tiers:
            rows = [(to_decimal(t.cap), to_decimal(t.maint_rate), t.max_leverage)
                    for t in self.margin_tiers]
        else:
            rows = [(Decimal("1e30"), to_decimal(self.maintenance_margin_rate),
                     self.max_leverage)]
        return Instrument(
            venue=self.venue, symbol=self.symbol, base=self.base, quote=self.quote,
            tick_size=to_decimal(self.tick_size), step_size=to_decimal(self.step_size),
            min_notional=to_decimal(self.min_notional),
            status=TRADING if self.tradable else CANCEL_ONLY,
            kind=self.kind, contract_size=to_decimal(self.contract_size),
            margin_asset=(self.margin_asset or self.quote) if perp else "",
            max_leverage=(max(r[2] for r in rows) if perp else 0),
            margin_tiers=tiers(rows),
        )


class AccountConfig(_Section, frozen=True):
    """`[account]`: the currency equity, PnL and money limits are stated in (inferred
    by `load_config` when every instrument has the same quote), and fixed rates
    into it (`rates = { USDC = 1.0 }`): the only way a currency is ever valued at a
    constant; any other is valued through market prices or not at all."""

    currency: Name | None = None
    rates: dict[str, float] = {}

    @property
    def decimal_rates(self) -> dict[str, Decimal]:  # exact: each float's shortest repr
        return {c: Decimal(repr(float(r))) for c, r in sorted(self.rates.items())}
