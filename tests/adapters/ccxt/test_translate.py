"""The one translator of ccxt order and trade dicts: duplicated, reordered and
restarted streams change nothing (what reaches the OMS is the same set of facts),
and numbers stay exact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt.pro
import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ccxt.translate import CcxtTranslator, dec
from adapters.ccxt.venue import CcxtVenue
from daemon.config import Config
from daemon.node import TradingNode
from daemon.trading.api import OrderRequest
from events.bus import Bus
from events.market import Quote
from events.orders import Fill, OrderAccepted, OrderCanceled
from events.state import BalanceChanged
from replay.clock import LiveClock
from tests.adapters.ccxt.live import SYMBOL, config

OID = "4871"
QTY = Decimal("0.010")


class _Clock(LiveClock):
    def __init__(self) -> None:  # no loop needed: nothing here waits
        pass

    def now_ns(self) -> int:
        return 1_700_000_000_000_000_000


def _node() -> tuple[TradingNode, CcxtVenue, list[Any]]:
    cfg: Config = config("http://127.0.0.1:9")
    cfg = msgspec.structs.replace(cfg, venues=[msgspec.structs.replace(
        cfg.venues[0], trade=True)])
    bus, seen = Bus(), []
    bus.subscribe_all(seen.append)
    node = TradingNode(cfg, bus, _Clock(), replay=False)
    exchange = ccxt.pro.binance({"apiKey": "k", "secret": "s"})  # no request is made
    insts = [i for k, i in node.instruments.items() if k[0] == "bn"]
    venue = CcxtVenue("bn", insts, bus, exchange=exchange, oms=node.oms, risk=node.risk)
    node.risk.unblock_venue("bn")
    bus.publish(Quote(ts_event=1, ts_recv=1, venue="bn", symbol=SYMBOL, bid=63999.0,
                      ask=64001.0, bid_size=1.0, ask_size=1.0))  # the price band's reference
    bus.publish(BalanceChanged(ts_event=1, ts_recv=1, venue="bn", currency="USDT",
                               total=Decimal(10_000), free=Decimal(10_000)))
    return node, venue, seen


def _order(cid: str, status: str, filled: Decimal) -> dict[str, Any]:
    return {"id": OID, "clientOrderId": cid, "symbol": SYMBOL, "side": "buy",
            "type": "limit", "status": status, "amount": float(QTY), "filled": float(filled),
            "timestamp": 1_700_000_000_000, "trades": []}


def _trade(i: int, amount: Decimal, with_cid: str | None) -> dict[str, Any]:
    t = {"id": str(900 + i), "order": OID, "symbol": SYMBOL, "side": "buy",
         "amount": float(amount), "price": 64000.01 + i, "timestamp": 1_700_000_000_100 + i,
         "takerOrMaker": "maker", "fee": {"cost": 1e-06, "currency": "BTC"}}
    if with_cid:
        t["clientOrderId"] = with_cid
    return t


@st.composite
def scenarios(draw: Any) -> tuple[list[Decimal], str, list[int], int]:
    """Fill sizes, the order's end, a shuffled and duplicated delivery of the
    updates (indexes), and a restart point."""
    sizes = draw(st.lists(st.sampled_from([Decimal("0.001"), Decimal("0.002"),
                                           Decimal("0.003")]), min_size=0, max_size=3))
    end = "closed" if sum(sizes) == QTY else draw(st.sampled_from(["open", "canceled",
                                                                   "expired"]))
    n = 2 + len(sizes)  # the open dict, the final dict, each trade
    order = draw(st.permutations(range(n)))
    dups = draw(st.lists(st.integers(0, n - 1), max_size=4))
    delivery = list(order)
    for d in dups:
        delivery.insert(draw(st.integers(0, len(delivery))), d)
    return sizes, end, delivery, draw(st.integers(0, len(delivery)))


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.booleans())
def test_duplicates_reordering_and_restarts_change_nothing(
        scenario: tuple[list[Decimal], str, list[int], int], trades_carry_cid: bool) -> None:
    sizes, end, delivery, restart_at = scenario
    node, venue, seen = _node()
    cid = node.oms.submit("s1", OrderRequest(venue="bn", symbol=SYMBOL, side="BUY", qty=QTY,
                                             order_type="LIMIT", price=Decimal(64000)))
    filled = sum(sizes, Decimal(0))
    updates: list[tuple[str, dict[str, Any]]] = [
        ("order", _order(cid, "open", Decimal(0))),
        ("order", _order(cid, end, filled))]
    updates += [("trade", _trade(i, q, cid if trades_carry_cid else None))
                for i, q in enumerate(sizes)]
    translator = venue.translator

    def deliver(i: int) -> None:
        kind, update = updates[i]
        events = translator.order(update, 1) if kind == "order" \
            else translator.trade(update, 1)
        venue.publish_orders(events)

    for k, i in enumerate(delivery):
        if k == restart_at:
            # a new process: a fresh translator, the OMS as folded from the journal,
            # and reconciliation asking again for what the exchange had said so far
            translator = venue.translator = CcxtTranslator("bn", venue._strategy_of,
                                                            venue._client_id_of)
            for j in sorted(set(delivery[:k])):
                deliver(j)
        deliver(i)
    fills = [e for e in seen if type(e) is Fill]
    assert sorted(f.trade_id for f in fills) == sorted(str(900 + i) for i in range(len(sizes)))
    order = node.oms.orders[cid]
    assert order.filled_qty == filled
    assert all(f.side == "BUY" and f.qty in sizes for f in fills)
    assert len([e for e in seen if type(e) is OrderAccepted]) <= 1  # none after a fill
    want = {"closed": "filled", "open": "partially_filled" if filled else "accepted",
            "canceled": "canceled", "expired": "expired"}[end]
    assert order.state == want, (order.state, delivery)
    assert len([e for e in seen if type(e) is OrderCanceled]) == (end == "canceled")


@given(st.decimals(min_value=Decimal("1e-8"), max_value=Decimal("1e7"), places=8,
                   allow_nan=False, allow_infinity=False))
def test_a_float_from_ccxt_is_the_decimal_the_exchange_sent(x: Decimal) -> None:
    """ccxt parses "0.00100000" to a float; we get Decimal("0.001") back, never
    0.001000000000000000020816681711721685... (ccxt #663/#28408)."""
    assert dec(float(str(x))) == x.normalize()
