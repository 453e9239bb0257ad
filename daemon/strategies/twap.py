"""`twap`: an execution algorithm slicing one parent order evenly over time.

Params: `side` (BUY | SELL), `total_qty`, `duration` (e.g. "10m"), `slices`,
`order_type` ("market", or "limit": an IOC limit at the far touch of the last
`Quote`, i.e. marketable but never through the touch), optional `symbol`
(default: the first configured one).

It runs on the shared schedule (daemon.strategies.schedule): it starts at the
first market event of its symbol, at t0; slice k (k = 0 .. slices-1) is sent at
t0 + k × duration / slices (integer ns, no drift) by a timer. Slice sizes are
`base = total_qty / slices` rounded down to the step, the last slice taking the
remainder; a slice sends what the schedule owes by then (k+1 slices' worth,
minus what filled and what is still open), so a child that did not (fully)
fill is caught up by the next one. After the last slice, once no child is
open, it logs `twap.done` and stops itself.

Restart-safe: its children carry the parent id `twap@<t0>`, so a restart (the
node rebuilt from the journal) resumes the schedule where it was instead of
starting the whole parent over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from daemon.config import parse_interval
from daemon.strategies.schedule import ScheduledParent
from events.instruments import Instrument, to_decimal

__all__ = ["Twap", "TwapParams"]


class TwapParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    side: Literal["BUY", "SELL"]
    total_qty: Annotated[float, msgspec.Meta(gt=0)]
    duration: str
    slices: Annotated[int, msgspec.Meta(ge=1)]
    order_type: Literal["market", "limit"] = "market"
    symbol: str | None = None

    def __post_init__(self) -> None:
        parse_interval(self.duration)  # ValueError -> a one-line params error

    @property
    def duration_ns(self) -> int:
        return parse_interval(self.duration)


class Twap(ScheduledParent):
    KIND = "twap"
    Params = TwapParams

    params: TwapParams

    @classmethod
    def check_params(
        cls, params: TwapParams, instruments: Mapping[str, Instrument]
    ) -> tuple[str, str] | None:
        if problem := cls.parent_problem(params, instruments):
            return problem
        symbol = params.symbol or next(iter(instruments))
        inst = instruments[symbol]
        total = inst.round_qty(to_decimal(params.total_qty))
        if params.slices > 1 and inst.round_qty(total / params.slices) <= 0:
            return "slices", (f"total_qty {params.total_qty} over {params.slices} slices "
                              f"rounds down to 0 a slice at {symbol}'s step {inst.step_size}")
        return None

