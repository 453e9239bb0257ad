"""The portfolio's perpetual-futures side: funding and liquidations folded into
positions, leverage and margin mode per symbol, and the account's margin figures.

A base of `Portfolio` (like `Valuation`): the fold calls `_apply_perp` for the
perpetual events and the queries read what it keeps. Arithmetic is
`events.margin`'s, the same the simulated venue liquidates by.

Positions
    A perpetual position is a strategy's `Lot` like any other (average entry,
    realized PnL, fees in the margin asset), plus the funding it received (+)
    or paid (-): `Lot.funding`, in its PnL (`realized - fees + funding +
    unrealized`). `Lot.open_funding` is the funding since the position last
    opened (an isolated position's margin keeps it). Unrealized PnL is at the
    mark: the venue's `MarkPrice` once one was seen for the symbol (trades no
    longer move it), else the last trade, quote mid or bar close.

Funding and liquidation attribution
    The simulated venue reports each strategy's share (`strategy_id` set). A
    live venue reports the account's (`strategy_id` ""): the amount is split
    over the strategies holding the symbol in proportion to their quantity
    (exact when it divides; else each share is rounded to 1e-20 and the last
    strategy takes the remainder, so the shares always sum to the amount). A
    payment with no strategy holding the symbol goes to `UNATTRIBUTED`. A
    `Liquidation` closes each strategy's share of the position at its price and
    books its fee the same way.

Margin (per venue and margin asset; `margin()`)
    wallet = the venue's reported balance of the margin asset (its truth);
    unrealized = sum over the perpetual positions at the mark; margin balance =
    wallet + unrealized; initial margin = sum of |entry notional| / leverage;
    maintenance margin = sum by tier at the mark. An isolated position's margin
    is its initial margin plus `open_funding`; the cross positions share the
    wallet less the isolated margins. Liquidation prices follow
    `events.margin.liquidation_price` with those wallets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, localcontext

import msgspec

from daemon.trading.api import BUY, SELL, Position
from daemon.trading.average_cost import CTX, RELEASE_QUANTUM, ZERO, Lot, tidy
from daemon.trading.positions_file import UNATTRIBUTED
from events import margin
from events.instruments import Instrument, to_decimal
from events.perp import CROSS, ISOLATED, FundingPayment, Liquidation, MarkPrice

__all__ = ["MarginAccount", "MarginView", "PerpPosition", "Projection", "split"]

Key = tuple[str, str]


class PerpPosition(msgspec.Struct, frozen=True, kw_only=True):
    """One perpetual position (a strategy's, or the account's: strategy "*")
    with its margin figures, in the margin asset (`currency`)."""

    venue: str
    symbol: str
    strategy_id: str
    qty: Decimal
    entry_price: Decimal
    mark: Decimal | None
    unrealized_pnl: Decimal
    notional: Decimal
    leverage: int
    margin_mode: str
    initial_margin: Decimal
    maintenance_margin: Decimal
    liquidation_price: Decimal | None
    funding: Decimal
    currency: str


class Projection(msgspec.Struct, frozen=True, kw_only=True):
    """The account's margin in one margin asset as it would be after an order
    (see `MarginView.projected`)."""

    currency: str
    qty: Decimal  # the symbol's account position after the order
    mark: Decimal
    margin_balance: Decimal
    initial_margin: Decimal  # every position's, after the order
    initial_before: Decimal  # every position's, now
    notional: Decimal  # every position's at the mark, after the order
    liquidation_price: Decimal | None  # the symbol's, after the order
    available: Decimal  # what the venue reports free now


class MarginAccount(msgspec.Struct, frozen=True, kw_only=True):
    """A venue's margin in one margin asset."""

    venue: str
    currency: str
    wallet: Decimal
    available: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    margin_ratio: Decimal | None  # maintenance / margin balance: liquidation at 1
    usage: Decimal | None  # initial margin / margin balance
    funding: Decimal  # received (+) or paid (-), every position's, since the start


def split(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """`amount` in proportion to `weights` (positive), exactly summing to it:
    each share rounded to 1e-20 when its division does not terminate, the last
    share the remainder."""
    total = sum(weights, ZERO)
    shares = []
    with localcontext(CTX):
        for w in weights[:-1]:
            share = CTX.divide(CTX.multiply(amount, w), total)
            if share.as_tuple().exponent < -20:  # type: ignore[operator]
                share = share.quantize(RELEASE_QUANTUM, context=CTX)
            shares.append(share)
        shares.append(amount - sum(shares, ZERO))
    return shares


class MarginView:
    """Perpetual folds and margin queries over a portfolio's state."""

    _positions: dict[Key, dict[str, Lot]]
    _nets: dict[Key, Lot]  # each perpetual's account-level (one-way, netted) position
    _balances: dict[Key, tuple[Decimal, Decimal, Decimal]]
    _instruments: dict[Key, Instrument]
    _perp_list: list[Key]  # the perpetual instruments' keys
    _marks: dict[Key, object]
    _leverage: dict[Key, int]
    _margin_mode: dict[Key, str]
    last_price: Callable[[str, str], Decimal | None]
    to_account: Callable[[Decimal, str, str], Decimal | None]
    _view: Callable[[str, str, str, Lot], Position]

    # -- the fold ----------------------------------------------------------------

    def _holders(self, key: Key) -> list[tuple[str, Lot]]:
        return [(sid, pos) for sid, pos in self._positions.get(key, {}).items() if pos.qty]

    def _lot(self, key: Key, strategy_id: str) -> Lot:
        by_sid = self._positions.setdefault(key, {})
        pos = by_sid.get(strategy_id)
        if pos is None:
            pos = by_sid[strategy_id] = Lot()
        return pos

    def _apply_funding(self, event: FundingPayment) -> None:
        key = (event.venue, event.symbol)
        if event.strategy_id:
            shares = [(self._lot(key, event.strategy_id), event.amount)]
        else:
            holders = self._holders(key)
            if not holders:
                shares = [(self._lot(key, UNATTRIBUTED), event.amount)]
            else:
                amounts = split(event.amount, [abs(p.qty) for _s, p in holders])
                shares = [(p, a) for (_s, p), a in zip(holders, amounts, strict=True)]
        net = self._nets.setdefault(key, Lot())
        with localcontext(CTX):
            for pos, amount in shares:
                pos.funding += amount
                if pos.qty:
                    pos.open_funding += amount
            net.funding += event.amount
            if net.qty:
                net.open_funding += event.amount

    def _net_fill(self, key: Key, signed: Decimal, price: Decimal) -> None:
        """The account's one-way position, netted in fill order as the venue nets
        it (strategies on opposite sides do not each hold their own there)."""
        net = self._nets.setdefault(key, Lot())
        net.fill(signed, price)

    def _apply_liquidation(self, event: Liquidation) -> list[Position]:
        """Close the liquidated share(s) at the event's price; returns the
        strategy positions it changed."""
        key = (event.venue, event.symbol)
        if event.side not in (BUY, SELL) or event.qty <= 0 or event.price <= 0:
            raise ValueError(f"malformed liquidation {event.trade_id}: side={event.side} "
                             f"qty={event.qty} price={event.price}")
        if event.strategy_id:
            lot = self._lot(key, event.strategy_id)
            parts = [(event.strategy_id, lot, event.qty if event.side == BUY else -event.qty,
                      event.fee)]
        else:
            parts = self._liquidation_shares(key, event)
        changed = []
        net = self._nets.setdefault(key, Lot())
        with localcontext(CTX):
            for sid, pos, signed, fee in parts:
                if signed:
                    pos.fill(signed, event.price)
                    net.fill(signed, event.price)
                pos.fees += fee
                if not pos.qty:
                    pos.open_funding = ZERO
                changed.append(self._view(event.venue, event.symbol, sid, pos))
            if not net.qty:
                net.open_funding = ZERO
        return changed

    def _liquidation_shares(self, key: Key, event: Liquidation
                            ) -> list[tuple[str, Lot, Decimal, Decimal]]:
        """(strategy, lot, signed qty, fee) for an account-level liquidation: the
        whole account position closes every strategy's share on its own side;
        a part of it, the shares on the account's side in proportion."""
        holders = self._holders(key) or [(UNATTRIBUTED, self._lot(key, UNATTRIBUTED))]
        net = sum((p.qty for _s, p in holders), ZERO)
        closing = event.qty if event.side == BUY else -event.qty
        if closing == -net:
            signed = [-p.qty for _s, p in holders]
        else:
            side = [(s, p) for s, p in holders if p.qty and (p.qty > 0) == (closing < 0)]
            holders = side or holders[:1]
            signed = split(closing, [abs(p.qty) or Decimal(1) for _s, p in holders])
        fees = split(event.fee, [abs(q) or Decimal(1) for q in signed])
        return [(sid, pos, q, f) for (sid, pos), q, f in zip(holders, signed, fees, strict=True)]

    # -- queries -------------------------------------------------------------------

    def _perp_keys(self, venue: str | None) -> list[Key]:
        return [key for key in self._perp_list
                if venue in (None, key[0]) and key in self._nets]

    def leverage(self, venue: str, symbol: str) -> int:
        """The leverage the venue applies to `symbol` (1 until it says)."""
        return self._leverage.get((venue, symbol), 1)

    def margin_mode(self, venue: str, symbol: str) -> str:
        return self._margin_mode.get((venue, symbol), CROSS)

    def perp_positions(self, venue: str | None = None, strategy_id: str | None = None,
                       include_flat: bool = False) -> list[PerpPosition]:
        """Open perpetual positions: each strategy's (`strategy_id` a strategy id or
        "" for every strategy's), or the account's per symbol (None, labelled "*",
        the one the venue margins and liquidates)."""
        out = []
        accounts = {a.venue + "\0" + a.currency: a for a in self._accounts(venue)}
        for key in self._perp_keys(venue):
            inst = self._instruments[key]
            acct = accounts.get(key[0] + "\0" + inst.settle)
            lots = (self._positions[key].items() if strategy_id is not None
                    else [("*", self._net(key))])
            for sid, pos in lots:
                if strategy_id not in (None, "", sid) or not (pos.qty or include_flat):
                    continue
                out.append(self._perp_view(key, inst, sid, pos, acct))
        return out

    def _net(self, key: Key) -> Lot:
        """The account's position in a perpetual (see `_net_fill`)."""
        return self._nets.get(key) or Lot()

    def _perp_view(self, key: Key, inst: Instrument, sid: str, pos: Lot,
                   acct: _Wallets | None) -> PerpPosition:
        mark = self.last_price(*key)
        lev = self.leverage(*key)
        mode = self.margin_mode(*key)
        with localcontext(CTX):
            entry = tidy(CTX.divide(pos.cost, pos.qty)) if pos.qty else ZERO
            upnl = pos.unrealized(mark) * inst.contract_size
            size = margin.notional(inst, pos.qty, mark if mark is not None else entry)
            im = margin.initial_margin(margin.notional(inst, pos.qty, entry), lev)
            mm = margin.maintenance_margin(inst, size)
            liq = None
            if sid == "*" and acct is not None and pos.qty:
                if mode == ISOLATED:
                    liq = margin.liquidation_price(inst, pos.qty, entry, im + pos.open_funding)
                else:
                    others_mm = acct.cross_maint - mm
                    others_upnl = acct.cross_upnl - upnl
                    liq = margin.liquidation_price(inst, pos.qty, entry, acct.cross_wallet,
                                                   others_mm, others_upnl)
        return PerpPosition(
            venue=key[0], symbol=key[1], strategy_id=sid, qty=pos.qty, entry_price=entry,
            mark=mark, unrealized_pnl=tidy(upnl), notional=tidy(size), leverage=lev,
            margin_mode=mode, initial_margin=tidy(im), maintenance_margin=tidy(mm),
            liquidation_price=None if liq is None else inst.round_price(liq),
            funding=tidy(pos.funding), currency=inst.settle)

    def _accounts(self, venue: str | None) -> list[_Wallets]:
        """Each (venue, margin asset)'s totals over its account-level positions."""
        out: dict[Key, _Wallets] = {}
        with localcontext(CTX):
            for key in self._perp_keys(venue):
                inst = self._instruments[key]
                w = out.get((key[0], inst.settle))
                if w is None:
                    total, free, _locked = self._balances.get((key[0], inst.settle),
                                                              (ZERO, ZERO, ZERO))
                    w = out[(key[0], inst.settle)] = _Wallets(key[0], inst.settle, total, free)
                net = self._net(key)
                w.funding += net.funding
                if not net.qty:
                    continue
                mark = self.last_price(*key)
                entry = CTX.divide(net.cost, net.qty)
                upnl = net.unrealized(mark) * inst.contract_size
                mm = margin.maintenance_margin(
                    inst, margin.notional(inst, net.qty, mark if mark is not None else entry))
                im = margin.initial_margin(margin.notional(inst, net.qty, entry),
                                           self.leverage(*key))
                w.upnl += upnl
                w.maint += mm
                w.initial += im
                if self.margin_mode(*key) == ISOLATED:
                    w.isolated += im + net.open_funding
                else:
                    w.cross_upnl += upnl
                    w.cross_maint += mm
        return list(out.values())

    def margin(self, venue: str | None = None) -> list[MarginAccount]:
        """The margin of every (venue, margin asset) that holds perpetuals."""
        out = []
        for w in self._accounts(venue):
            with localcontext(CTX):
                balance = w.wallet + w.upnl
                out.append(MarginAccount(
                    venue=w.venue, currency=w.currency, wallet=w.wallet, available=w.free,
                    unrealized_pnl=tidy(w.upnl), margin_balance=tidy(balance),
                    initial_margin=tidy(w.initial), maintenance_margin=tidy(w.maint),
                    margin_ratio=margin.margin_ratio(balance, w.maint),
                    usage=(None if balance <= 0 or not w.initial
                           else margin.ratio(w.initial, balance)),
                    funding=tidy(w.funding)))
        return out

    def margin_usage(self) -> Decimal | None:
        """Initial margin in use over the margin balance, account-wide in the
        account currency (None: no perpetual position, or nothing to divide by)."""
        initial = balance = ZERO
        for acct in self.margin():
            if not acct.initial_margin:
                continue
            im = self.to_account(acct.initial_margin, acct.currency, acct.venue)
            mb = self.to_account(acct.margin_balance, acct.currency, acct.venue)
            if im is None or mb is None:
                continue
            initial += im
            balance += mb
        if not initial or balance <= 0:
            return None
        return margin.ratio(initial, balance)

    def projected(self, venue: str, symbol: str, signed_qty: Decimal, price: Decimal
                  ) -> Projection | None:
        """The account's margin in `symbol`'s margin asset if an order of
        `signed_qty` filled at `price` now (the risk checks' view); None for a
        symbol that is not a perpetual."""
        key = (venue, symbol)
        inst = self._instruments.get(key)
        if inst is None or not inst.perpetual:
            return None
        accounts = {(w.venue, w.currency): w for w in self._accounts(venue)}
        w = accounts.get((venue, inst.settle))
        if w is None:
            total, free, _locked = self._balances.get((venue, inst.settle), (ZERO, ZERO, ZERO))
            w = _Wallets(venue, inst.settle, total, free)
        with localcontext(CTX):
            net = self._net(key)
            mark = self.last_price(*key) or price
            lev = self.leverage(*key)
            old_entry = CTX.divide(net.cost, net.qty) if net.qty else ZERO
            old_n = margin.notional(inst, net.qty, mark) if net.qty else ZERO
            old_im = margin.initial_margin(margin.notional(inst, net.qty, old_entry), lev) \
                if net.qty else ZERO
            old_mm = margin.maintenance_margin(inst, old_n)
            old_upnl = net.unrealized(mark) * inst.contract_size
            after = Lot(net.qty, net.cost)
            after.fill(signed_qty, price)
            entry = CTX.divide(after.cost, after.qty) if after.qty else ZERO
            n = margin.notional(inst, after.qty, mark)
            im = margin.initial_margin(margin.notional(inst, after.qty, entry), lev) \
                if after.qty else ZERO
            upnl = after.unrealized(mark) * inst.contract_size + after.realized
            balance = w.wallet + w.upnl - old_upnl + upnl
            notional_total = n - old_n + sum(
                (margin.notional(self._instruments[k], self._net(k).qty,
                                 self.last_price(*k) or ZERO)
                 for k in self._perp_keys(venue)
                 if k != key and self._instruments[k].settle == inst.settle), ZERO)
            if self.margin_mode(*key) == ISOLATED:
                liq = margin.liquidation_price(inst, after.qty, entry, im)
            else:
                liq = margin.liquidation_price(
                    inst, after.qty, entry, w.wallet - w.isolated + after.realized,
                    w.cross_maint - old_mm, w.cross_upnl - old_upnl)
        return Projection(
            currency=inst.settle, qty=after.qty, mark=mark, margin_balance=balance,
            initial_margin=w.initial - old_im + im, initial_before=w.initial,
            notional=notional_total,
            liquidation_price=liq, available=w.free)

    def funding_outlook(self, venue: str, symbol: str) -> tuple[Decimal, int] | None:
        """(rate, funding time) of the next funding as the venue's last MarkPrice
        announced it; None without one."""
        raw = self._marks.get((venue, symbol))
        if isinstance(raw, MarkPrice) and raw.next_funding_ts:
            return to_decimal(raw.funding_rate), raw.next_funding_ts
        return None

    def perp_unrealized(self, venue: str | None = None) -> dict[Key, Decimal]:
        """Unrealized PnL of the perpetual positions per (venue, margin asset):
        what equity adds to the wallets (perpetuals move no base balance)."""
        if not self._nets:
            return {}  # no perpetual position (a spot account): every equity sample asks
        return {(w.venue, w.currency): w.upnl for w in self._accounts(venue) if w.upnl}


class _Wallets:
    __slots__ = ("venue", "currency", "wallet", "free", "upnl", "maint", "initial",
                 "isolated", "cross_upnl", "cross_maint", "funding")

    def __init__(self, venue: str, currency: str, wallet: Decimal, free: Decimal) -> None:
        self.venue, self.currency, self.wallet, self.free = venue, currency, wallet, free
        self.upnl = self.maint = self.initial = self.isolated = ZERO
        self.cross_upnl = self.cross_maint = self.funding = ZERO

    @property
    def cross_wallet(self) -> Decimal:
        return self.wallet - self.isolated


def defaults(settings: Mapping[Key, tuple[int, str]] | None
             ) -> tuple[dict[Key, int], dict[Key, str]]:
    """Leverage and margin mode per symbol from the config, until the venue says."""
    settings = settings or {}
    return ({k: v[0] for k, v in settings.items()}, {k: v[1] for k, v in settings.items()})
