"""The portfolio's state as it is journaled in a `Snapshot` (msgpack, array-like):
what `Portfolio.snapshot` writes and `Portfolio.restore` reads. New fields go at
the end with defaults; `STATE_VERSION` changes only if that is impossible."""

from __future__ import annotations

from decimal import Decimal

import msgspec


class PosState(msgspec.Struct, array_like=True):
    venue: str
    symbol: str
    strategy_id: str
    qty: Decimal
    cost: Decimal
    avg: Decimal
    realized: Decimal
    fees: Decimal
    other_fees: dict[str, Decimal]  # third-currency fees, by currency
    funding: Decimal = Decimal(0)  # a perpetual's funding received (-: paid)
    open_funding: Decimal = Decimal(0)  # ... since the position last opened


class BalState(msgspec.Struct, array_like=True):
    venue: str
    currency: str
    total: Decimal
    free: Decimal
    locked: Decimal


class MarkState(msgspec.Struct, array_like=True):
    venue: str
    symbol: str
    price: Decimal


class BaseState(msgspec.Struct, array_like=True):
    venue: str
    symbol: str
    strategy_id: str
    value: Decimal


class FeeBaseState(msgspec.Struct, array_like=True):
    """A third-currency fee total at the start of the day (daily PnL's baseline)."""

    venue: str
    symbol: str
    strategy_id: str
    currency: str
    value: Decimal


class PerpState(msgspec.Struct, array_like=True):
    """A perpetual's margin settings (0 / "": not said yet) and whether the
    venue's MarkPrice (not trades) marks it."""

    venue: str
    symbol: str
    leverage: int
    mode: str
    mark_priced: bool
    # the account-level (netted) position, its funding in all and since it opened
    qty: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    avg: Decimal = Decimal(0)
    funding: Decimal = Decimal(0)
    open_funding: Decimal = Decimal(0)


class State(msgspec.Struct, array_like=True):
    version: int
    upto_seq: int
    day: int | None
    positions: list[PosState]
    balances: list[BalState]
    marks: list[MarkState]
    baselines: list[BaseState]
    fee_baselines: list[FeeBaseState]
    perp: list[PerpState] = []


# 2: fees by currency (PosState.other_fees, State.fee_baselines)
STATE_VERSION = 2
encode_state = msgspec.msgpack.Encoder().encode
decode_state = msgspec.msgpack.Decoder(State).decode
