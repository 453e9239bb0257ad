"""The fake exchange's matching engine: account orders, balances and fills.

Pure Python, no I/O: `Exchange` owns one `SymbolMarket` per symbol (the
synthetic crowd's book) and the account (orders, trades, balances). Every call
is atomic; what it produced is collected with `drain_user()` (user-stream event
payloads, in order) and `drain_market()` (`(symbol, kind, payload)`).

Rules (protocol doc §6, errors.md):
- Checks, in order: filters (-1013 "Filter failure: ..."), open-order count
  (MAX_NUM_ORDERS), a client id held by an open order (-2010 "Duplicate order
  sent."), LIMIT_MAKER that would cross (-2010 "Order would immediately match and
  take."), balance (-2010 "Account has insufficient balance for requested
  action."). A refused order leaves no trace (no record, no report).
- Marketable LIMIT (GTC/IOC/FOK) and MARKET (`quantity` or `quoteOrderQty`)
  orders take the synthetic book's best levels at once (taker, `m=false`); the
  taken liquidity leaves the book (a depth update) and prints public trades. FOK
  that cannot fill completely, the IOC remainder and an unfillable MARKET
  remainder expire. A GTC remainder rests.
- Resting LIMIT / LIMIT_MAKER orders are not in the public book; a crowd trade at
  price P fills BUY orders priced >= P and SELL orders priced <= P (best price,
  then oldest first) at their own price as maker, up to the trade's quantity.
- Balances: a resting BUY locks price x qty of the quote asset, a SELL locks qty
  of the base; fills move them; commission is 0.1 % of the received asset.
- STOP_LOSS / TAKE_PROFIT orders are accepted and rest, never triggered.
- Archiving (`archive`): Binance archives an order canceled or expired with no
  executed quantity after 90 days; only such an order can be archived here.
Each order change emits an `executionReport` (new execution id `I`) followed by
an `outboundAccountPosition` of the symbol's two assets.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tests.fake_binance.common import (
    BTCUSDT_INFO,
    COMMISSION_RATE,
    DUPLICATE,
    E8,
    INSUFFICIENT,
    WOULD_TAKE,
    ZERO,
    ApiError,
    d8,
    filter_failure,
    rejected,
)
from tests.fake_binance.filters import SymbolRules
from tests.fake_binance.market import PublicTrade, SymbolMarket
from tests.fake_binance.orders import (
    LIMIT_TYPES,
    STOP_TYPES,
    Execution,
    Order,
    account_position,
    execution_report,
)

Fill = dict[str, Any]  # the FULL response's fill object


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Exchange:
    """Symbols, the synthetic markets and one account; see the module docstring."""

    def __init__(self, *, symbols: list[dict[str, Any]] | None = None,
                 balances: dict[str, tuple[Decimal, Decimal]] | None = None, seed: int = 0,
                 clock: Callable[[], int] = _wall_ms,
                 start_prices: dict[str, Decimal] | None = None, levels: int = 20,
                 spread_ticks: int = 1, trade_probability: float = 0.6,
                 move_ticks: int = 1) -> None:
        self.symbols = symbols if symbols is not None else [BTCUSDT_INFO]
        self.rules = {s["symbol"]: SymbolRules.from_symbol(s) for s in self.symbols}
        self.clock = clock
        prices = {"BTCUSDT": Decimal("64000.00"), **(start_prices or {})}
        self.markets = {
            sym: SymbolMarket(rules, random.Random(f"{seed}:{sym}"), clock,
                              prices.get(sym, Decimal(100)), levels=levels,
                              spread_ticks=spread_ticks, trade_probability=trade_probability,
                              move_ticks=move_ticks)
            for sym, rules in self.rules.items()}
        self.balances: dict[str, tuple[Decimal, Decimal]] = dict(balances) if balances else {
            "BTC": (Decimal("1"), ZERO), "USDT": (Decimal("100000"), ZERO)}
        self.orders: dict[int, Order] = {}
        self._open: dict[int, Order] = {}  # the open subset of `orders`
        self._by_client_id: dict[tuple[str, str], Order] = {}  # latest order per id
        self.trades: list[dict[str, Any]] = []  # myTrades objects, in trade order
        self._user_out: list[dict[str, Any]] = []
        self.next_order_id = 48712039201
        self._next_execution_id = 112233445566

    # --- outboxes -----------------------------------------------------------------

    def drain_user(self) -> list[dict[str, Any]]:
        out, self._user_out = self._user_out, []
        return out

    def drain_market(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [(sym, kind, payload) for sym, m in self.markets.items() for kind, payload in
                m.drain()]

    # --- the market -------------------------------------------------------------------

    def tick(self) -> None:
        """Advance every market one step and fill the resting orders it crosses."""
        for market in self.markets.values():
            trade = market.step()
            market.commit()
            if trade is not None:
                self._match_resting(market, trade)

    def crowd_trades(self, symbol: str, price: Decimal, qty: Decimal, n: int) -> None:
        """The crowd prints `n` trades of `qty` at `price` (taker on the side that
        crosses it); each fills the resting orders it reaches, as a tick's does."""
        market = self.markets[symbol]
        mid = market.mid()
        taker = "SELL" if price <= mid else "BUY"
        for _ in range(n):
            trade_id = market.record_trade(price, qty, buyer_maker=taker == "SELL")
            self._match_resting(market, PublicTrade(price, qty, taker, trade_id))

    def set_price(self, symbol: str, best_bid: Decimal) -> None:
        """Move a market so its best bid is `best_bid` (one depth update)."""
        market = self.markets[symbol]
        market.set_price(best_bid)
        market.commit()

    def _match_resting(self, market: SymbolMarket, trade: PublicTrade) -> None:
        live = [o for o in self._open.values() if o.symbol == market.symbol
                and o.is_working and o.type in ("LIMIT", "LIMIT_MAKER")]
        buys = sorted((o for o in live if o.side == "BUY" and o.price >= trade.price),
                      key=lambda o: (-o.price, o.order_id))
        sells = sorted((o for o in live if o.side == "SELL" and o.price <= trade.price),
                       key=lambda o: (o.price, o.order_id))
        for orders in (buys, sells):
            left = trade.qty
            for order in orders:
                qty = min(left, order.remaining)
                if qty <= 0:
                    break
                trade_id = market.record_trade(order.price, qty, buyer_maker=order.side == "BUY")
                self._fill(order, order.price, qty, trade_id, maker=True)
                left -= qty

    # --- orders -----------------------------------------------------------------------

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self._open.values() if symbol in (None, o.symbol)]

    def validate(self, *, symbol: str, side: str, type: str, quantity: Decimal | None,
                 quote_order_qty: Decimal | None, price: Decimal | None,
                 stop_price: Decimal | None, client_order_id: str) -> None:
        """The checks before the engine (filters, duplicates, post-only); raises ApiError."""
        rules, market = self.rules[symbol], self.markets[symbol]
        is_market = type in ("MARKET", "STOP_LOSS", "TAKE_PROFIT")
        if price is not None and type in LIMIT_TYPES:
            rules.check_price(price)
            rules.check_percent(side, price, market.mid())
        if stop_price is not None:
            rules.check_price(stop_price)
        if quantity is not None:
            rules.check_qty(quantity, market=is_market)
        ref = price if price is not None and not is_market else (stop_price or market.mid())
        notional = quantity * ref if quantity is not None else quote_order_qty or ZERO
        rules.check_notional(notional, market=is_market)
        if rules.max_num_orders and len(self.open_orders(symbol)) >= rules.max_num_orders:
            raise filter_failure("MAX_NUM_ORDERS")
        if any(o.client_order_id == client_order_id for o in self.open_orders()):
            raise rejected(DUPLICATE)
        if type == "LIMIT_MAKER" and price is not None and self._crosses(market, side, price):
            raise rejected(WOULD_TAKE)

    def place(self, *, symbol: str, side: str, type: str, time_in_force: str,
              quantity: Decimal | None, quote_order_qty: Decimal | None = None,
              price: Decimal | None = None, stop_price: Decimal | None = None,
              client_order_id: str, stp_mode: str = "EXPIRE_MAKER") -> tuple[Order, list[Fill]]:
        """Place an order; returns it and its immediate (taker) fills. Raises ApiError."""
        self.validate(symbol=symbol, side=side, type=type, quantity=quantity,
                      quote_order_qty=quote_order_qty, price=price, stop_price=stop_price,
                      client_order_id=client_order_id)
        rules, market = self.rules[symbol], self.markets[symbol]
        plan: list[tuple[Decimal, Decimal]] = []
        if type == "MARKET":
            plan = market.plan_take(side, qty=quantity, quote=quote_order_qty)
        elif type == "LIMIT" and price is not None and self._crosses(market, side, price):
            plan = market.plan_take(side, qty=quantity, limit=price)
            if time_in_force == "FOK" and sum(q for _, q in plan) < (quantity or ZERO):
                plan = []
        orig_qty = quantity if quantity is not None else sum((q for _, q in plan), ZERO)
        # Balance: a LIMIT (or stop) locks its whole cost; a MARKET needs its plan's cost.
        if type == "MARKET":
            asset = rules.quote if side == "BUY" else rules.base
            need = sum((p * q for p, q in plan), ZERO) if side == "BUY" else orig_qty
            lock = ZERO
        else:
            ref = price if price is not None else stop_price or ZERO
            asset = rules.quote if side == "BUY" else rules.base
            need = lock = orig_qty * ref if side == "BUY" else orig_qty
        if self.balances.get(asset, (ZERO, ZERO))[0] < need:
            raise rejected(INSUFFICIENT)

        now = self.clock()
        order = Order(
            symbol=symbol, order_id=self.next_order_id, client_order_id=client_order_id,
            side=side, type=type, time_in_force=time_in_force, price=price or ZERO,
            orig_qty=orig_qty, quote_order_qty=quote_order_qty or ZERO,
            stop_price=stop_price or ZERO, stp_mode=stp_mode, time=now, update_time=now,
            is_working=type not in STOP_TYPES, locked_asset=asset, locked=lock)
        self.next_order_id += 1
        self.orders[order.order_id] = self._open[order.order_id] = order
        self._by_client_id[(symbol, client_order_id)] = order
        self._move(asset, -lock, lock)
        self._report(order, "NEW", now)
        fills: list[Fill] = []
        for fill_price, qty in plan:
            market.consume(side, fill_price, qty)
            trade_id = market.record_trade(fill_price, qty, buyer_maker=side == "SELL")
            fills.append(self._fill(order, fill_price, qty, trade_id, maker=False))
        market.commit()
        if order.is_open and (type == "MARKET" or (
                type == "LIMIT" and time_in_force in ("IOC", "FOK"))):
            self._close(order, "EXPIRED", "EXPIRED")
        return order, fills

    def cancel(self, order: Order, cancel_client_id: str) -> Order:
        """Cancel an open order (-2011 "Unknown order sent." if it is not open)."""
        if not order.is_open:
            raise ApiError(400, -2011, "Unknown order sent.")
        self._close(order, "CANCELED", "CANCELED", client_order_id=cancel_client_id)
        return order

    def archive(self, order: Order) -> None:
        """Archive `order` as Binance does 90 days after it was canceled or expired
        with nothing executed (ValueError for any other order)."""
        if order.status not in ("CANCELED", "EXPIRED") or order.executed_qty:
            raise ValueError(f"Binance archives only orders canceled or expired with no "
                             f"executed qty, not {order.status} with {order.executed_qty}")
        order.archived = True

    def find(self, symbol: str, order_id: int | None = None,
             client_order_id: str | None = None) -> Order | None:
        """By order id, or the latest order using a client id (ids are reusable once closed)."""
        if order_id is not None:
            order = self.orders.get(order_id)
            return order if order is not None and order.symbol == symbol else None
        return self._by_client_id.get((symbol, client_order_id or ""))

    # --- internals ---------------------------------------------------------------------

    @staticmethod
    def _crosses(market: SymbolMarket, side: str, price: Decimal) -> bool:
        best = market.best_ask() if side == "BUY" else market.best_bid()
        return best is not None and (price >= best[0] if side == "BUY" else price <= best[0])

    def _move(self, asset: str, d_free: Decimal, d_locked: Decimal) -> None:
        free, locked = self.balances.get(asset, (ZERO, ZERO))
        free, locked = free + d_free, locked + d_locked
        assert free >= 0 and locked >= 0, f"negative balance of {asset}: {free} / {locked}"
        self.balances[asset] = (free, locked)

    def _fill(self, order: Order, price: Decimal, qty: Decimal, trade_id: int,
              maker: bool) -> Fill:
        rules = self.rules[order.symbol]
        quote_qty = price * qty
        if order.side == "BUY":
            fee, fee_asset = (qty * COMMISSION_RATE).quantize(E8), rules.base
            release = min(order.locked, qty * order.price) if order.locked else ZERO
            order.locked -= release
            self._move(rules.quote, release - quote_qty, -release)
            self._move(rules.base, qty - fee, ZERO)
        else:
            fee, fee_asset = (quote_qty * COMMISSION_RATE).quantize(E8), rules.quote
            release = min(order.locked, qty)
            order.locked -= release
            self._move(rules.base, release - qty, -release)
            self._move(rules.quote, quote_qty - fee, ZERO)
        order.executed_qty += qty
        order.cum_quote += quote_qty
        now = self.clock()
        order.update_time = now
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        if order.status == "FILLED":
            self._release(order)
            self._open.pop(order.order_id, None)
        self.trades.append({
            "symbol": order.symbol, "id": trade_id, "orderId": order.order_id,
            "orderListId": -1, "price": d8(price), "qty": d8(qty), "quoteQty": d8(quote_qty),
            "commission": d8(fee), "commissionAsset": fee_asset, "time": now,
            "isBuyer": order.side == "BUY", "isMaker": maker, "isBestMatch": True})
        self._emit(order, Execution("TRADE", now, self._execution_id(), last_qty=qty,
                                    last_price=price, commission=fee,
                                    commission_asset=fee_asset, trade_id=trade_id,
                                    maker=maker))
        return {"price": d8(price), "qty": d8(qty), "commission": d8(fee),
                "commissionAsset": fee_asset, "tradeId": trade_id}

    def _release(self, order: Order) -> None:
        if order.locked:
            self._move(order.locked_asset, order.locked, -order.locked)
            order.locked = ZERO

    def _close(self, order: Order, status: str, exec_type: str, client_order_id: str = "") -> None:
        now = self.clock()
        order.status, order.update_time = status, now
        self._release(order)
        self._open.pop(order.order_id, None)
        self._emit(order, Execution(exec_type, now, self._execution_id(),
                                    client_order_id=client_order_id))

    def _report(self, order: Order, exec_type: str, now: int) -> None:
        self._emit(order, Execution(exec_type, now, self._execution_id()))

    def _execution_id(self) -> int:
        self._next_execution_id += 1
        return self._next_execution_id

    def _emit(self, order: Order, ex: Execution) -> None:
        rules = self.rules[order.symbol]
        self._user_out.append(execution_report(order, ex))
        self._user_out.append(account_position(ex.time, self.balances, [rules.base, rules.quote]))
