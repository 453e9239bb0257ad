"""`make bench`'s Binance decode bench decodes the real recording with the
parser's own decoders: a renamed decoder made the bench raise, and with it
`make bench` exit non-zero."""

from __future__ import annotations

import gzip
import itertools

import msgspec
import pytest

from adapters.binance.messages import Envelope
from bench.bench_decode import RECORDING, struct_decoders


def test_every_stream_kind_of_the_recording_decodes_with_the_benchs_decoders() -> None:
    if not RECORDING.exists():
        pytest.skip(f"{RECORDING} not found")
    envelope = msgspec.json.Decoder(Envelope)
    decoders = struct_decoders()
    seen: set[str] = set()
    with gzip.open(RECORDING, "rb") as f:
        for line in itertools.islice(f, 20_000):
            body = line.rstrip(b"\n").partition(b" ")[2]
            if not body.startswith(b'{"stream"'):
                continue
            env = envelope.decode(body)
            kind = env.stream.split("@")[1]
            decoders[kind].decode(env.data)
            seen.add(kind)
    assert seen == set(decoders), seen
