"""The strategy the simulation runs: it trades at random (seeded), through every kind of
order the core handles: market and limit orders, brackets, OCO pairs, cancels."""

from __future__ import annotations

import random
from decimal import Decimal

import msgspec

from daemon.strategies.base import Strategy
from events.market import Trade
from events.orders import BUY, SELL, Fill


class ChaosParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seed: int = 0
    incarnation: int = 0  # restarts so far: a new stream of choices after each
    rate: float = 0.35  # chance of acting on a trade
    max_qty: float = 0.004
    # how far from the last trade it prices: limits within +-2 % x reach, brackets and
    # OCOs at +-1 % x reach (a market moving slowly relative to its price needs less)
    reach: float = 1.0


class ChaosTrader(Strategy):
    Params = ChaosParams

    def on_start(self) -> None:
        p = self.params
        self.rng = random.Random(f"{p.seed}/{self.id}/{p.incarnation}")
        self.quiet = 0  # trades seen since its last fill

    def on_fill(self, fill: Fill) -> None:
        self.quiet = 0

    def on_trade(self, trade: Trade) -> None:
        rng = self.rng
        symbol = trade.symbol
        inst = self.instrument(symbol)
        self.quiet += 1
        if self.quiet >= 15:
            # a while without a fill: clear what rests (it counts against the position
            # limit) and take liquidity, reducing what it holds
            self.quiet = 0
            self.cancel_all(symbol)
            held = self.position(symbol).qty
            side = SELL if held > 0 else BUY
            qty = min(inst.round_qty(abs(held)), inst.step_size * 2) if held else inst.step_size
            self.submit(self.order_request(side, symbol, qty or inst.step_size))
            return
        if rng.random() > self.params.rate:
            return
        step = inst.step_size
        qty = step * rng.randint(1, max(1, int(Decimal(str(self.params.max_qty)) / step)))
        px = Decimal(repr(trade.price))
        roll = rng.random()
        open_orders = self.open_orders(symbol)
        if open_orders and (roll < 0.15 or len(open_orders) >= 3):
            # keep few orders resting: the position limit counts them all
            self.cancel(rng.choice(open_orders).client_order_id)
            return
        side = BUY if rng.random() < 0.55 else SELL
        held = self.position(symbol).qty
        if side == SELL and held > 0 and rng.random() < 0.7:
            qty = min(qty, inst.round_qty(held)) or qty
        off = Decimal(rng.randint(-20, 20)) / 1000  # -2% .. +2%
        step_out = Decimal("0.01")  # brackets' and OCOs' distance
        if self.params.reach != 1.0:
            reach = Decimal(repr(self.params.reach))
            off, step_out = off * reach, step_out * reach
        if roll < 0.45:
            self.submit(self.order_request(side, symbol, qty))
        elif roll < 0.75:
            self.submit(self.order_request(side, symbol, qty, price=px * (1 + off)))
        elif roll < 0.9 and side == BUY:
            self.bracket(BUY, symbol, qty, stop_price=px * (1 - step_out),
                         target_price=px * (1 + step_out),
                         price=px * (1 + off) if rng.random() < 0.5 else None)
        elif held > 0:
            q = min(qty, inst.round_qty(held))
            if q > 0:
                self.oco(self.order_request(SELL, symbol, q, price=px * (1 + step_out)),
                         self.order_request(SELL, symbol, q, trigger_price=px * (1 - step_out)))
