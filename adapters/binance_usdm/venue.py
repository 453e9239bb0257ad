"""A live Binance USD-M perpetuals account on the bus (linear, one-way).

`UsdmVenue` is Spot's `BinanceVenue` (market data with depth sync, the order
path that never resends an unknown outcome, reconciliation of open orders and
missed fills) with the USD-M parts swapped in:

- REST under `/fapi` (`rest.UsdmRest`), orders with `reduceOnly` and post-only
  as time in force GTX; client order ids as Spot's (36 characters at most).
- Market data: Spot's combined-stream parser plus `@markPrice@1s`
  (`MarkPrice`, and `FundingRate` once per funding time: `parse.FundingSettlement`);
  depth in "usdm" sync mode.
- The user stream is the listenKey websocket (`user_ws.ListenKeyStream`),
  translated by `user_events.UsdmUserTranslator` (liquidations, funding,
  leverage changes, margin calls as alerts).
- Before trading (`_prepare`): the contracts and leverage brackets from
  exchangeInfo/leverageBracket, a configured instrument that disagrees is one
  line and exit 3; hedge mode is refused (one line, exit 3); each symbol's
  leverage and margin type are set from its config, publishing
  `LeverageChanged` / `MarginModeChanged` when the account's differed.
- Each reconciliation (start, every user-stream reopening) adds to Spot's:
  balances of the margin asset (total = walletBalance, free =
  availableBalance), funding missed while down (income FUNDING_FEE, deduped by
  symbol and funding hour, seeded from the journal), and positions: Binance's
  positionRisk against the OMS's fills; a difference is logged, alerted and
  trading is halted until an operator resumes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import msgspec
import structlog

from adapters.binance.book import BookSync
from adapters.binance.errors import BinanceError
from adapters.binance.market_ws import MarketDataStream
from adapters.binance.order_path import TRANSPORT_ERRORS
from adapters.binance.parse import FundingSettlement, StreamParser
from adapters.binance.signing import Credentials
from adapters.binance.unresolved import RetryPolicy
from adapters.binance.venue import BinanceVenue
from adapters.binance_usdm.endpoints import UsdmEndpoints
from adapters.binance_usdm.exchange_info import disagreement
from adapters.binance_usdm.rest import UsdmRest
from adapters.binance_usdm.user_events import (
    UsdmUserTranslator,
    balance_events,
    position_diff,
    positions_of,
)
from adapters.binance_usdm.user_ws import ListenKeyStream
from daemon.errors import EXIT_CONFIG, UserError
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument
from events.orders import OrderSubmitted
from events.perp import (
    FundingPayment,
    LeverageChanged,
    Liquidation,
    MarginModeChanged,
    MarkPrice,
)

log = structlog.get_logger("tapeloop.binance_usdm")

INCOME_LOOKBACK_MS = 7 * 24 * 3_600_000  # how far back missed funding is looked for
POSITION_CHECKS = 3  # reads of positionRisk that must all differ before trading halts


def usdm_order_params(e: OrderSubmitted) -> dict[str, Any]:
    """Our order as `POST /fapi/v1/order` parameters; ValueError for what
    USD-M cannot express."""
    tif = e.time_in_force
    out: dict[str, Any]
    if e.order_type == "MARKET":
        out = {"type": "MARKET", "quantity": e.qty}
    elif tif not in ("GTC", "IOC", "FOK"):
        raise ValueError(f"time_in_force {tif} is not available on Binance USD-M")
    elif e.order_type == "LIMIT":
        out = {"type": "LIMIT", "quantity": e.qty, "price": e.price,
               "time_in_force": "GTX" if e.post_only else tif}
    elif e.order_type == "STOP_MARKET":
        out = {"type": "STOP_MARKET", "quantity": e.qty, "stop_price": e.trigger_price}
    elif e.order_type == "STOP_LIMIT":
        out = {"type": "STOP", "quantity": e.qty, "price": e.price,
               "stop_price": e.trigger_price, "time_in_force": tif}
    else:
        raise ValueError(f"order type {e.order_type} is not supported on Binance USD-M")
    if e.reduce_only:
        out["reduce_only"] = True
    return out


class UsdmVenue(BinanceVenue):
    """One Binance USD-M account and its perpetuals; see the module docstring."""

    order_params = staticmethod(usdm_order_params)

    def __init__(self, name: str, instruments: list[Instrument], bus: Bus, *,
                 endpoints: UsdmEndpoints, credentials: Credentials | None, oms: Any,
                 risk: Any, trade: bool = True,
                 streams: list[str] | tuple[str, ...] | None = None,
                 settings: dict[str, tuple[int, str]] | None = None,
                 journal_funding: Iterable[FundingPayment]
                 | Callable[[], Iterable[FundingPayment]] = (),
                 depth_limit: int = 1000,
                 stale_after_s: float = 10.0, recv_window_ms: int = 5000,
                 now_ns: Callable[[], int] = time.time_ns,
                 unresolved_alert_after_s: float = 30.0,
                 retry_policy: RetryPolicy | None = None,
                 keepalive_s: float | None = None,
                 positions: Callable[[], dict[str, Decimal]] = dict,
                 position_settle_s: float = 2.0) -> None:
        """`settings`: symbol -> (leverage, margin mode) from the instrument
        config. `journal_funding`: the payments already journaled (never
        published again), or what reads them when the venue starts.
        `positions`: our signed position per symbol (the portfolio's fold),
        checked against Binance's on every reconciliation, halting only a
        difference that lasts (`position_settle_s` between reads)."""
        if trade and credentials is None:
            raise ValueError(f"venue {name!r} trades but has no credentials")
        self.name = self.venue = name
        self.bus, self.publish, self.oms, self.risk = bus, bus.publish, oms, risk
        self.trade, self.now_ns, self.endpoints = trade, now_ns, endpoints
        self.symbols = [i.symbol for i in instruments]
        self.instruments = {i.symbol: i for i in instruments}
        self.settings = settings or {}
        self.positions = positions
        self.critical = trade
        self.rest = UsdmRest(endpoints.rest, credentials, recv_window_ms=recv_window_ms)
        self.usdm = UsdmUserTranslator(name)
        self._journal_funding = journal_funding
        self.translator = self.usdm.orders
        kinds = streams or ["aggTrade", "bookTicker", "depth@100ms", "markPrice@1s"]
        names = [f"{s.lower()}@{k}" for s in self.symbols for k in kinds]
        self.books = {s: BookSync("usdm") for s in self.symbols
                      if any(k.startswith("depth") and not k[5:6].isdigit() for k in kinds)}
        self.depth_limit = depth_limit
        self.funding = FundingSettlement(name)
        self.market = MarketDataStream(endpoints.streams, names, name, self._on_usdm_market,
                                       stale_after_s=stale_after_s, now_ns=now_ns,
                                       parser=StreamParser(name))
        self.user: ListenKeyStream | None = None  # type: ignore[assignment]
        if trade:
            self.user = ListenKeyStream(
                endpoints, self.rest, name, self._on_usdm_frame, self._on_subscribed,
                self.publish, now_ns=now_ns,
                **({} if keepalive_s is None else {"keepalive_s": keepalive_s}))
            risk.block_venue(name, f"{name}: not reconciled with Binance USD-M yet")
        self.balances: dict[str, tuple[Decimal, Decimal]] = {}
        self.alert = None
        self.reconciled = 0
        self._started_ms = None
        self.retry_policy = dataclasses.replace(retry_policy or RetryPolicy(),
                                                alert_after_s=unresolved_alert_after_s)
        self._init_order_path()
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        self._market_down = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.position_halt = ""  # why trading is halted after a position difference
        self.position_settle_s = position_settle_s
        self._balance_task: asyncio.Task[None] | None = None
        self._balance_again = False

    def publish_orders(self, events: Iterable[Event]) -> None:
        """Order events through Spot's duplicate rules; the account's own facts
        (funding, liquidations, leverage) are published as they come: the
        translator has already deduplicated them."""
        orders: list[Event] = []
        for event in events:
            if type(event) in (FundingPayment, Liquidation, LeverageChanged):
                self.publish(event)
            else:
                orders.append(event)
        super().publish_orders(orders)

    # -- market data ---------------------------------------------------------------

    def _on_usdm_market(self, event: Event) -> None:
        if type(event) is MarkPrice:
            self.usdm.marks[event.symbol] = event.mark  # type: ignore[attr-defined]
            self.publish(event)
            settled = self.funding.settle(event)  # type: ignore[arg-type]
            if settled is not None:
                self.usdm.note_rate(settled.symbol, Decimal(repr(settled.rate)),
                                    Decimal(repr(settled.mark)))
                self.publish(settled)
            return
        self._on_market(event)

    # -- before trading ------------------------------------------------------------

    async def _prepare(self) -> None:
        """Clock, contracts and brackets, one-way mode, leverage and margin type;
        retried with backoff until Binance answers. A configured instrument that
        disagrees, or hedge mode, is one line and exit 3."""
        journaled = self._journal_funding
        self.usdm.seed_funding(journaled() if callable(journaled) else journaled)
        delay = 0.5
        while True:
            try:
                await self.rest.sync_time()
                theirs = {i.symbol: i for i in await self.rest.instruments(self.name)}
                hedge = await self.rest.hedge_mode()
                break
            except BinanceError as exc:
                if exc.category == "auth":
                    raise
                error = str(exc)
            except TRANSPORT_ERRORS as exc:
                error = str(exc) or repr(exc)
            log.warning("binance_usdm.unreachable", venue=self.name, rest=self.endpoints.rest,
                        error=error, retry_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        self._started_ms = self.rest.server_time_ms()
        for symbol, ours in self.instruments.items():
            lev = self.settings.get(symbol, (1, "cross"))[0]
            problem = disagreement(ours, theirs.get(symbol), lev)
            if problem is not None:
                raise UserError(problem, EXIT_CONFIG)
            inst = theirs[symbol]
            if inst.margin_tiers != ours.margin_tiers or inst.status != ours.status:
                # Binance's brackets and status are what margin and risk must use
                self.instruments[symbol] = msgspec.structs.replace(
                    ours, margin_tiers=inst.margin_tiers, max_leverage=inst.max_leverage,
                    status=inst.status)
                self.risk.update_instrument(self.instruments[symbol])
        if hedge:
            raise UserError(
                f"venue {self.name!r}: the Binance USD-M account is in hedge mode "
                "(dualSidePosition = true); tapeloop trades one-way only: switch to "
                "One-way Mode in the futures preferences (or POST /fapi/v1/positionSide/dual "
                "dualSidePosition=false with no open positions or orders) and start again",
                EXIT_CONFIG)
        for symbol in self.symbols:
            leverage, mode = self.settings.get(symbol, (1, "cross"))
            await self._apply_settings(symbol, leverage, mode)

    async def _apply_settings(self, symbol: str, leverage: int, mode: str) -> None:
        """Set what differs from the account's symbol configuration; publish
        what changed."""
        now = self.now_ns()
        current = await self.rest.symbol_config(symbol)
        if current.get("marginType", "").lower().replace("crossed", "cross") != mode \
                and await self.rest.set_margin_type(symbol, mode):
            self.publish(MarginModeChanged(ts_event=now, ts_recv=now, venue=self.name,
                                           symbol=symbol, mode=mode))
        if int(current.get("leverage", 0)) != leverage:
            applied = await self.rest.set_leverage(symbol, leverage)
            self.publish(LeverageChanged(ts_event=now, ts_recv=now, venue=self.name,
                                         symbol=symbol, leverage=applied))
        log.info("binance_usdm.settings", venue=self.name, symbol=symbol, leverage=leverage,
                 margin_mode=mode)

    # -- the user stream -------------------------------------------------------------

    def _on_usdm_frame(self, raw: bytes, ts_recv: int) -> bool:
        try:
            events = self.usdm.translate(raw, ts_recv)
        except Exception as exc:  # msgspec errors: a bad payload never kills the stream
            log.warning("binance_usdm.bad_user_event", venue=self.name, error=str(exc),
                        payload=raw[:200].decode("utf-8", "replace"))
            return False
        self.publish_orders(events)
        for line in self.usdm.alerts:
            log.warning("binance_usdm.margin_call", venue=self.name, detail=line)
            if self.alert is not None:
                self.alert("margin_call", line, venue=self.name)
        self.usdm.alerts.clear()
        if self.usdm.income_wanted:
            self._spawn(self._read_income())
        if self.usdm.balances_wanted:
            self.usdm.balances_wanted = False
            self._want_balances()
        if self.usdm.expired:
            self.usdm.expired = False
            return True  # a fresh listenKey, then reconciliation
        return False

    def _want_balances(self) -> None:
        """One balance read at a time; a request meanwhile reads once more after it."""
        if self._balance_task is not None and not self._balance_task.done():
            self._balance_again = True
            return
        self._balance_again = False
        self._balance_task = asyncio.get_running_loop().create_task(self._read_balances())
        self._tasks.add(self._balance_task)
        self._balance_task.add_done_callback(self._tasks.discard)

    async def _read_balances(self) -> None:
        while True:
            try:
                rows = await self.rest.balances()
            except (BinanceError, *TRANSPORT_ERRORS) as exc:
                log.warning("binance_usdm.balance_failed", venue=self.name, error=str(exc))
                return  # the next account update or reconciliation reads them again
            now = self.now_ns()
            settle = {i.settle for i in self.instruments.values()}
            self.publish_orders([e for e in balance_events(self.name, rows, now // 1_000_000,
                                                           now, settle)
                                 if self.balances.get(e.currency)  # type: ignore[attr-defined]
                                 != (e.free, e.locked)])  # type: ignore[attr-defined]
            if not self._balance_again:
                return
            self._balance_again = False

    async def _read_income(self) -> None:
        try:
            await self._funding_since(self.rest.server_time_ms() - INCOME_LOOKBACK_MS)
        except (BinanceError, *TRANSPORT_ERRORS) as exc:
            log.warning("binance_usdm.income_failed", venue=self.name, error=str(exc))

    async def _funding_since(self, start_ms: int) -> None:
        rows = await self.rest.funding_income(start_ms)
        symbols = set(self.symbols)
        positions = positions_of(await self.rest.position_risk())
        self.publish_orders(self.usdm.income([r for r in rows if r.get("symbol") in symbols],
                                             self.now_ns(), positions))

    async def _on_subscribed(self, session: int) -> None:
        """Spot's reconciliation (orders, missed fills, balances), then funding
        missed while down; the positions check follows once the stream's frames
        held back meanwhile have been delivered."""
        await super()._on_subscribed(session)
        delay = 0.5
        while True:
            try:
                await self._funding_since(self.rest.server_time_ms() - INCOME_LOOKBACK_MS)
                break
            except (BinanceError, *TRANSPORT_ERRORS) as exc:
                log.warning("binance_usdm.reconcile_failed", venue=self.name, error=str(exc),
                            retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._spawn(self._check_positions())

    async def _check_positions(self) -> None:
        """Binance's positions against our fills' fold. A fill still on its way
        (held back while we reconciled, or in flight) makes a passing
        difference, so only one that lasts `POSITION_CHECKS` reads
        `position_settle_s` apart halts trading."""
        diff: list[str] = []
        for attempt in range(POSITION_CHECKS):
            if attempt:
                await asyncio.sleep(self.position_settle_s)
            try:
                rows = await self.rest.position_risk()
            except (BinanceError, *TRANSPORT_ERRORS) as exc:
                log.warning("binance_usdm.position_check_failed", venue=self.name,
                            error=str(exc))
                continue
            binance = {s: q for s, q in positions_of(rows).items() if s in self.instruments}
            diff = position_diff(self.name, binance, self._our_positions())
            if not diff:
                return
        if not diff:
            return
        self.position_halt = "; ".join(diff)
        log.error("binance_usdm.position_diff", venue=self.name, diff=self.position_halt,
                  why="positions that differ make every margin, PnL and risk figure wrong; "
                      "trading stays halted until an operator checks and resumes")
        if self.alert is not None:
            self.alert("position_diff", self.position_halt, venue=self.name)
        self.risk.halt(f"{self.name}: positions differ from Binance: {self.position_halt}")

    def _our_positions(self) -> dict[str, Decimal]:
        """The signed position per symbol the OMS's fills add up to."""
        out: dict[str, Decimal] = {}
        for symbol, qty in self.positions().items():
            if qty:
                out[symbol] = qty
        return out
