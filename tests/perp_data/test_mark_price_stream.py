"""USD-M `markPrice` recordings: each message a MarkPrice, and the funding time
passing settles a FundingRate once; imported by `tapeloop import binance-stream`
and played live by the sample feed."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from adapters.binance.parse import StreamParser, parser_for_stream
from adapters.binance.stream import read_recording
from adapters.sample.feed import SampleFeed
from events.perp import FundingRate, MarkPrice
from replay.reader import read_events
from tests.test_cli_import import run_in_process

MS = 1_000_000
H8 = 8 * 3_600_000
T0 = 1_700_006_400_000  # a funding time (ms), 00:00 UTC


def mark_line(recv_ms: int, e_ms: int, price: str, rate: str, next_ms: int,
              symbol: str = "BTCUSDT", stream: str = "btcusdt@markPrice@1s") -> str:
    data = {"e": "markPriceUpdate", "E": e_ms, "s": symbol, "p": price, "i": price,
            "P": price, "r": rate, "T": next_ms}
    return f"{recv_ms * MS} {json.dumps({'stream': stream, 'data': data})}"


def recording(tmp_path: Path) -> Path:
    """Marks each second around two funding times, with a forceOrder and a trade."""
    lines = [
        mark_line(T0 - 2001, T0 - 2000, "100.0", "0.00010000", T0),
        mark_line(T0 - 1001, T0 - 1000, "100.5", "0.00012000", T0),
        # Binance's liquidation stream: not market data tapeloop keeps
        f'{(T0 - 500) * MS} {{"stream":"btcusdt@forceOrder","data":{{"e":"forceOrder",'
        f'"E":{T0 - 500},"o":{{"s":"BTCUSDT","S":"SELL","q":"1","p":"99"}}}}}}',
        mark_line(T0 + 1, T0, "101.0", "0.00003000", T0 + H8),
        mark_line(T0 + 1001, T0 + 1000, "101.5", "-0.00002000", T0 + H8),
        f'{(T0 + 1500) * MS} {{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade",'
        f'"E":{T0 + 1500},"s":"BTCUSDT","a":7,"p":"101.4","q":"0.5","f":1,"l":2,'
        f'"T":{T0 + 1500},"m":true}}}}',
        mark_line(T0 + H8 + 5, T0 + H8 + 3, "99.0", "0.00001000", T0 + 2 * H8),
    ]
    path = tmp_path / "usdm.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_mark_price_streams_are_routed() -> None:
    for stream in ("btcusdt@markPrice", "btcusdt@markPrice@1s"):
        assert parser_for_stream(stream) is not None
    assert parser_for_stream("btcusdt@forceOrder") is None


def test_a_recording_with_mark_prices(tmp_path: Path) -> None:
    events = [e for _, e in read_recording(recording(tmp_path), "binance-usdm", "BTCUSDT")]
    marks = [e for e in events if type(e) is MarkPrice]
    funding = [e for e in events if type(e) is FundingRate]
    assert [(m.ts_event, m.mark, m.funding_rate, m.next_funding_ts) for m in marks] == [
        ((T0 - 2000) * MS, 100.0, 0.0001, T0 * MS),
        ((T0 - 1000) * MS, 100.5, 0.00012, T0 * MS),
        (T0 * MS, 101.0, 0.00003, (T0 + H8) * MS),
        ((T0 + 1000) * MS, 101.5, -0.00002, (T0 + H8) * MS),
        ((T0 + H8 + 3) * MS, 99.0, 0.00001, (T0 + 2 * H8) * MS),
    ]
    # The rate last announced before each funding time, settled once, at that time,
    # ahead of the mark that passed it; known when that mark was received.
    assert [(f.ts_event, f.funding_ts, f.rate, f.ts_recv) for f in funding] == [
        (T0 * MS, T0 * MS, 0.00012, (T0 + 1) * MS),
        ((T0 + H8) * MS, (T0 + H8) * MS, -0.00002, (T0 + H8 + 5) * MS),
    ]
    assert events.index(funding[0]) == events.index(marks[2]) - 1
    assert {e.venue for e in events} == {"binance-usdm"}


@given(st.lists(st.tuples(st.integers(1, 25_000), st.integers(-50, 50), st.booleans()),
                min_size=1, max_size=40))
def test_each_funding_time_is_settled_once_with_the_last_rate_announced(
    steps: list[tuple[int, int, bool]]
) -> None:
    """Marks every few seconds, funding every 10 s (Binance may still announce
    the time just passed in the first message after it): every announced
    funding time that a later mark passes is settled exactly once, with the
    rate the last mark before that one announced."""
    parser = StreamParser("v")
    e, period = T0, 10_000
    announced: dict[int, float] = {}  # funding time (ms) -> the last rate announced for it
    expected: set[int] = set()
    settled: list[FundingRate] = []
    prev_nxt: int | None = None
    for gap, rate_bp, stale in steps:
        e += gap
        nxt = (e // period + 1) * period
        if stale and prev_nxt == e // period * period:
            nxt = prev_nxt
        expected |= {t for t in announced if t <= e}
        rate = rate_bp / 100_000
        raw = mark_line(0, e, "1.0", repr(rate), nxt).split(" ", 1)[1].encode()
        out = parser.parse_events(raw, e * MS)
        assert type(out[-1]) is MarkPrice and len(out) <= 2
        for x in out[:-1]:
            assert type(x) is FundingRate
            assert x.ts_event == x.funding_ts <= e * MS
            assert x.rate == announced[x.funding_ts // MS]
        settled.extend(out[:-1])  # type: ignore[arg-type]
        announced[nxt] = rate
        prev_nxt = nxt
    times = [f.funding_ts // MS for f in settled]
    assert times == sorted(set(times))
    assert set(times) == expected


def test_import_binance_stream_keeps_marks_and_funding(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rc, out, err = run_in_process("import", "binance-stream", recording(tmp_path), "--venue",
                                  "binance-usdm", "--symbol", "BTCUSDT", "--data", data)
    assert rc == 0, err
    assert "8 events (2 FundingRate, 5 MarkPrice, 1 Trade)" in out
    stored = [e for batch in read_events(data) for e in batch]
    # in (ts_event, seq) order; the mark stamped exactly at the first funding time
    # ties with it (the store numbers a recording type by type)
    assert [(type(e).__name__, e.ts_event // MS - T0) for e in stored] == [
        ("MarkPrice", -2000), ("MarkPrice", -1000), ("MarkPrice", 0), ("FundingRate", 0),
        ("MarkPrice", 1000), ("Trade", 1500), ("FundingRate", H8), ("MarkPrice", H8 + 3)]


async def test_the_sample_feed_plays_marks_and_funding_shifted(tmp_path: Path) -> None:
    now = (T0 + 10 * H8) * MS
    published: list = []
    feed = SampleFeed(venue="sample", path=recording(tmp_path), symbol="BTCUSDT", speed=None,
                      loop=False, publish=published.append, now_ns=lambda: now)
    await feed.run()
    funding = [e for e in published if type(e) is FundingRate]
    marks = [e for e in published if type(e) is MarkPrice]
    offset = now - (T0 - 2001) * MS
    assert [f.funding_ts for f in funding] == [T0 * MS + offset, (T0 + H8) * MS + offset]
    assert all(f.ts_event == f.funding_ts for f in funding)
    assert [m.next_funding_ts - m.ts_event for m in marks] == [
        2000 * MS, 1000 * MS, H8 * MS, (H8 - 1000) * MS, (H8 - 3) * MS]
