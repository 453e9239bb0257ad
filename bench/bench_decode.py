"""Decode cost of the real Binance recording (93,953 combined-stream messages): msgspec
decode of each message into the parser's Binance-named structs, the way
`StreamParser.parse` decodes a stream it has seen before (the whole message in one pass:
`{"stream":..., "data":{...}}` into one frame struct, a depth message's levels kept raw),
and the full parse into tapeloop events (a depth message's levels read into floats)."""

from __future__ import annotations

import gzip
from typing import Any

from adapters.binance.parse import StreamParser, parser_for_stream
from bench.common import SHARED_DATA, emit, now, rounds

RECORDING = SHARED_DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"


def struct_decoders() -> dict[str, Any]:
    """The parser's own one-pass decoders of a whole message, by stream kind
    (tests/test_bench_decode.py holds them to the recording and to the parser: a
    renamed one failed `make bench`)."""
    from adapters.binance import parse as p

    return {kind: p._WHOLE[parser][0] for kind, parser in (
        ("trade", p.parse_trade), ("bookTicker", p.parse_book_ticker),
        ("depth", p.parse_depth_update))}


def main() -> None:
    if not RECORDING.exists():
        emit("binance_decode", skipped=f"{RECORDING} not found")
        return
    lines = []
    with gzip.open(RECORDING, "rb") as f:
        for line in f:
            stamp, _, body = line.rstrip(b"\n").partition(b" ")
            if body.startswith(b'{"stream"'):
                lines.append((int(stamp), body))

    decoders = struct_decoders()
    # each message's decoder picked as the parser picks it: by the stream's name as the
    # message's bytes spell it (the parser learns each name at its first message)
    names = {body[11:body.find(b'"', 11)] for _, body in lines}
    by_stream = {name: decoders[name.split(b"@")[1].decode()] for name in names}
    bodies = [body for _, body in lines]

    def decode_only() -> float:
        t0 = now()
        for body in bodies:
            by_stream[body[11:body.find(b'"', 11)]].decode(body)
        return len(bodies) / (now() - t0)

    parser = StreamParser("binance")

    def to_events() -> float:
        t0 = now()
        parse = parser.parse
        for ts, body in lines:
            parse(body, ts)
        return len(lines) / (now() - t0)

    assert parser_for_stream("btcusdt@depth@0ms") is not None
    r = rounds(9, decode_only)
    emit("binance_decode_structs", messages=len(lines), messages_per_s=r["best"],
         median_messages_per_s=r["median"], target=800_000)
    r = rounds(9, to_events)
    emit("binance_parse_to_events", messages=len(lines), messages_per_s=r["best"],
         median_messages_per_s=r["median"])


if __name__ == "__main__":
    main()
