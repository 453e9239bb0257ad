from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from events import codec
from events.registry import ALL_TYPES
from events.schema import schema_for
from tests.events.strategies import any_event, event_of
from tests.examples import examples


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=examples(30), deadline=None)
@given(data=__import__("hypothesis").strategies.data())
def test_msgpack_roundtrip_every_type(cls, data) -> None:
    event = data.draw(event_of(cls))
    assert codec.decode(codec.encode(event)) == event


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=examples(20), deadline=None)
@given(data=__import__("hypothesis").strategies.data())
def test_arrow_roundtrip_every_type(cls, data) -> None:
    events = data.draw(__import__("hypothesis").strategies.lists(event_of(cls), max_size=5))
    sch = schema_for(cls)
    assert sch.from_table(sch.to_table(events)) == events


@settings(max_examples=examples(200), deadline=None)
@given(event=any_event)
def test_json_view_names_every_field(event) -> None:
    obj = json.loads(codec.to_json(event))
    assert obj["type"] == type(event).__name__
    assert set(obj) == {"type", *event.__struct_fields__}
    assert codec.from_dict(obj) == event


def test_events_are_frozen() -> None:
    from events import Trade

    t = Trade(ts_event=1, ts_recv=2, venue="v", symbol="s", price=1.0, size=1.0)
    with pytest.raises(AttributeError):
        t.price = 2.0  # type: ignore[misc]
