"""The OMS: the order state table, the pure fold, the policies, client order ids."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.trading.api import OrderRequest
from daemon.trading.oms import OMS, OMSError
from daemon.trading.orders import (
    ACCEPT,
    AMEND,
    CANCEL,
    CANCEL_REJECT,
    CANCEL_REQUEST,
    EXPIRE,
    FILL_FULL,
    FILL_PARTIAL,
    REJECT,
    RELEASE,
    RESUME,
    TRANSITIONS,
    IllegalTransition,
    Order,
)
from events import (
    CancelOrder,
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderCanceled,
    OrderDeclared,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
)
from events.bus import Bus
from events.instruments import Instrument
from events.market import Trade

STATES = sorted({s for s, _ in TRANSITIONS} | {t for t in TRANSITIONS.values() if t != RESUME})
TRIGGERS = [RELEASE, ACCEPT, REJECT, FILL_PARTIAL, FILL_FULL, CANCEL, EXPIRE, AMEND,
            CANCEL_REQUEST, CANCEL_REJECT]


def new_order(state: str = "submitted") -> Order:
    o = Order(client_order_id="s-1", strategy_id="s", venue="sim", symbol="BTCUSDT", side="BUY",
              order_type="LIMIT", qty=D(2), price=D(100), trigger_price=None,
              time_in_force="GTC", post_only=False, reduce_only=False, contingency="",
              linked_order_ids=(), parent_order_id="", ts_submitted=0)
    o.state = state
    return o


# -- the table ------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "trigger"), sorted(TRANSITIONS))
def test_every_legal_transition(state: str, trigger: str) -> None:
    order = new_order(state)
    target = TRANSITIONS[(state, trigger)]
    assert order.apply(trigger) == (order.open_state() if target == RESUME else target)


ILLEGAL = [(s, t) for s in STATES for t in TRIGGERS if (s, t) not in TRANSITIONS]


@pytest.mark.parametrize(("state", "trigger"), ILLEGAL)
def test_every_illegal_transition_raises_and_changes_nothing(state: str, trigger: str) -> None:
    order = new_order(state)
    with pytest.raises(IllegalTransition, match=state):
        order.apply(trigger)
    assert order.state == state


def test_what_real_venues_do_is_in_the_table() -> None:
    # a fill after the cancel ack (or an expiry) is a fact: CANCELED -> FILLED
    assert TRANSITIONS[("canceled", FILL_FULL)] == "filled"
    assert TRANSITIONS[("canceled", FILL_PARTIAL)] == "canceled"
    assert TRANSITIONS[("expired", FILL_FULL)] == "filled"
    # a rejection we inferred (a premature "not found") is contradicted by the venue
    assert TRANSITIONS[("rejected", ACCEPT)] == "accepted"
    assert TRANSITIONS[("rejected", FILL_PARTIAL)] == "partially_filled"
    # a refused cancel returns the order to the open state its facts give
    order = new_order("accepted")
    order.apply(ACCEPT)
    order.apply(CANCEL_REQUEST)
    order.add_fill("t1", D(1), D(100))
    assert order.state == "pending_cancel"
    assert order.apply(CANCEL_REJECT) == "partially_filled"


def test_fills_accumulate_and_overfill_is_illegal() -> None:
    order = new_order("accepted")
    assert order.add_fill("t1", D("0.5"), D(100)) == "partially_filled"
    assert order.add_fill("t2", D("1.5"), D(102)) == "filled"
    assert order.avg_fill_price == D("101.5")
    over = new_order("accepted")
    with pytest.raises(IllegalTransition):
        over.add_fill("t1", D(3), D(1))
    assert over.filled_qty == 0 and over.state == "accepted"


def test_an_orders_trades_and_fees_are_its_own() -> None:
    """Orders share one empty fee mapping and trade-id tuple until their first fill
    (nothing the garbage collector tracks per order): a fill never shows on another."""
    a, b = new_order("accepted"), new_order("accepted")
    a.add_fill("t1", D("0.5"), D(100), D("0.1"), "USDT")
    a.add_fill("t2", D("0.5"), D(100), D("0.2"), "USDT")
    a.add_fill("t3", D("0.5"), D(100), D("0.001"), "BNB")
    assert a.trade_ids == ("t1", "t2", "t3")
    assert dict(a.fees) == {"USDT": D("0.3"), "BNB": D("0.001")}
    assert b.trade_ids == () and dict(b.fees) == {} and b.filled_qty == 0
    assert dict(new_order().fees) == {}


# -- a harness: the OMS on a bus, with a journal to fold --------------------------------


class Harness:
    def __init__(self, prefix: str = "", risk: object = None) -> None:
        self.now = 1_000
        self.bus = Bus()
        self.events: list = []
        self.bus.subscribe_all(self.events.append)
        inst = Instrument(venue="sim", symbol="BTCUSDT", base="BTC", quote="USDT",
                          tick_size=D("0.01"), step_size=D("0.0001"))
        self.oms = OMS(self.bus.publish, lambda: self.now, risk, id_prefix=prefix,  # type: ignore[arg-type]
                       instruments={inst.key: inst})
        self.quarantined: list = []
        self.oms.on_quarantine = self.quarantined.append
        self.oms.subscribe(self.bus)

    def req(self, **kw) -> OrderRequest:
        base = dict(venue="sim", symbol="BTCUSDT", side="BUY", qty=D(1), order_type="LIMIT",
                    price=D(100))
        base.update(kw)
        return OrderRequest(**base)

    def _ids(self, cid: str) -> dict:
        order = self.oms.orders.get(cid)
        return dict(ts_event=self.now, ts_recv=self.now, venue="sim", symbol="BTCUSDT",
                    strategy_id=order.strategy_id if order else "s", client_order_id=cid)

    def ack(self, cid: str) -> None:
        self.bus.publish(OrderAccepted(**self._ids(cid), venue_order_id="v-" + cid))

    def cancel_ack(self, cid: str) -> None:
        self.bus.publish(OrderCanceled(**self._ids(cid), reason="requested"))

    def fill(self, cid: str, qty: str, price: str = "100", trade_id: str | None = None,
             fee: str = "0", fee_currency: str = "USDT", side: str | None = None) -> None:
        order = self.oms.orders.get(cid)
        self.bus.publish(Fill(**self._ids(cid), trade_id=trade_id or f"t{len(self.events)}",
                              side=side or (order.side if order else "BUY"), qty=D(qty),
                              price=D(price), fee=D(fee), fee_currency=fee_currency,
                              liquidity="MAKER"))

    def restart(self) -> OMS:
        """A new OMS folded from this journal (recovery's fold) with a publish that
        must never be called while folding."""
        calls: list = []
        oms = OMS(calls.append, lambda: self.now, id_prefix=self.oms.book.id_prefix,
                  instruments=self.oms.instruments)
        for event in self.events:
            oms.apply(event)
        assert calls == [], f"the fold published {calls}"
        return oms


def table(oms: OMS) -> dict:
    return oms.book.state()


# -- ids ----------------------------------------------------------------------------


def test_client_order_ids_are_deterministic_per_strategy() -> None:
    h = Harness()
    assert [h.oms.submit("a", h.req()) for _ in range(2)] == ["a-1", "a-2"]
    assert h.oms.submit("b", h.req()) == "b-1"
    submitted = [e for e in h.events if isinstance(e, OrderSubmitted)]
    assert [e.client_order_id for e in submitted] == ["a-1", "a-2", "b-1"]
    assert submitted[0].ts_event == 1_000 and submitted[0].qty == D(1)


def test_ids_carry_the_data_directorys_prefix_and_ignore_other_prefixes() -> None:
    """Item 8: a fresh data directory on the same account numbered from -1 again; now
    each data directory has its own prefix, and another's ids never move our counters."""
    h = Harness(prefix="k3f9a")
    assert h.oms.submit("sma", h.req()) == "k3f9a-sma-1"
    h.oms.note_id("zz000-sma-700")  # another data directory's order on the account
    h.oms.note_id("sma-900")  # an id with no prefix is not ours either
    assert h.oms.submit("sma", h.req()) == "k3f9a-sma-2"
    h.oms.note_id("k3f9a-sma-41")
    assert h.oms.submit("sma", h.req()) == "k3f9a-sma-42"
    assert h.restart().next_client_order_id("sma") == "k3f9a-sma-43"


# -- lifecycle -------------------------------------------------------------------------


def test_lifecycle_through_the_bus() -> None:
    h = Harness()
    cid = h.oms.submit("s", h.req(qty=D(2)))
    h.ack(cid)
    order = h.oms.orders[cid]
    assert order.state == "accepted" and order.venue_order_id == "v-s-1"
    h.fill(cid, "1")
    assert order.state == "partially_filled" and h.oms.open_orders() == [order]
    h.fill(cid, "1")
    assert order.state == "filled" and h.oms.open_orders() == []


def test_a_repeated_fill_is_counted_once_and_trades_are_keyed_per_symbol() -> None:
    h = Harness()
    cid = h.oms.submit("s", h.req(qty=D(2)))
    h.fill(cid, "1", trade_id="T1")
    h.fill(cid, "1", trade_id="T1")
    assert h.oms.orders[cid].filled_qty == D(1)
    fills = [e for e in h.events if isinstance(e, Fill)]
    assert [h.oms.fill_applied(f) for f in fills] == [True, False]
    # Binance numbers trades per symbol: the same id on another symbol is another trade
    assert h.oms.has_fill("sim", "BTCUSDT", "T1") and not h.oms.has_fill("sim", "ETHUSDT", "T1")


def test_risk_refusal_publishes_only_a_rejection_naming_the_check() -> None:
    class Refuse:
        check = "max_order_qty"
        reason = "qty 2 > max_order_qty 1"

    h = Harness(risk=type("Risk", (), {"check": lambda self, sid, req, oo: Refuse()})())
    cid = h.oms.submit("s", h.req(qty=D(2)))
    assert [type(e) for e in h.events] == [OrderRejected]
    rej = h.events[0]
    assert (rej.client_order_id, rej.check, rej.qty, rej.side) == (cid, "max_order_qty", D(2),
                                                                    "BUY")
    assert cid not in h.oms.orders
    assert h.oms.submit("s", h.req()) == "s-2"  # the refused id is used up, never reused
    h.oms.cancel("s", cid)  # cancelling it is a no-op
    with pytest.raises(OMSError, match="unknown order s-9"):
        h.oms.cancel("s", "s-9")


def test_cancel_publishes_a_request_once_and_the_venue_answer_closes() -> None:
    h = Harness()
    cid = h.oms.submit("s", h.req())
    h.ack(cid)
    h.oms.cancel("s", cid)
    assert h.oms.orders[cid].state == "pending_cancel"
    h.oms.cancel("s", cid)  # a second cancel while one is pending sends nothing
    assert [type(e) for e in h.events].count(CancelOrder) == 1
    h.cancel_ack(cid)
    assert h.oms.orders[cid].state == "canceled"
    with pytest.raises(OMSError):
        h.oms.cancel("other", cid)


# -- item 2: facts after a terminal state ------------------------------------------------


def test_a_fill_after_the_cancel_ack_is_applied_not_raised() -> None:
    """Item 2: Binance's REST cancel answer can come before the websocket trade
    report. The OMS raised, the portfolio applied the fill, and recovery re-raised
    on every start. Now the fill is a fact: applied, and the fold never raises."""
    h = Harness()
    cid = h.oms.submit("s", h.req(qty=D(2)))
    h.ack(cid)
    h.oms.cancel("s", cid)
    h.cancel_ack(cid)
    h.fill(cid, "1", trade_id="late")
    order = h.oms.orders[cid]
    assert (order.state, order.filled_qty) == ("canceled", D(1))
    assert h.quarantined == []
    assert table(h.restart()) == table(h.oms)
    h.fill(cid, "1", trade_id="later")  # the rest too: the order did fill in the end
    assert order.state == "filled"


def test_a_premature_not_found_is_contradicted_by_the_venue() -> None:
    h = Harness()
    cid = h.oms.submit("s", h.req(qty=D(2)))
    h.bus.publish(OrderRejected(**h._ids(cid), reason="not found", check="reconcile",
                                code="-2013"))
    assert h.oms.orders[cid].state == "rejected" and h.oms.open_orders() == []
    h.fill(cid, "1")
    assert h.oms.orders[cid].state == "partially_filled"
    assert h.oms.open_orders() == [h.oms.orders[cid]]  # it lives at the venue: it counts


# -- item 3: risk counts in-flight orders ---------------------------------------------------


def test_orders_submitted_from_one_callback_each_count_for_the_next() -> None:
    """Item 3: three submits from one callback each saw 0 open orders (the first's
    OrderSubmitted waited in the bus queue), so every position and balance check
    could be bypassed. Now an order counts from its submission."""
    seen: list[int] = []

    class Counting:
        def check(self, strategy_id, order, open_orders):
            seen.append(len(open_orders))

    h = Harness(risk=Counting())

    def on_trade(_event: object) -> None:
        for _ in range(3):
            h.oms.submit("s", h.req())

    h.bus.subscribe(Trade, on_trade)
    h.bus.publish(Trade(ts_event=1, ts_recv=1, venue="sim", symbol="BTCUSDT", price=100.0,
                        size=1.0))
    assert seen == [0, 1, 2]


def test_an_order_can_be_cancelled_while_its_submission_waits_in_the_bus_queue() -> None:
    h = Harness()
    got: list[str] = []

    def on_trade(_event: object) -> None:
        cid = h.oms.submit("s", h.req())
        h.oms.cancel("s", cid, reason="replace")
        h.oms.cancel("s", cid, reason="replace")  # once
        got.append(cid)

    h.bus.subscribe(Trade, on_trade)
    h.bus.publish(Trade(ts_event=1, ts_recv=1, venue="sim", symbol="BTCUSDT", price=100.0,
                        size=1.0))
    kinds = [(type(e).__name__, getattr(e, "client_order_id", "")) for e in h.events]
    assert kinds[1:] == [("OrderSubmitted", got[0]), ("CancelOrder", got[0])]
    assert h.oms.orders[got[0]].state == "pending_cancel"
    assert table(h.restart()) == table(h.oms)


# -- item 1: the fold is pure; policies run live ------------------------------------------


def test_an_oco_fill_cancels_the_other_leg_once_and_never_again_at_a_restart() -> None:
    """Item 1: re-folding an OCO fill called cancel(), so every restart journaled (and
    sent) a new CancelOrder for a sibling cancelled long ago."""
    h = Harness()
    a, b = h.oms.submit_oco("s", h.req(side="SELL", price=D(110)),
                            h.req(side="SELL", order_type="STOP_MARKET", price=None,
                                  trigger_price=D(90)))
    subs = [e for e in h.events if isinstance(e, OrderSubmitted)]
    assert [(e.contingency, e.linked_order_ids) for e in subs] == [("OCO", [b]), ("OCO", [a])]
    h.ack(a)
    h.ack(b)
    h.fill(a, "1", "110")
    assert [c.client_order_id for c in h.events if isinstance(c, CancelOrder)] == [b]
    h.cancel_ack(b)
    for _ in range(3):  # restarts: the fold publishes nothing (Harness.restart asserts it)
        again = h.restart()
        sent: list = []
        again.publish = sent.append
        again.resume()
        assert sent == [], "a restart re-sent a command already done"
        assert table(again) == table(h.oms)


def test_a_sibling_cancel_a_crash_cut_off_is_sent_at_the_restart() -> None:
    h = Harness()
    a, b = h.oms.submit_oco("s", h.req(side="SELL", price=D(110)), h.req(side="SELL",
                                                                          price=D(120)))
    h.ack(a)
    h.ack(b)
    h.fill(a, "1", "110")
    cut = [e for e in h.events if not isinstance(e, CancelOrder)]  # killed before it
    h.events[:] = cut
    again = h.restart()
    sent: list = []
    again.publish = sent.append
    again.resume()
    assert [(type(e).__name__, e.client_order_id) for e in sent] == [("CancelOrder", b)]


# -- item 7: brackets are events --------------------------------------------------------


def bracket(h: Harness, qty: str = "1") -> tuple[str, str, str]:
    return h.oms.submit_bracket(
        "s", h.req(qty=D(qty)),
        h.req(side="SELL", qty=D(qty), order_type="STOP_MARKET", price=None,
              trigger_price=D(95), reduce_only=True),
        h.req(side="SELL", qty=D(qty), price=D(110), reduce_only=True))


def test_a_bracket_declares_its_children_in_the_journal() -> None:
    h = Harness()
    entry, stop, target = bracket(h)
    assert (entry, stop, target) == ("s-1", "s-2", "s-3")
    declared = [e for e in h.events if isinstance(e, OrderDeclared)]
    assert [(e.client_order_id, e.parent_order_id, e.linked_order_ids) for e in declared] == [
        (stop, entry, [target]), (target, entry, [stop])]
    assert [e.client_order_id for e in h.events if isinstance(e, OrderSubmitted)] == [entry]
    assert h.oms.open_orders() == [h.oms.orders[entry]]  # declared: at no venue yet
    h.ack(entry)
    h.fill(entry, "1")
    subs = [e for e in h.events if isinstance(e, OrderSubmitted)]
    assert [(e.client_order_id, e.qty) for e in subs[1:]] == [(stop, D(1)), (target, D(1))]


def test_after_a_restart_a_bracket_entry_that_fills_places_its_protection() -> None:
    """Item 7: brackets lived in memory only: after a restart an entry that filled
    placed no stop or target, and the children's ids were issued again."""
    h = Harness()
    entry, stop, target = bracket(h)
    h.ack(entry)
    oms = h.restart()
    h.oms = oms  # the restarted OMS takes over the bus
    h.bus = Bus()
    h.bus.subscribe_all(h.events.append)
    oms.publish = h.bus.publish
    oms.subscribe(h.bus)
    assert oms.next_client_order_id("s") == "s-4"  # the children's ids are taken
    h.fill(entry, "1")
    subs = [e.client_order_id for e in h.events if isinstance(e, OrderSubmitted)]
    assert subs[-2:] == [stop, target]


def test_a_partial_fill_then_cancel_protects_the_filled_part() -> None:
    """Item 7: a partial fill followed by a cancel dropped the protection of the filled
    part. Protections are sized to what actually filled (less a base-asset fee)."""
    h = Harness()
    entry, stop, target = bracket(h, qty="1")
    h.ack(entry)
    h.fill(entry, "0.4", fee="0.0004", fee_currency="BTC")
    h.oms.cancel("s", entry)
    h.cancel_ack(entry)
    subs = {e.client_order_id: e.qty for e in h.events if isinstance(e, OrderSubmitted)}
    assert subs == {entry: D(1), stop: D("0.3996"), target: D("0.3996")}
    assert table(h.restart()) == table(h.oms)


def test_an_entry_that_ends_unfilled_cancels_its_declared_children() -> None:
    h = Harness()
    entry, stop, target = bracket(h)
    h.bus.publish(OrderExpired(**h._ids(entry)))
    assert {c: h.oms.orders[c].state for c in (entry, stop, target)} == {
        entry: "expired", stop: "canceled", target: "canceled"}
    assert not [e for e in h.events if isinstance(e, OrderSubmitted)
                and e.client_order_id != entry]


# -- quarantine -----------------------------------------------------------------------


def test_events_the_table_cannot_place_are_quarantined_never_raised() -> None:
    h = Harness()
    cid = h.oms.submit("s", h.req(qty=D(1)))
    h.fill("nobody-7", "1")  # unknown order
    h.fill(cid, "2", trade_id="over")  # overfill
    h.fill(cid, "1", side="SELL", trade_id="wrong-side")
    reasons = [q.reason for q in h.quarantined]
    assert len(reasons) == 3 and "unknown order" in reasons[0] and "exceed" in reasons[1]
    fills = [e for e in h.events if isinstance(e, Fill)]
    assert not any(h.oms.fill_applied(f) for f in fills)  # the portfolio applies none
    assert h.oms.orders[cid].filled_qty == 0
    again = h.restart()  # the fold does not raise either
    assert len(again.book.quarantine) == 3 and table(again) == table(h.oms)


# -- the fold equals the live state, whatever a venue does -----------------------------

REPORTS = st.lists(st.tuples(
    st.sampled_from(["ack", "fill", "cancel_ack", "expire", "reject", "cancel_rej",
                     "dup", "cancel", "submit", "bracket"]),
    st.integers(0, 5), st.sampled_from(["0.1", "0.2", "0.5", "1"])), max_size=40)


@settings(max_examples=300, deadline=None)
@given(REPORTS)
def test_any_report_order_folds_to_the_live_state(reports: list) -> None:
    """Reordered, duplicated, late and impossible reports: the fold never raises,
    folding the journal from scratch gives the live state, each order's filled qty is
    the sum of its applied fills, and no trade is applied twice."""
    h = Harness()
    ids = [h.oms.submit("s", h.req(qty=D(1)))]
    for n, (kind, k, qty) in enumerate(reports):
        cid = ids[k % len(ids)]
        if kind == "submit":
            ids.append(h.oms.submit("s", h.req(qty=D(1))))
        elif kind == "bracket":
            ids.extend(bracket(h))
        elif kind == "cancel":
            h.oms.cancel("s", cid)
        elif kind == "ack":
            h.ack(cid)
        elif kind == "fill":
            h.fill(cid, qty, trade_id=f"T{n}")
        elif kind == "dup":
            h.fill(cid, qty, trade_id=f"T{max(n - 1, 0)}")
        elif kind == "cancel_ack":
            h.cancel_ack(cid)
        elif kind == "expire":
            h.bus.publish(OrderExpired(**h._ids(cid)))
        elif kind == "reject":
            h.bus.publish(OrderRejected(**h._ids(cid), reason="no"))
        elif kind == "cancel_rej":
            h.bus.publish(CancelRejected(**h._ids(cid), reason="no"))
    assert table(h.restart()) == table(h.oms)
    applied: dict[str, D] = {}
    seen: set = set()
    for e in h.events:
        if isinstance(e, Fill) and h.oms.fill_applied(e):
            key = (e.venue, e.symbol, e.trade_id)
            assert key not in seen
            seen.add(key)
            applied[e.client_order_id] = applied.get(e.client_order_id, D(0)) + e.qty
    for cid, order in h.oms.orders.items():
        assert order.filled_qty == applied.get(cid, D(0)) <= order.qty
    submitted = [e.client_order_id for e in h.events if isinstance(e, OrderSubmitted)]
    assert len(submitted) == len(set(submitted))


# -- the event of an order's terms: the short call for plain orders is the full one ----

_requests = st.builds(
    OrderRequest, venue=st.sampled_from(["sim", "binance"]), symbol=st.just("BTCUSDT"),
    side=st.sampled_from(["BUY", "SELL"]), qty=st.decimals("0.001", "5", places=3),
    order_type=st.sampled_from(["LIMIT", "MARKET", "STOP_LIMIT", "TRAILING_STOP"]),
    price=st.none() | st.decimals("1", "100000", places=2),
    trigger_price=st.none() | st.decimals("1", "100000", places=2),
    time_in_force=st.sampled_from(["GTC", "IOC", "GTD"]),
    expire_ts=st.sampled_from([0, 0, 5]), post_only=st.booleans() | st.just(False),
    reduce_only=st.booleans() | st.just(False),
    trailing_offset=st.none() | st.none() | st.just(D("0.5")),
    parent_order_id=st.sampled_from(["", "", "p-1"]), contingency=st.sampled_from(["", "", "OCO"]),
    linked_order_ids=st.sampled_from([(), (), ("s-2",)]))


@settings(max_examples=300, deadline=None)
@given(request=_requests, cls=st.sampled_from([OrderSubmitted, OrderDeclared]))
def test_an_orders_event_carries_every_term_of_its_request(request: OrderRequest,
                                                          cls: type) -> None:
    from daemon.trading.oms import _terms
    from events.codec import encode

    full = cls(ts_event=7, ts_recv=7, venue=request.venue, symbol=request.symbol,
               strategy_id="s", client_order_id="s-1", side=request.side,
               order_type=request.order_type, qty=request.qty, price=request.price,
               trigger_price=request.trigger_price, time_in_force=request.time_in_force,
               expire_ts=request.expire_ts, post_only=request.post_only,
               reduce_only=request.reduce_only, trailing_offset=request.trailing_offset,
               parent_order_id=request.parent_order_id, contingency=request.contingency,
               linked_order_ids=list(request.linked_order_ids))
    event = _terms(cls, "s", "s-1", request, 7)
    assert event == full
    assert encode(event) == encode(full)  # the journal's bytes too
