"""Event codecs: msgpack for the journal, JSON-ready dicts for humans.

Encoders and decoders are built once and reused; decoding is by tag into the
closed union of `events.registry`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from events.base import Event, event_type_name
from events.registry import AnyEvent

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyEvent)
_json_encoder = msgspec.json.Encoder(decimal_format="string")

encode = _encoder.encode
encode_into = _encoder.encode_into
decode = _decoder.decode


def to_dict(event: Event) -> dict[str, Any]:
    """The event as a plain dict with its type first, field names as keys.

    (`msgspec.to_builtins` would follow `array_like` and give a list.)
    """
    out: dict[str, Any] = {"type": event_type_name(type(event))}
    for name in event.__struct_fields__:
        out[name] = getattr(event, name)
    return out


def to_json(event: Event) -> bytes:
    """One JSON object for the event (Decimals as strings, bytes as base64)."""
    return _json_encoder.encode(to_dict(event))


def from_dict(data: dict[str, Any]) -> Event:
    """Build an event from `to_dict` output (or any mapping with a `type` key)."""
    from events.registry import type_by_name

    type_name = data["type"]
    cls = type_by_name(type_name)
    # array_like structs convert from their positional form: [tag, field values...]
    row = [type_name, *(data[f] for f in cls.__struct_fields__ if f in data)]
    return msgspec.convert(row, cls, strict=False)


__all__ = ["Decimal", "decode", "encode", "encode_into", "from_dict", "to_dict", "to_json"]
