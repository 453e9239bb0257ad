"""A depth message's levels read straight into floats (`parse.levels_of`, msgspec's lax
mode) give the very floats of the reference way (each number as text, then `float()`),
bit for bit, or the same error: over generated levels, hostile text included, and over
every depth message of the real USD-M recording."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.binance import parse
from adapters.binance.messages import DepthUpdateMsg, Envelope
from tests.examples import examples


def _reference(raw: bytes) -> object:
    try:
        return parse._levels(parse._levels_text.decode(raw))
    except msgspec.ValidationError:
        return "ValidationError"
    except ValueError:  # float() of a text that is not a number
        return "ValueError"


def _fast(raw: bytes) -> object:
    try:
        return parse.levels_of(msgspec.Raw(raw))
    except msgspec.ValidationError:
        return "ValidationError"
    except ValueError:
        return "ValueError"


def _bits(outcome: object) -> object:
    """Floats by their bits: -0.0 is not 0.0, and a NaN equals itself."""
    if isinstance(outcome, tuple):
        return tuple([struct.pack("<d", x) for x in side] for side in outcome)
    return outcome


# what Binance sends, and what it never does: other spellings float() takes or
# refuses, signs, exponents, NaN and infinities, leading zeros, blanks, escapes
decimal_text = st.builds(lambda i, f: f"{i}.{f}" if f else str(i),
                         st.integers(0, 10**12), st.sampled_from(["", "0", "00", "5", "10",
                                                                  "12345678", "000001"]))
odd_text = st.one_of(
    st.text("0123456789.eE+-_ naifNIFty", max_size=12),
    st.sampled_from(["-0", "-0.0", "0", "nan", "NaN", "inf", "-inf", "Infinity", "1e400",
                     "1e-400", " 1", "1 ", "+1", "012", ".5", "5.", "1_0", "\\u0031"]),
    st.floats(allow_nan=False).map(repr),
)
value = st.one_of(decimal_text, decimal_text, odd_text, st.floats(allow_nan=False),
                  st.integers(), st.none(), st.booleans())


def _json(levels: list[list[object]]) -> bytes:
    # a text with an escape is written as is: it is JSON's escape, not a backslash
    text = json.dumps(levels)
    return text.replace("\\\\u0031", "\\u0031").encode()


@settings(max_examples=examples(400), deadline=None, database=None)
@given(st.lists(st.one_of(st.lists(value, min_size=2, max_size=2),
                          st.lists(value, max_size=3)), max_size=6))
def test_lax_levels_give_the_reference_floats_or_its_error(levels: list[list[object]]) -> None:
    raw = _json(levels)
    assert _bits(_fast(raw)) == _bits(_reference(raw)), raw


@settings(max_examples=examples(200), deadline=None, database=None)
@given(st.lists(st.tuples(decimal_text, decimal_text), max_size=40))
def test_binance_shaped_levels_take_the_lax_way(pairs: list[tuple[str, str]]) -> None:
    raw = json.dumps(pairs).encode()
    prices, sizes = parse.levels_of(msgspec.Raw(raw))
    assert _bits((prices, sizes)) == _bits(parse._levels(parse._levels_text.decode(raw)))
    # and the lax way is the one that gave them (no fallback for Binance's own text)
    assert len(parse._levels_lax.decode(raw)) == len(pairs) and raw.count(b'"') == 4 * len(pairs)


def test_every_depth_message_of_the_recording_gives_the_reference_floats(
        shared_data: Path) -> None:
    envelope = msgspec.json.Decoder(Envelope)
    depth = msgspec.json.Decoder(DepthUpdateMsg)
    checked = 0
    with gzip.open(shared_data / "hftbacktest" / "usdm" / "btcusdt_20240808.gz", "rb") as f:
        for line in f:
            body = line.rstrip(b"\n").partition(b" ")[2]
            if not body.startswith(b'{"stream":"btcusdt@depth'):
                continue
            m = depth.decode(envelope.decode(body).data)
            for raw in (bytes(m.b), bytes(m.a)):
                assert _bits(_fast(raw)) == _bits(_reference(raw)), raw[:200]
            checked += 1
    assert checked > 6000  # the recording's 6,551 diff depth messages


@pytest.mark.parametrize("given_levels, taken", [
    (b'{"lastUpdateId":1,"bids":[["1.5","2"]],"asks":[]}', "spot"),
    (b'{"lastUpdateId":1,"bids":null,"asks":[],"s":"X","u":3,"b":[["1.5","2"]],"a":[]}',
     "futures"),
    (b'{"lastUpdateId":1,"bids":[["1.5","2"]]}', None),  # no asks: neither shape
])
def test_a_partial_depth_takes_the_shape_whose_levels_it_gives(given_levels: bytes,
                                                               taken: str | None) -> None:
    if taken is None:
        with pytest.raises(msgspec.ValidationError):
            parse.parse_partial_depth(given_levels, "binance", 1, "BTCUSDT")
        return
    snap = parse.parse_partial_depth(given_levels, "binance", 1, "BTCUSDT")
    assert (snap.bid_prices, snap.bid_sizes, snap.ask_prices) == ([1.5], [2.0], [])
    assert snap.last_update_id == (1 if taken == "spot" else 3)
    assert snap.symbol == ("BTCUSDT" if taken == "spot" else "X")
