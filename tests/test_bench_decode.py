"""`make bench`'s Binance decode bench decodes the real recording with the
parser's own decoders: a renamed decoder made the bench raise, and with it
`make bench` exit non-zero. They are the decoders `StreamParser.parse` takes for a
stream it has seen, and they decode every kind of message the recording holds."""

from __future__ import annotations

import gzip
import itertools

import msgspec
import pytest

from adapters.binance.messages import Envelope
from adapters.binance.parse import StreamParser
from bench.bench_decode import RECORDING, struct_decoders


def test_every_stream_kind_of_the_recording_decodes_with_the_benchs_decoders() -> None:
    if not RECORDING.exists():
        pytest.skip(f"{RECORDING} not found")
    envelope = msgspec.json.Decoder(Envelope)
    decoders = struct_decoders()
    parser = StreamParser("binance")
    seen: set[str] = set()
    with gzip.open(RECORDING, "rb") as f:
        for line in itertools.islice(f, 20_000):
            stamp, _, body = line.rstrip(b"\n").partition(b" ")
            if not body.startswith(b'{"stream"'):
                continue
            env = envelope.decode(body)
            kind = env.stream.split("@")[1]
            assert decoders[kind].decode(body).stream == env.stream
            parser.parse(body, int(stamp))
            seen.add(kind)
    assert seen == set(decoders), seen
    # the parser's one-pass decoder of each stream is the bench's
    assert {whole[0] for whole in parser._whole.values()} == set(decoders.values())
