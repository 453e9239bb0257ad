"""The config schema's shared pieces: the value types its sections use, and
`_Section`, the base of every section (see `daemon.config`)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
FsyncPolicy = Literal["critical", "always", "never"]
VenueKind = Literal["sim", "binance", "binance-usdm", "sample", "ccxt"]
InstrumentKind = Literal["spot", "perpetual"]
MarginMode = Literal["cross", "isolated"]
SlippageModel = Literal["none", "fixed_bps", "spread", "volume", "hybrid"]
FillModel = Literal["next", "aggressive", "conservative", "queue_aware"]

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(min_length=1)]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every section: immutable, and a misspelt key is an error, not a default."""
