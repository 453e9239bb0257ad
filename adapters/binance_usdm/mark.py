"""The USD-M `<symbol>@markPrice[@1s]` stream: `MarkPrice`, and the settled
`FundingRate` once per funding time.

Payload (`e` = "markPriceUpdate"): `E` event time, `s` symbol, `p` mark, `i`
index, `P` estimated settle price, `r` funding rate, `T` next funding time
(all times ms; prices and the rate as text). Each message becomes
`MarkPrice(mark=p, index=i, funding_rate=r, next_funding_ts=T)` with times in
ns like every event.

Funding. Until the funding time `T`, `r` is the rate that will be settled at
`T`; Binance settles at `T` with the last such rate. So `FundingWatch`
remembers, per symbol, the last (T, r, mark) it saw and emits
`FundingRate(funding_ts=T, rate=r, mark=mark)` once, on the first message whose
`E` reaches that `T`. A message that was never followed by one at or after
`T` (the stream was down across the funding time) emits nothing: that
funding is recovered from the income history, not guessed.
"""

from __future__ import annotations

from functools import partial

import msgspec

from adapters.binance.parse import StreamParser
from events.perp import FundingRate, MarkPrice

MS = 1_000_000


class MarkPriceMsg(msgspec.Struct, gc=False):
    E: int
    s: str
    p: str
    T: int = 0
    i: str = "0"
    r: str = "0"


_DECODE = msgspec.json.Decoder(MarkPriceMsg)


def parse_mark_price(raw: bytes, venue: str, ts_recv: int) -> MarkPrice:
    m = _DECODE.decode(raw)
    return MarkPrice(ts_event=m.E * MS, ts_recv=ts_recv, venue=venue, symbol=m.s,
                     mark=float(m.p), index=float(m.i or 0), funding_rate=float(m.r or 0),
                     next_funding_ts=m.T * MS)


class UsdmStreamParser(StreamParser):
    """Spot's combined-stream parser (it already knows the futures shapes of
    trades, book tickers and depth) plus the markPrice streams named in
    `streams`."""

    def __init__(self, venue: str, streams: list[str]) -> None:
        super().__init__(venue)
        for name in streams:
            if name.partition("@")[2].startswith("markPrice"):
                self._parsers[name] = partial(_parse_mark, venue=venue)


def _parse_mark(raw: bytes, venue_: str, ts_recv: int, *, venue: str) -> MarkPrice:
    return parse_mark_price(raw, venue, ts_recv)


class FundingWatch:
    """Emits each symbol's settled funding rate once (see the module docstring)."""

    def __init__(self) -> None:
        # symbol -> (next funding ts ns, its rate, the last mark before it)
        self._pending: dict[str, tuple[int, float, float]] = {}
        self._settled: dict[str, int] = {}  # symbol -> the funding ts last emitted

    def on_mark(self, m: MarkPrice) -> FundingRate | None:
        """The rate settled at the funding time this message reached, or None."""
        out = None
        prev = self._pending.get(m.symbol)
        if (prev is not None and m.ts_event >= prev[0]
                and self._settled.get(m.symbol) != prev[0]):
            self._settled[m.symbol] = prev[0]
            out = FundingRate(ts_event=m.ts_event, ts_recv=m.ts_recv, venue=m.venue,
                              symbol=m.symbol, rate=prev[1], funding_ts=prev[0], mark=prev[2])
        if m.next_funding_ts > m.ts_event:  # only a message before its T carries T's rate
            self._pending[m.symbol] = (m.next_funding_ts, m.funding_rate, m.mark)
        return out
