"""Decode cost of the real Binance recording (93,954 messages): msgspec decode of
the combined-stream envelopes into Binance-named structs, and the full parse into
tapeloop events."""

from __future__ import annotations

import gzip
from typing import Any

from adapters.binance.messages import Envelope
from adapters.binance.parse import StreamParser, parser_for_stream
from bench.common import SHARED_DATA, emit, now, rounds

RECORDING = SHARED_DATA / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"


def struct_decoders() -> dict[str, Any]:
    """The parser's own msgspec decoders, by stream kind (tests/test_bench_decode.py
    holds them to the recording: a renamed one failed `make bench`)."""
    from adapters.binance import parse as p

    return {"trade": p._trade_msg, "bookTicker": p._ticker, "depth": p._depth}


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

    import msgspec

    envelope = msgspec.json.Decoder(Envelope)
    decoders = struct_decoders()

    def decode_only() -> float:
        t0 = now()
        for _, body in lines:
            env = envelope.decode(body)
            decoders[env.stream.split("@")[1]].decode(env.data)
        return len(lines) / (now() - t0)

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
