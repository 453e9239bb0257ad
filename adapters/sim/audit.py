"""The simulated venue's books as plain data, and the invariants they keep.

`venue_state` is what two venues must agree on to answer the same market and
requests alike from here on (a venue and one restored from its journal, in
the restart tests and the simulation harness): open orders with their terms,
filled quantity and reservation; the closed orders it remembers; requests
waiting to arrive, in receipt order; balances (total, locked); net positions;
the id counters. The market memory (last price, book, queue positions, a
trailing stop's moving trigger, whether a stop has triggered) is not in it: a
restarted venue learns it again from the market.

`violations` states the invariants as code: no balance is locked by an order
the venue does not hold (each currency's `locked` is exactly the sum of its
open orders' reservations), each open order reserves what its remaining
quantity needs, the books agree with each other, and a symbol with work is
never skipped by the market-event gate.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters.sim.accounts import Accounts
from adapters.sim.ledger import Ledger
from adapters.sim.market import SymbolState
from adapters.sim.orders import OPEN, SimOrder
from events.orders import TRAILING_STOP

_ZERO = Decimal(0)


def _terms(o: SimOrder) -> tuple[Any, ...]:
    # a trailing stop's trigger follows the market: not a term
    trigger = None if o.order_type == TRAILING_STOP else o.trigger
    return (o.venue_order_id, o.symbol, o.side, o.order_type, o.tif, o.qty, o.price, trigger,
            o.offset, o.filled, o.expire_ns, o.reduce_only, o.sub.post_only, o.reserve_ccy,
            o.reserved)


def venue_state(ledger: Ledger, acc: Accounts, symbols: dict[str, SymbolState]
                ) -> dict[str, Any]:
    """The books as dicts, lists and tuples of str/int/Decimal (== compares them)."""
    pending = sorted((n, type(req).__name__, req.client_order_id)
                     for st in symbols.values() for _, n, req in st.pending)
    currencies = sorted(set(acc.total) | set(acc.locked))
    return {
        "open": {cid: _terms(o) for st in symbols.values() for cid, o in st.open.items()},
        "closed": {cid: o.state for cid, o in ledger.orders.items() if o.state != OPEN},
        "pending": [(kind, cid) for _, kind, cid in pending],
        "balances": {c: (acc.total.get(c, _ZERO), acc.locked.get(c, _ZERO))
                     for c in currencies if acc.total.get(c) or acc.locked.get(c)},
        "positions": {s: q for s, q in sorted(acc.net.items()) if q},
        "counters": ledger.counters(),
    }


def violations(ledger: Ledger, acc: Accounts, symbols: dict[str, SymbolState]) -> list[str]:
    """Every broken invariant, one line each (empty: the books are sound)."""
    out: list[str] = []
    reserved: dict[str, Decimal] = {}
    for symbol, st in symbols.items():
        if (st.open or st.pending) and not st.busy:
            out.append(f"{symbol}: has open orders or requests but is not marked busy")
        for cid, o in st.open.items():
            if ledger.orders.get(cid) is not o or o.state != OPEN:
                out.append(f"{cid}: rests in the {symbol} book but the ledger has it "
                           f"{'missing' if ledger.orders.get(cid) is None else o.state}")
            if not _ZERO <= o.filled < o.qty:
                out.append(f"{cid}: open with filled {o.filled} of qty {o.qty}")
            if o.reserved != o.remaining * o.reserve_px:
                out.append(f"{cid}: reserves {o.reserved} {o.reserve_ccy}, its remaining "
                           f"{o.remaining} needs {o.remaining * o.reserve_px}")
            if o.reserved:
                reserved[o.reserve_ccy] = reserved.get(o.reserve_ccy, _ZERO) + o.reserved
    for cid, o in ledger.orders.items():
        book = symbols.get(o.symbol)
        if o.state == OPEN and (book is None or book.open.get(cid) is not o):
            out.append(f"{cid}: open in the ledger but in no book")
    for c in sorted(set(acc.locked) | set(reserved)):
        locked, held = acc.locked.get(c, _ZERO), reserved.get(c, _ZERO)
        if locked != held:
            out.append(f"{c}: locked {locked} but the open orders reserve {held}")
    return out
