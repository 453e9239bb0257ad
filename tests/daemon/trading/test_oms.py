"""The OMS and the order state machine."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from daemon.trading.api import OrderRequest
from daemon.trading.oms import OMS, OMSError
from daemon.trading.orders import (
    ACCEPT,
    AMEND,
    CANCEL,
    EXPIRE,
    FILL_FULL,
    FILL_PARTIAL,
    REJECT,
    TRANSITIONS,
    IllegalTransition,
    Order,
)
from events import (
    CancelOrder,
    Fill,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
)
from events.bus import Bus

STATES = sorted({s for s, _ in TRANSITIONS} | set(TRANSITIONS.values()))
TRIGGERS = [ACCEPT, REJECT, FILL_PARTIAL, FILL_FULL, CANCEL, EXPIRE, AMEND]


def new_order(state: str = "submitted") -> Order:
    o = Order(client_order_id="s-1", strategy_id="s", venue="sim", symbol="BTCUSDT", side="BUY",
              order_type="LIMIT", qty=D(2), price=D(100), trigger_price=None,
              time_in_force="GTC", post_only=False, reduce_only=False, contingency="",
              linked_order_ids=(), parent_order_id="", ts_submitted=0)
    o.state = state
    return o


@pytest.mark.parametrize(("state", "trigger"), sorted(TRANSITIONS))
def test_every_legal_transition(state: str, trigger: str) -> None:
    order = new_order(state)
    assert order.apply(trigger) == TRANSITIONS[(state, trigger)]


ILLEGAL = [(s, t) for s in STATES for t in TRIGGERS if (s, t) not in TRANSITIONS]


@pytest.mark.parametrize(("state", "trigger"), ILLEGAL)
def test_every_illegal_transition_raises(state: str, trigger: str) -> None:
    order = new_order(state)
    with pytest.raises(IllegalTransition, match=state):
        order.apply(trigger)
    assert order.state == state


def test_terminal_states_accept_nothing() -> None:
    for state in ("filled", "canceled", "rejected", "expired"):
        assert not [t for (s, t) in TRANSITIONS if s == state]


def test_fills_accumulate_and_overfill_is_illegal() -> None:
    order = new_order("accepted")
    assert order.add_fill(D("0.5"), D(100)) == "partially_filled"
    assert order.add_fill(D("1.5"), D(102)) == "filled"
    assert order.avg_fill_price == D("101.5")
    with pytest.raises(IllegalTransition):
        new_order("accepted").add_fill(D(3), D(1))


class Harness:
    def __init__(self) -> None:
        self.now = 1_000
        self.bus = Bus()
        self.events: list = []
        self.bus.subscribe_all(self.events.append)
        self.oms = OMS(self.bus.publish, lambda: self.now)
        self.oms.subscribe(self.bus)

    def req(self, **kw) -> OrderRequest:
        base = dict(venue="sim", symbol="BTCUSDT", side="BUY", qty=D(1), order_type="LIMIT",
                    price=D(100))
        base.update(kw)
        return OrderRequest(**base)

    def ack(self, coid: str) -> None:
        self.bus.publish(OrderAccepted(ts_event=self.now, ts_recv=self.now, venue="sim",
                                       symbol="BTCUSDT", strategy_id="s", client_order_id=coid,
                                       venue_order_id="v-" + coid))

    def fill(self, coid: str, qty: str, price: str = "100", trade_id: str | None = None) -> None:
        self.bus.publish(Fill(ts_event=self.now, ts_recv=self.now, venue="sim", symbol="BTCUSDT",
                              strategy_id="s", client_order_id=coid,
                              trade_id=trade_id or f"t{len(self.events)}", side="BUY", qty=D(qty),
                              price=D(price), fee=D(0), fee_currency="USDT", liquidity="MAKER"))


def test_client_order_ids_are_deterministic_per_strategy() -> None:
    h = Harness()
    assert [h.oms.submit("a", h.req()) for _ in range(2)] == ["a-1", "a-2"]
    assert h.oms.submit("b", h.req()) == "b-1"
    submitted = [e for e in h.events if isinstance(e, OrderSubmitted)]
    assert [e.client_order_id for e in submitted] == ["a-1", "a-2", "b-1"]
    assert submitted[0].ts_event == 1_000 and submitted[0].qty == D(1)


def test_lifecycle_through_the_bus() -> None:
    h = Harness()
    coid = h.oms.submit("s", h.req(qty=D(2)))
    h.ack(coid)
    order = h.oms.orders[coid]
    assert order.state == "accepted" and order.venue_order_id == "v-s-1"
    h.fill(coid, "1")
    assert order.state == "partially_filled" and h.oms.open_orders() == [order]
    h.fill(coid, "1")
    assert order.state == "filled" and h.oms.open_orders() == []


def test_a_repeated_fill_is_counted_once() -> None:
    h = Harness()
    coid = h.oms.submit("s", h.req(qty=D(2)))
    h.fill(coid, "1", trade_id="T1")
    h.fill(coid, "1", trade_id="T1")
    assert h.oms.orders[coid].filled_qty == D(1)


def test_risk_refusal_publishes_only_a_rejection_naming_the_check() -> None:
    class Refuse:
        check = "max_order_qty"
        reason = "qty 2 > max_order_qty 1"

    h = Harness()
    h.oms.risk = type("Risk", (), {"check": lambda self, sid, req, oo: Refuse()})()
    coid = h.oms.submit("s", h.req(qty=D(2)))
    assert [type(e) for e in h.events] == [OrderRejected]
    rej = h.events[0]
    assert (rej.client_order_id, rej.check, rej.qty, rej.side) == (coid, "max_order_qty", D(2),
                                                                    "BUY")
    assert coid not in h.oms.orders
    assert h.oms.submit("s", h.req()) == "s-2"  # the refused id is used up, never reused


def test_cancel_publishes_a_request_once_and_the_venue_answer_closes() -> None:
    h = Harness()
    coid = h.oms.submit("s", h.req())
    h.ack(coid)
    h.oms.cancel("s", coid)
    h.oms.cancel("s", coid)  # a second cancel while one is pending sends nothing
    assert [type(e) for e in h.events].count(CancelOrder) == 1
    h.bus.publish(OrderCanceled(ts_event=1, ts_recv=1, venue="sim", symbol="BTCUSDT",
                                strategy_id="s", client_order_id=coid))
    assert h.oms.orders[coid].state == "canceled"
    with pytest.raises(OMSError):
        h.oms.cancel("other", coid)
    with pytest.raises(OMSError):
        h.oms.cancel("s", "nope-1")


def test_oco_fill_cancels_the_other_leg() -> None:
    h = Harness()
    a, b = h.oms.submit_oco("s", h.req(side="SELL", price=D(110)),
                            h.req(side="SELL", order_type="STOP_MARKET", price=None,
                                  trigger_price=D(90)))
    subs = [e for e in h.events if isinstance(e, OrderSubmitted)]
    assert [(e.contingency, e.linked_order_ids) for e in subs] == [("OCO", [b]), ("OCO", [a])]
    h.ack(a)
    h.ack(b)
    h.fill(a, "1", "110")
    cancels = [e for e in h.events if isinstance(e, CancelOrder)]
    assert [c.client_order_id for c in cancels] == [b]


def test_bracket_submits_stop_and_target_when_the_entry_fills() -> None:
    h = Harness()
    entry, stop, target = h.oms.submit_bracket(
        "s", h.req(order_type="MARKET", price=None),
        h.req(side="SELL", order_type="STOP_MARKET", price=None, trigger_price=D(95)),
        h.req(side="SELL", price=D(110)))
    assert (entry, stop, target) == ("s-1", "s-2", "s-3")
    assert [e.client_order_id for e in h.events if isinstance(e, OrderSubmitted)] == [entry]
    h.ack(entry)
    h.fill(entry, "1")
    subs = [e for e in h.events if isinstance(e, OrderSubmitted)]
    assert [(e.client_order_id, e.parent_order_id, e.linked_order_ids) for e in subs[1:]] == [
        (stop, entry, [target]), (target, entry, [stop])]


def test_bracket_children_are_dropped_when_the_entry_dies() -> None:
    h = Harness()
    entry, _, _ = h.oms.submit_bracket("s", h.req(), h.req(side="SELL"), h.req(side="SELL"))
    h.bus.publish(OrderExpired(ts_event=1, ts_recv=1, venue="sim", symbol="BTCUSDT",
                               strategy_id="s", client_order_id=entry))
    assert h.oms._brackets == {}


def test_recovery_by_folding_the_journal_gives_the_same_state() -> None:
    h = Harness()
    c1 = h.oms.submit("s", h.req(qty=D(3)))
    h.ack(c1)
    h.fill(c1, "1")
    c2 = h.oms.submit("s", h.req(side="SELL"))
    h.ack(c2)
    h.oms.cancel("s", c2)
    recovered = OMS(lambda e: None, lambda: 0)
    for event in h.events:
        recovered.apply(event)
    assert {k: (o.state, o.filled_qty, o.cancel_pending) for k, o in recovered.orders.items()} == {
        k: (o.state, o.filled_qty, o.cancel_pending) for k, o in h.oms.orders.items()}
    assert recovered.next_client_order_id("s") == "s-3"  # never reuses an id after a restart
    # replaying the same journal twice (a resend after a crash) does not double anything
    for event in h.events:
        recovered.apply(event)
    assert recovered.orders[c1].filled_qty == D(1)


def test_an_order_can_be_cancelled_while_its_submission_waits_in_the_bus_queue() -> None:
    """A strategy acting from inside a handler (its publishes are queued) submits
    and cancels at once: the cancel follows the submission, never an error."""
    h = Harness()
    got: list[str] = []

    def on_trade(_event: object) -> None:
        cid = h.oms.submit("s", h.req())
        h.oms.cancel("s", cid, reason="replace")
        got.append(cid)

    from events.market import Trade
    h.bus.subscribe(Trade, on_trade)
    h.bus.publish(Trade(ts_event=1, ts_recv=1, venue="sim", symbol="BTCUSDT", price=100.0,
                        size=1.0))
    kinds = [(type(e).__name__, getattr(e, "client_order_id", "")) for e in h.events]
    assert kinds[1:] == [("OrderSubmitted", got[0]), ("CancelOrder", got[0])]
    assert h.oms.orders[got[0]].state == "submitted"  # the venue answers the cancel


def test_cancelling_an_order_risk_refused_is_a_no_op_and_a_foreign_id_an_error() -> None:
    class Refuse:
        def check(self, *_: object) -> object:
            from daemon.trading.risk_checks import Rejection
            return Rejection(check="max_order_qty", reason="too big")

    h = Harness()
    h.oms.risk = Refuse()  # type: ignore[assignment]
    cid = h.oms.submit("s", h.req())
    h.oms.cancel("s", cid)  # refused, never open: nothing to cancel
    assert [type(e).__name__ for e in h.events] == ["OrderRejected"]
    with pytest.raises(OMSError, match="unknown order s-9"):
        h.oms.cancel("s", "s-9")
