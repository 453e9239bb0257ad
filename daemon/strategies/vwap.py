"""`vwap`: a parent order sliced over time in proportion to the market's usual volume.

Params: `side` (BUY | SELL), `total_qty`, `duration` (e.g. "1h"), `slices`,
`order_type` ("market", or "limit": an IOC limit at the far touch of the last
`Quote`), optional `symbol` (default: the first configured one), and the volume
profile: `profile_file` (a JSON file made from the store by
`python -m daemon.strategies.volume_profile`, path relative to the working
directory: average traded volume per UTC time-of-day bucket over the recorded
days) or `weights` (one positive number per slice); neither gives equal slices.

Slice k of the schedule (daemon.strategies.schedule: timers, catch-up of what
did not fill, `vwap.done`, restart-safe resume from the journal under the parent
id `vwap@<t0>`) is sent at t0 + k × duration / slices; its weight is the
profile's volume in the bucket that time falls in. The cumulative target after
slice k is total × (weights of slices 0..k) / (all weights), rounded down to the
step, the last slice's target being the total.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from daemon.config import StrategyConfig, parse_interval
from daemon.strategies.base import StrategyContext
from daemon.strategies.schedule import ScheduledParent
from daemon.strategies.volume_profile import load_profile
from events.instruments import Instrument, to_decimal

__all__ = ["Vwap", "VwapParams"]


class VwapParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    side: Literal["BUY", "SELL"]
    total_qty: Annotated[float, msgspec.Meta(gt=0)]
    duration: str
    slices: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    order_type: Literal["market", "limit"] = "market"
    symbol: str | None = None
    profile_file: str | None = None
    weights: list[Annotated[float, msgspec.Meta(gt=0)]] | None = None

    def __post_init__(self) -> None:
        if parse_interval(self.duration) < self.slices:  # ValueError -> one line
            raise ValueError(f"duration {self.duration} is too short for {self.slices} slices")
        if self.profile_file is not None and self.weights is not None:
            raise ValueError("give profile_file or weights, not both")
        if self.weights is not None and not all(map(math.isfinite, self.weights)):
            raise ValueError(f"weights {self.weights} must all be finite")
        if self.weights is not None and len(self.weights) != self.slices:
            raise ValueError(f"weights has {len(self.weights)} numbers for {self.slices} slices")

    @property
    def duration_ns(self) -> int:
        return parse_interval(self.duration)


class Vwap(ScheduledParent):
    KIND = "vwap"
    Params = VwapParams

    params: VwapParams

    @classmethod
    def check_params(
        cls, params: VwapParams, instruments: Mapping[str, Instrument]
    ) -> tuple[str, str] | None:
        if problem := cls.parent_problem(params, instruments):
            return problem
        symbol = params.symbol or next(iter(instruments))
        if params.profile_file is not None:
            try:
                profile = load_profile(Path(params.profile_file))
            except ValueError as exc:
                return "profile_file", str(exc)
            if profile.symbol != symbol:
                return "profile_file", (f"{params.profile_file} is {profile.symbol}'s "
                                        f"profile, not {symbol}'s")
        return None

    def __init__(self, config: StrategyConfig, ctx: StrategyContext) -> None:
        p: VwapParams = ctx.params
        self.profile = None if p.profile_file is None else load_profile(Path(p.profile_file))
        super().__init__(config, ctx)

    def targets_from(self, t0: int) -> list[Decimal]:
        """Exact shares of the total by cumulative weight, rounded down to the step
        (never above the total), the last one the total."""
        p = self.params
        if self.profile is not None:
            weights = self.profile.weights(t0, p.duration_ns // p.slices, p.slices)
        elif p.weights is not None:
            weights = [to_decimal(w) for w in p.weights]
        else:
            weights = [Decimal(1)] * p.slices
        whole = sum(weights, Decimal(0))
        cum = Decimal(0)
        targets = []
        for w in weights[:-1]:
            cum += w
            targets.append(min(self.total, self.inst.round_qty(self.total * cum / whole)))
        targets.append(self.total)
        return targets
