"""Money across currencies: what one unit of a currency is worth in the account
currency, through explicit conversion marks, never by assumption.

Owns the conversion rule and nothing else (it holds no balances or positions).

A currency C is valued in the account currency A along a path of hops, each hop
one of:
- an instrument C/X (base C, quote X): one C is `mark` X;
- an instrument X/C (base X, quote C): one C is `1 / mark` X (the division runs
  under the 60-digit context, then the result is tidied);
- a configured rate (`[account] rates = { USDC = 1.0 }`): one C is `rate` A. This
  is the only way a currency is ever valued at a constant.
A path ends at A, visits no currency twice and has at most `MAX_HOPS` hops, so
BNB -> BTC -> USDT values BNB through BNBBTC and BTCUSDT. A currency that no path
with marks reaches is *unvalued* (`rate` returns None): callers leave it out of
equity and report it, they never count it at 1.

Which path wins is fixed by the instruments alone (deterministic, and computed
once per (venue, currency)): paths on the asking venue's own instruments (and
configured rates) before paths through another venue's; then fewer hops; then
fewer configured rates (a market price beats a constant); then fewer inverted
hops (C/A before A/C); then by venue and symbol names. At query time the first
path whose every hop has a mark is taken. The account currency itself is worth
exactly 1 of itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

import msgspec

from daemon.trading.average_cost import CTX, ONE, ZERO, tidy
from events.instruments import Instrument

__all__ = ["MAX_HOPS", "Converter", "Hop", "Pnl", "Unvalued", "account_currency_of"]

MAX_HOPS = 3

# (venue, symbol, inverted): multiply by the instrument's mark, or by 1/mark.
# A configured rate is ("", currency, False), venue-neutral.
Hop = tuple[str, str, bool]
Path = tuple[Hop, ...]
PriceOf = Callable[[str, str], "Decimal | None"]


class Converter:
    """Values currencies in `account` (see the module doc).

    `price(venue, symbol)` is the mark of an instrument (None: no mark yet);
    `rates` maps a currency to its configured value in `account`. `account`
    None means no account currency: every other currency is unvalued.
    """

    def __init__(self, account: str | None, instruments: Iterable[Instrument],
                 rates: Mapping[str, Decimal], price: PriceOf) -> None:
        self.account = account
        self._rates = {c: Decimal(r) for c, r in rates.items() if c != account}
        self._price = price
        # currency -> [(next currency, hop)]: every way one step out of it
        self._edges: dict[str, list[tuple[str, Hop]]] = {}
        for inst in sorted(instruments, key=lambda i: (i.venue, i.symbol)):
            if inst.base == inst.quote:
                continue
            self._edges.setdefault(inst.base, []).append(
                (inst.quote, (inst.venue, inst.symbol, False)))
            self._edges.setdefault(inst.quote, []).append(
                (inst.base, (inst.venue, inst.symbol, True)))
        if account is not None:
            for currency in sorted(self._rates):
                self._edges.setdefault(currency, []).append((account, ("", currency, False)))
        self._paths: dict[tuple[str, str], tuple[Path, ...]] = {}

    def rate(self, venue: str, currency: str) -> Decimal | None:
        """One unit of `currency` (held on `venue`) in the account currency, or
        None when no path has all its marks."""
        if currency == self.account:
            return ONE
        paths = self._paths.get((venue, currency))
        if paths is None:
            paths = self._paths[(venue, currency)] = self.paths(venue, currency)
        for path in paths:
            value = self._walk(path)
            if value is not None:
                return value
        return None

    def convert(self, amount: Decimal, currency: str, venue: str) -> Decimal | None:
        """`amount` of `currency` in the account currency (None: unvalued)."""
        if currency == self.account:
            return amount
        rate = self.rate(venue, currency)
        return None if rate is None else tidy(CTX.multiply(amount, rate))

    def paths(self, venue: str, currency: str) -> tuple[Path, ...]:
        """Every path from `currency` to the account currency, best first."""
        account = self.account
        if account is None or currency == account:
            return ()
        found: list[Path] = []

        def walk(at: str, seen: tuple[str, ...], path: Path) -> None:
            for nxt, hop in self._edges.get(at, ()):
                if nxt in seen:
                    continue
                if nxt == account:
                    found.append((*path, hop))
                elif len(path) + 1 < MAX_HOPS:
                    walk(nxt, (*seen, nxt), (*path, hop))

        walk(currency, (currency,), ())

        def rank(path: Path) -> tuple[bool, int, int, int, Path]:
            foreign = any(v and v != venue for v, _s, _inv in path)
            rates = sum(1 for v, _s, _inv in path if not v)
            inverted = sum(1 for _v, _s, inv in path if inv)
            return (foreign, len(path), rates, inverted, path)

        return tuple(sorted(found, key=rank))

    def describe(self, venue: str, currency: str) -> str:
        """Why `currency` has no value: one phrase for a log line or a refusal."""
        if self.account is None:
            return f"no account currency to value {currency} in"
        paths = self._paths.get((venue, currency)) or self.paths(venue, currency)
        if not paths:
            return (f"no conversion from {currency} to {self.account}: no instrument "
                    f"links them and [account] rates has no {currency}")
        first = " -> ".join(sym for _v, sym, _inv in paths[0])
        return (f"no conversion mark from {currency} to {self.account} yet "
                f"(e.g. {first} has no price)")

    def _walk(self, path: Path) -> Decimal | None:
        value = ONE
        for venue, symbol, inverted in path:
            if not venue:
                value = CTX.multiply(value, self._rates[symbol])
                continue
            mark = self._price(venue, symbol)
            if mark is None or mark <= 0:
                return None
            value = CTX.divide(value, mark) if inverted else CTX.multiply(value, mark)
        return tidy(value)


class Pnl(msgspec.Struct, frozen=True, kw_only=True):
    """PnL in one currency: realized (gross of fees), unrealized, fees, and a
    perpetual's funding (received +, paid -)."""

    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.realized - self.fees + self.funding + self.unrealized


class Unvalued(msgspec.Struct, frozen=True, kw_only=True):
    """Money held in a currency that has no value in the account currency (yet):
    the balance on one venue and the PnL booked in it there, left out of equity
    and of the account's PnL."""

    venue: str
    currency: str
    balance: Decimal
    pnl: Decimal
    reason: str


def account_currency_of(quotes: Iterable[str]) -> str | None:
    """The account currency implied by instruments' quote currencies: the one
    they share (None for none). Raises ValueError when they differ."""
    distinct = sorted(set(quotes))
    if len(distinct) > 1:
        raise ValueError(f"instruments are quoted in {', '.join(distinct)}: say which "
                         f"currency the account is stated in")
    return distinct[0] if distinct else None
