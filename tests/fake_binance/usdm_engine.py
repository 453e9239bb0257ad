"""The fake Binance's USD-M account: perpetual orders, positions and wallet.

Linear, one-way. Each symbol has a price: the best bid is the price and the
best ask one tick above. MARKET orders and crossing LIMITs fill whole at the
touch (taker, 0.04%); resting LIMITs fill at their price when `set_price`
crosses them or `fill_resting` takes part of them (maker, 0.02%). Fills move
the signed position (average entry, realized PnL into the wallet, fees out),
using `events.margin` for margin and funding. An order that would need more
initial margin than is available is refused -2019; a reduce-only order that
would not reduce is refused -2022. Everything the account learns is queued in
`outbox` as user-stream frames (ORDER_TRADE_UPDATE, ACCOUNT_UPDATE).
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from events import margin
from events.instruments import Instrument
from tests.fake_binance.common import ApiError

ZERO = Decimal(0)
TAKER, MAKER = Decimal("0.0004"), Decimal("0.0002")
OPEN = ("NEW", "PARTIALLY_FILLED")


class UsdmAccount:
    def __init__(self, instruments: dict[str, Instrument], prices: dict[str, Decimal],
                 wallet: Decimal, now_ms: Any) -> None:
        self.instruments, self.price, self.now_ms = instruments, dict(prices), now_ms
        self.mark = dict(prices)
        self.wallet = wallet
        self.asset = "USDT"
        self.position: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (qty, entry)
        self.leverage = {s: 20 for s in instruments}
        self.margin_type = {s: "CROSSED" for s in instruments}
        self.dual = False
        self.orders: dict[int, dict[str, Any]] = {}
        self.by_cid: dict[tuple[str, str], int] = {}
        self.trades: list[dict[str, Any]] = []
        self.income: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []
        self._ids = itertools.count(1000)
        self._trade_ids = itertools.count(1)
        self._tran_ids = itertools.count(5_000_000)

    # -- views --------------------------------------------------------------------------

    def ask(self, symbol: str) -> Decimal:
        return self.price[symbol] + self.instruments[symbol].tick_size

    def qty(self, symbol: str) -> Decimal:
        return self.position.get(symbol, (ZERO, ZERO))[0]

    def used_margin(self) -> Decimal:
        used = ZERO
        for s, (q, _) in self.position.items():
            used += margin.initial_margin(abs(margin.notional(self.instruments[s], q,
                                                              self.mark[s])), self.leverage[s])
        for o in self.orders.values():
            if o["status"] in OPEN:
                left = Decimal(o["origQty"]) - Decimal(o["executedQty"])
                used += margin.initial_margin(left * Decimal(o["price"]),
                                              self.leverage[o["symbol"]])
        return used

    def unrealized(self) -> Decimal:
        return sum((margin.unrealized(self.instruments[s], q, e, self.mark[s])
                    for s, (q, e) in self.position.items()), ZERO)

    def available(self) -> Decimal:
        return self.wallet + min(self.unrealized(), ZERO) - self.used_margin()

    # -- orders ----------------------------------------------------------------------------

    def place(self, p: dict[str, str]) -> dict[str, Any]:
        symbol = p.get("symbol", "")
        if symbol not in self.instruments:
            raise ApiError(400, -1121, "Invalid symbol.")
        cid = p.get("newClientOrderId") or f"fake-{next(self._ids)}"
        if (symbol, cid) in self.by_cid:
            raise ApiError(400, -4116, "ClientOrderId is duplicated.")
        inst = self.instruments[symbol]
        side, otype = p["side"], p["type"]
        qty = Decimal(p["quantity"])
        if not inst.on_qty_grid(qty):
            raise ApiError(400, -1111, "Precision is over the maximum defined for this asset.")
        price = Decimal(p["price"]) if "price" in p else ZERO
        sign = 1 if side == "BUY" else -1
        reduce = p.get("reduceOnly") == "true"
        pos = self.qty(symbol)
        if reduce and (pos == 0 or (pos > 0) == (sign > 0) or qty > abs(pos)):
            raise ApiError(400, -2022, "ReduceOnly Order is rejected.")
        touch = self.ask(symbol) if side == "BUY" else self.price[symbol]
        ref = touch if otype == "MARKET" else price
        grows = not reduce and (pos == 0 or (pos > 0) == (sign > 0) or qty > abs(pos))
        if grows and margin.initial_margin(qty * ref, self.leverage[symbol]) > self.available():
            raise ApiError(400, -2019, "Margin is insufficient.")
        oid = next(self._ids)
        o = {"orderId": oid, "symbol": symbol, "clientOrderId": cid, "side": side,
             "type": otype, "origType": otype, "timeInForce": p.get("timeInForce", "GTC"),
             "origQty": str(qty), "price": str(price), "avgPrice": "0", "executedQty": "0",
             "cumQuote": "0", "status": "NEW", "reduceOnly": reduce, "positionSide": "BOTH",
             "updateTime": self.now_ms(), "time": self.now_ms()}
        self.orders[oid] = o
        self.by_cid[(symbol, cid)] = oid
        crosses = otype == "MARKET" or (price >= touch if sign > 0 else price <= touch)
        if o["timeInForce"] == "GTX" and crosses:
            self._end(o, "EXPIRED")
            return dict(o)
        self._update(o, "NEW")
        if crosses:
            self._fill(o, qty, touch, taker=True)
        elif o["timeInForce"] in ("IOC", "FOK"):
            self._end(o, "EXPIRED")
        return dict(o)

    def find(self, p: dict[str, str]) -> dict[str, Any]:
        key = (p.get("symbol", ""), p.get("origClientOrderId", ""))
        if key not in self.by_cid:
            raise ApiError(400, -2013, "Order does not exist.")
        return self.orders[self.by_cid[key]]

    def cancel(self, p: dict[str, str]) -> dict[str, Any]:
        try:
            o = self.find(p)
        except ApiError:
            raise ApiError(400, -2011, "Unknown order sent.") from None
        if o["status"] not in OPEN:
            raise ApiError(400, -2011, "Unknown order sent.")
        self._end(o, "CANCELED")
        return dict(o)

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the market; resting orders it crosses fill whole at their price."""
        self.price[symbol] = self.mark[symbol] = price
        for o in list(self.orders.values()):
            if o["symbol"] != symbol or o["status"] not in OPEN or o["type"] != "LIMIT":
                continue
            limit = Decimal(o["price"])
            if (o["side"] == "BUY" and self.ask(symbol) <= limit) or (
                    o["side"] == "SELL" and price >= limit):
                left = Decimal(o["origQty"]) - Decimal(o["executedQty"])
                self._fill(o, left, limit, taker=False)

    def fill_resting(self, client_order_id: str, symbol: str, qty: Decimal) -> None:
        """A partial (or whole) maker fill of a resting order at its price."""
        o = self.orders[self.by_cid[(symbol, client_order_id)]]
        self._fill(o, qty, Decimal(o["price"]), taker=False)

    def liquidate(self, symbol: str, price: Decimal, fee_rate: Decimal = Decimal("0.0125")
                  ) -> dict[str, Any]:
        """Close `symbol`'s whole position at `price` as Binance's liquidation
        engine does: an order of type LIQUIDATION, client id "autoclose-<ms>"."""
        q = self.qty(symbol)
        assert q != 0, f"no position on {symbol} to liquidate"
        now = self.now_ms()
        oid = next(self._ids)
        o = {"orderId": oid, "symbol": symbol, "clientOrderId": f"autoclose-{now}",
             "side": "SELL" if q > 0 else "BUY", "type": "LIQUIDATION",
             "origType": "LIQUIDATION", "timeInForce": "IOC", "origQty": str(abs(q)),
             "price": str(price), "avgPrice": "0", "executedQty": "0", "cumQuote": "0",
             "status": "NEW", "reduceOnly": True, "positionSide": "BOTH", "updateTime": now,
             "time": now}
        self.orders[oid] = o
        self.by_cid[(symbol, o["clientOrderId"])] = oid
        self._fill(o, abs(q), price, taker=True, fee_rate=fee_rate)
        return o

    # -- funding ---------------------------------------------------------------------------

    def pay_funding(self, symbol: str, rate: Decimal, funding_ms: int) -> Decimal:
        """Settle funding on `symbol`'s position at its mark; returns the amount."""
        q = self.qty(symbol)
        amount = margin.funding(self.instruments[symbol], q, self.mark[symbol], rate)
        if q == 0:
            return ZERO
        self.wallet += amount
        t = funding_ms + 7
        self.income.append({"symbol": symbol, "incomeType": "FUNDING_FEE",
                            "income": str(amount), "asset": self.asset, "time": t,
                            "info": "FUNDING_FEE", "tranId": next(self._tran_ids),
                            "tradeId": ""})
        isolated = self.margin_type[symbol] == "ISOLATED"
        self._account("FUNDING_FEE", amount, [symbol] if isolated else [], t)
        return amount

    # -- internals -------------------------------------------------------------------------

    def _fill(self, o: dict[str, Any], qty: Decimal, price: Decimal, *, taker: bool,
              fee_rate: Decimal | None = None) -> None:
        symbol = o["symbol"]
        inst = self.instruments[symbol]
        sign = 1 if o["side"] == "BUY" else -1
        fee = qty * price * (fee_rate if fee_rate is not None else TAKER if taker else MAKER)
        q, entry = self.position.get(symbol, (ZERO, ZERO))
        realized = ZERO
        if q == 0 or (q > 0) == (sign > 0):
            new_q = q + sign * qty
            entry = (entry * abs(q) + price * qty) / abs(new_q)
        else:
            closed = min(qty, abs(q))
            realized = margin.unrealized(inst, (closed if q > 0 else -closed), entry, price)
            new_q = q + sign * qty
            if new_q == 0:
                entry = ZERO
            elif (new_q > 0) != (q > 0):
                entry = price
        self.position[symbol] = (new_q, entry)
        if new_q == 0:
            del self.position[symbol]
        self.wallet += realized - fee
        done = Decimal(o["executedQty"]) + qty
        o["executedQty"] = str(done)
        o["avgPrice"] = str(price)
        o["status"] = "FILLED" if done == Decimal(o["origQty"]) else "PARTIALLY_FILLED"
        o["updateTime"] = self.now_ms()
        tid = next(self._trade_ids)
        self.trades.append({
            "buyer": sign > 0, "commission": str(fee), "commissionAsset": self.asset,
            "id": tid, "maker": not taker, "orderId": o["orderId"], "price": str(price),
            "qty": str(qty), "quoteQty": str(qty * price), "realizedPnl": str(realized),
            "side": o["side"], "positionSide": "BOTH", "symbol": symbol,
            "time": o["updateTime"]})
        self._update(o, "TRADE", l=str(qty), L=str(price), t=tid, n=str(fee), N=self.asset,
                     m=not taker, rp=str(realized))
        self._account("ORDER", realized - fee, [symbol], o["updateTime"])

    def _end(self, o: dict[str, Any], status: str) -> None:
        o["status"] = status
        o["updateTime"] = self.now_ms()
        self._update(o, status)

    def _update(self, o: dict[str, Any], x: str, **extra: Any) -> None:
        body = {"s": o["symbol"], "c": o["clientOrderId"], "S": o["side"], "o": o["type"],
                "f": o["timeInForce"], "q": o["origQty"], "p": o["price"], "ap": o["avgPrice"],
                "sp": "0", "x": x, "X": o["status"], "i": o["orderId"], "l": "0",
                "z": o["executedQty"], "L": "0", "T": o["updateTime"], "t": 0, "b": "0",
                "a": "0", "m": False, "R": o["reduceOnly"], "wt": "CONTRACT_PRICE",
                "ot": o["type"], "ps": "BOTH", "cp": False, "rp": "0", "pP": False,
                "si": 0, "ss": 0, "V": "NONE", "pm": "NONE", "gtd": 0, "n": "0"}
        body.update(extra)
        self.outbox.append({"e": "ORDER_TRADE_UPDATE", "E": o["updateTime"] + 1,
                            "T": o["updateTime"], "o": body})

    def _account(self, reason: str, change: Decimal, symbols: list[str], t: int) -> None:
        self.outbox.append({"e": "ACCOUNT_UPDATE", "E": t + 1, "T": t, "a": {
            "m": reason,
            "B": [{"a": self.asset, "wb": str(self.wallet), "cw": str(self.wallet),
                   "bc": str(change)}],
            "P": [{"s": s, "pa": str(self.qty(s)),
                   "ep": str(self.position.get(s, (ZERO, ZERO))[1]), "bep": "0", "cr": "0",
                   "up": "0", "mt": self.margin_type[s].lower(), "iw": "0", "ps": "BOTH"}
                  for s in symbols]}})
