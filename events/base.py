"""The event base: every fact in tapeloop is a frozen, tagged msgspec Struct.

Encoding is `array_like`: a journal frame holds the tag and the field values in
declaration order, no field names. Schema evolution therefore follows msgspec's
rule for array-like structs: new fields are appended at the end with a default,
existing fields never change type or position.
"""

from __future__ import annotations

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True, array_like=True, gc=False):
    """Base of every event.

    `ts_event` is venue (or event) time and `ts_recv` local receive time, both in
    integer nanoseconds since the Unix epoch. `seq` is the global, gap-free
    sequence number; it is 0 until the bus stamps it as the event enters the
    journal (see `events.bus`).
    """

    ts_event: int
    ts_recv: int
    seq: int = 0


# The bus stamps `seq` exactly once, before any subscriber (the journal first)
# sees the event. Frozen structs refuse attribute assignment, so the stamp goes
# through the slot descriptor: an in-place write with no copy on the hot path.
stamp_seq = Event.__dict__["seq"].__set__


def event_type_name(cls: type[Event]) -> str:
    """The tag of an event class (its class name): the `type=` partition value."""
    return cls.__struct_config__.tag  # type: ignore[return-value]
