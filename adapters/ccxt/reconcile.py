"""One reconciliation pass of a ccxt venue with its exchange.

Run at start (before any order: risk blocks the venue until it succeeds), after
every reconnect of the order stream, and as the polling loop of an exchange
without `watchOrders`. For each symbol of ours it asks:

- `fetch_open_orders(symbol)`: what is open there (acceptances we missed; a
  pending cancel of ours to send again);
- each order the OMS holds open that is not open there: `fetch_order` by client
  id (it filled, was canceled or expired meanwhile); "not found" leaves it
  unresolved (a placement of an earlier process: the venue looks it up until the
  placement can no longer arrive);
- `fetch_my_trades(symbol, since=<last fill we know>)`: fills we missed;
- `fetch_balance()`: balances, published when they differ from the last known.

It returns the translated events; the venue publishes what the OMS does not hold
and logs one line per difference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapters.ccxt.translate import CcxtTranslator, dec
from events.base import Event
from events.state import BalanceChanged


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    still_open: list[str] = field(default_factory=list)  # our client ids open there
    unresolved: list[str] = field(default_factory=list)  # ours the exchange does not know
    errors: list[str] = field(default_factory=list)


async def reconcile(exchange: Any, translator: CcxtTranslator, venue: str,
                    our_open: list[Any], symbols: list[str],
                    since_ms: dict[str, int], balances: dict[str, Decimal],
                    fetch_by_client_id: Callable[..., Any], now_ns: Callable[[], int],
                    skip: set[str]) -> Outcome:
    """One pass; see the module docstring. `since_ms` (symbol → last fill time)
    and `balances` (currency → total) are updated in place. `skip`: client ids
    the order path is settling itself (in flight, being looked up)."""
    import ccxt

    out = Outcome()
    ts = now_ns()
    wanted = sorted(set(symbols) | {o.symbol for o in our_open})
    for symbol in wanted:
        open_there = await exchange.fetch_open_orders(symbol)
        out.events.extend(translator.orders(open_there, ts))
        ids = {o.get("clientOrderId") for o in open_there}
        out.still_open.extend(c for c in ids if c)
        for order in our_open:
            cid = order.client_order_id
            if order.symbol != symbol or cid in ids or cid in skip:
                continue
            try:
                found = await fetch_by_client_id(cid, symbol)
            except ccxt.OrderNotFound:
                out.unresolved.append(cid)
                continue
            out.events.extend(translator.order(
                {**found, "clientOrderId": found.get("clientOrderId") or cid}, ts))
        since = since_ms.get(symbol)
        trades = await exchange.fetch_my_trades(symbol, since)
        out.events.extend(translator.trades(trades, ts))
        last = translator.last_fill_ms(trades)
        if last is not None:
            since_ms[symbol] = max(last, since or 0)
    balance = await exchange.fetch_balance()
    for currency, total in sorted((balance.get("total") or {}).items()):
        if total is None:
            continue
        amount = dec(total)
        if balances.get(currency, Decimal(0)) == amount:
            continue  # (a currency never held is not news)
        balances[currency] = amount
        free = (balance.get("free") or {}).get(currency)
        used = (balance.get("used") or {}).get(currency)
        out.events.append(BalanceChanged(
            ts_event=ts, ts_recv=ts, venue=venue, currency=currency, total=amount,
            free=dec(free) if free is not None else amount,
            locked=dec(used) if used is not None else Decimal(0), reason="reconciliation"))
    return out
