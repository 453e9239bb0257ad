"""Hypothesis strategies producing every event type with valid field values."""

from __future__ import annotations

import typing
from decimal import Decimal

from hypothesis import strategies as st

from events.registry import ALL_TYPES
from events.schema import ENUMS

ts = st.integers(min_value=0, max_value=2**62)
small_int = st.integers(min_value=-(2**62), max_value=2**62)
text = st.text(max_size=12)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=8,
                       min_value=Decimal("-1e12"), max_value=Decimal("1e12"))

_BY_ANNOTATION = {int: small_int, float: floats, str: text, bool: st.booleans(),
                  bytes: st.binary(max_size=64), Decimal: decimals}


def _for(name: str, annotation: typing.Any) -> st.SearchStrategy[typing.Any]:
    if name.startswith("ts_") or name == "seq":
        return ts
    origin = typing.get_origin(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return st.lists(_BY_ANNOTATION[item], max_size=5)
    args = typing.get_args(annotation)
    if args and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return st.none() | _for(name, inner)
    return _BY_ANNOTATION[annotation]


def event_of(cls: type) -> st.SearchStrategy[typing.Any]:
    hints = typing.get_type_hints(cls)
    tag = cls.__struct_config__.tag

    def field(f: str) -> st.SearchStrategy[typing.Any]:
        enum = ENUMS.get((tag, f))  # stored by name: only its codes are values
        if enum is not None:
            return st.sampled_from(sorted({*enum.names, enum.unknown}))
        return _for(f, hints[f])

    return st.builds(cls, **{f: field(f) for f in cls.__struct_fields__})


any_event = st.one_of([event_of(c) for c in ALL_TYPES])
