"""The buy-and-hold benchmark reuses a sample's value while no mark changed; it
must equal the plain valuation of every sample (kept here as the reference),
digit for digit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from replay.metrics import exact_context
from replay.report_series import BENCHMARK_QUANTUM, benchmark
from tests.replay.test_report import fill

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
# Equal values in several exponents (1.0 and 1.00) and values that need the
# quantum's rounding.
PRICES = st.sampled_from([Decimal("1.0"), Decimal("1.00"), Decimal("1"), Decimal("3"),
                          Decimal("7.123456789"), Decimal("64000.01"), Decimal("0.3")])


def _reference(marks: Sequence[Mapping[str, Decimal] | None], symbols: list[str],
               initial: Decimal) -> list[Decimal]:
    """Every sample valued on its own (the code before the reuse)."""
    first: dict[str, Decimal] = {}
    for m in marks:
        for s in symbols:
            if s not in first and m is not None and m.get(s) is not None:
                first[s] = m[s]
    symbols = [s for s in symbols if s in first]
    values = []
    with localcontext(exact_context()):
        share = initial / len(symbols)
        held = {s: share / first[s] for s in symbols}
        last: dict[str, Decimal] = {}
        for m in marks:
            for s in symbols:
                if m is not None and m.get(s) is not None:
                    last[s] = m[s]
            value = sum((held[s] * last[s] if s in last else share for s in symbols),
                        Decimal(0))
            values.append(value.quantize(BENCHMARK_QUANTUM))
    return values


@st.composite
def _marks(draw: st.DrawFn) -> list[Mapping[str, Decimal] | None]:
    out: list[Mapping[str, Decimal] | None] = []
    for _ in range(draw(st.integers(1, 40))):
        if out and draw(st.booleans()):
            out.append(out[-1])  # a night's repeated sample shares its mapping
            continue
        if draw(st.integers(0, 5)) == 0:
            out.append(None)
            continue
        out.append({s: draw(PRICES) for s in SYMBOLS if draw(st.booleans())})
    return out


@settings(max_examples=400, deadline=None)
@given(_marks(), st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True),
       st.sampled_from([Decimal("10000"), Decimal("1"), Decimal("12345.678")]))
def test_benchmark_equals_valuing_every_sample(
        marks: list[Mapping[str, Decimal] | None], traded: list[str], initial: Decimal) -> None:
    fills = [fill("BUY", "1", "1", symbol=s, order=f"c{i}") for i, s in enumerate(traded)]
    got = benchmark(fills, marks, initial, None, "USDT")
    if not any(m and any(s in m for s in traded) for m in marks):
        assert got is None
        return
    assert got is not None
    want = _reference(marks, sorted(traded), initial)
    assert [str(v) for v in got.values] == [str(v) for v in want]
