"""The pure matching engine and market simulator (no sockets)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from tests.fake_binance.common import ApiError
from tests.fake_binance.engine import Exchange

NOW = 1_763_735_400_000


def exchange(**kw: Any) -> Exchange:
    return Exchange(seed=3, clock=lambda: NOW, **kw)


def place(ex: Exchange, **kw: Any):  # type: ignore[no-untyped-def]
    args: dict[str, Any] = dict(symbol="BTCUSDT", time_in_force="GTC", quantity=D("0.001"),
                                client_order_id=f"t-{len(ex.orders)}")
    args.update(kw)
    return ex.place(**args)


def test_same_seed_same_market() -> None:
    a, b = exchange(), exchange()
    for _ in range(50):
        a.tick()
        b.tick()
    assert a.markets["BTCUSDT"].book() == b.markets["BTCUSDT"].book()
    assert a.drain_market() == b.drain_market()


def test_depth_updates_are_contiguous_and_rebuild_the_book() -> None:
    ex = exchange()
    market = ex.markets["BTCUSDT"]
    bids, asks = (dict(side) for side in market.book())
    last_u = market.update_id
    for _ in range(200):
        ex.tick()
    for _, kind, msg in ex.drain_market():
        if kind != "depth":
            continue
        assert msg["U"] == last_u + 1 and msg["u"] >= msg["U"] and "pu" not in msg
        last_u = msg["u"]
        for side, levels in ((bids, msg["b"]), (asks, msg["a"])):
            for p, q in levels:
                if D(q) == 0:
                    side.pop(D(p), None)
                else:
                    side[D(p)] = D(q)
    assert last_u == market.update_id
    assert sorted(bids.items(), reverse=True) == market.book()[0]
    assert sorted(asks.items()) == market.book()[1]
    best_bid, best_ask = market.book()[0][0][0], market.book()[1][0][0]
    assert best_bid < best_ask


def test_gap_skips_ids_and_changes_the_book_unseen() -> None:
    ex = exchange()
    market = ex.markets["BTCUSDT"]
    before = market.update_id
    market.request_gap(5)
    ex.tick()
    depth = [m for _, k, m in ex.drain_market() if k == "depth"]
    assert depth[0]["U"] == before + 6


def test_market_buy_takes_the_book_with_commission_in_base() -> None:
    ex = exchange()
    market = ex.markets["BTCUSDT"]
    ask, ask_qty = market.best_ask()  # type: ignore[misc]
    order, fills = place(ex, side="BUY", type="MARKET", quantity=D("0.002"))
    assert order.status == "FILLED" and order.executed_qty == D("0.002")
    assert fills == [{"price": f"{ask:.8f}", "qty": "0.00200000", "commission": "0.00000200",
                      "commissionAsset": "BTC", "tradeId": fills[0]["tradeId"]}]
    assert ex.balances["BTC"] == (D("1.001998"), 0)
    assert ex.balances["USDT"] == (D("100000") - ask * D("0.002"), 0)
    assert market.best_ask() == (ask, ask_qty - D("0.002"))
    reports = [e for e in ex.drain_user() if e["e"] == "executionReport"]
    assert [(r["x"], r["X"]) for r in reports] == [("NEW", "NEW"), ("TRADE", "FILLED")]
    assert reports[1]["m"] is False and reports[1]["N"] == "BTC" and reports[1]["t"] > 0
    assert len({r["I"] for r in reports}) == 2


def test_market_sell_by_quote_qty_commission_in_quote() -> None:
    ex = exchange()
    bid = ex.markets["BTCUSDT"].best_bid()[0]  # type: ignore[index]
    order, fills = place(ex, side="SELL", type="MARKET", quantity=None,
                         quote_order_qty=D("100"))
    qty = D(fills[0]["qty"])
    assert qty == (D("100") / bid // D("0.00001")) * D("0.00001")
    assert fills[0]["commissionAsset"] == "USDT"
    assert D(fills[0]["commission"]) == (qty * bid * D("0.001")).quantize(D("1E-8"))
    assert order.status == "FILLED" and order.quote_order_qty == D("100")


def test_limit_locks_and_cancel_releases() -> None:
    ex = exchange()
    bid = ex.markets["BTCUSDT"].best_bid()[0]  # type: ignore[index]
    order, fills = place(ex, side="BUY", type="LIMIT", price=bid - 1, quantity=D("0.01"))
    assert fills == [] and order.status == "NEW"
    assert ex.balances["USDT"] == (D("100000") - (bid - 1) * D("0.01"), (bid - 1) * D("0.01"))
    ex.cancel(order, "c-1")
    assert order.status == "CANCELED" and ex.balances["USDT"] == (D("100000"), 0)
    cancel = [e for e in ex.drain_user() if e["e"] == "executionReport"][-1]
    assert (cancel["x"], cancel["X"], cancel["c"], cancel["C"]) == (
        "CANCELED", "CANCELED", "c-1", order.client_order_id)
    with pytest.raises(ApiError) as e:
        ex.cancel(order, "c-2")
    assert e.value.code == -2011


def test_resting_orders_fill_as_maker_when_trades_cross() -> None:
    ex = exchange()
    market = ex.markets["BTCUSDT"]
    bid = market.best_bid()[0]  # type: ignore[index]
    ask = market.best_ask()[0]  # type: ignore[index]
    buy, _ = place(ex, side="BUY", type="LIMIT", price=bid)
    sell, _ = place(ex, side="SELL", type="LIMIT_MAKER", price=ask)
    for _ in range(200):
        ex.tick()
        if not buy.is_open and not sell.is_open:
            break
    assert buy.status == sell.status == "FILLED"
    mine = [t for t in ex.trades if t["orderId"] in (buy.order_id, sell.order_id)]
    assert all(t["isMaker"] for t in mine) and {t["price"] for t in mine} == {
        f"{bid:.8f}", f"{ask:.8f}"}
    assert ex.balances["BTC"][1] == 0 and ex.balances["USDT"][1] == 0


def test_ioc_remainder_and_fok_expire() -> None:
    ex = exchange(balances={"BTC": (D(10), D(0)), "USDT": (D(10_000_000), D(0))})
    market = ex.markets["BTCUSDT"]
    ask, ask_qty = market.best_ask()  # type: ignore[misc]
    ioc, fills = place(ex, side="BUY", type="LIMIT", time_in_force="IOC", price=ask,
                       quantity=ask_qty + D("0.001"))
    assert ioc.status == "EXPIRED" and ioc.executed_qty == ask_qty and len(fills) == 1
    ask2, qty2 = market.best_ask()  # type: ignore[misc]
    fok, fills = place(ex, side="BUY", type="LIMIT", time_in_force="FOK", price=ask2,
                       quantity=qty2 + D("0.001"))
    assert fok.status == "EXPIRED" and fills == [] and market.best_ask() == (ask2, qty2)
    assert ex.balances["USDT"][1] == 0


@pytest.mark.parametrize(("kw", "code", "msg"), [
    (dict(price=D("64000.001")), -1013, "Filter failure: PRICE_FILTER"),
    (dict(quantity=D("0.000015")), -1013, "Filter failure: LOT_SIZE"),
    (dict(price=D("60000"), quantity=D("0.00005")), -1013, "Filter failure: NOTIONAL"),
    (dict(price=D("1000")), -1013, "Filter failure: PERCENT_PRICE_BY_SIDE"),
    (dict(quantity=D("5")), -2010, "Account has insufficient balance for requested action."),
    (dict(type="LIMIT_MAKER", price=D("64000.01")), -2010,
     "Order would immediately match and take."),
])
def test_rejections(kw: dict[str, Any], code: int, msg: str) -> None:
    ex = exchange()
    args: dict[str, Any] = dict(side="BUY", type="LIMIT", price=D("63000"))
    args.update(kw)
    with pytest.raises(ApiError) as e:
        place(ex, **args)
    assert (e.value.status, e.value.code, e.value.msg) == (400, code, msg)
    assert ex.orders == {} and ex.drain_user() == []


def test_duplicate_client_id_only_while_open() -> None:
    ex = exchange()
    order, _ = place(ex, side="BUY", type="LIMIT", price=D("63000"), client_order_id="dup")
    with pytest.raises(ApiError) as e:
        place(ex, side="BUY", type="LIMIT", price=D("63000"), client_order_id="dup")
    assert e.value.msg == "Duplicate order sent."
    ex.cancel(order, "x")
    again, _ = place(ex, side="BUY", type="LIMIT", price=D("63000"), client_order_id="dup")
    assert ex.find("BTCUSDT", client_order_id="dup") is again
