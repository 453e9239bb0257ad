"""The Monte Carlo bootstrap of closed trades: its invariants (ordered percentiles,
no loss without a losing trade, the exact values when every trade is the same),
determinism per seed and across chunkings, the degenerate runs and the input checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import daemon.research.montecarlo as mc_module
from daemon.research.montecarlo import (
    PERCENTILES,
    monte_carlo,
    monte_carlo_of_trades,
    parse_runs,
    parse_seed,
)

D = Decimal
KEYS = [f"p{p}" for p in PERCENTILES]

# PnLs with up to 4 decimal places, as a replay's trades.csv has them; small enough
# that every scaled path sum stays below 2**53 (the floats of the exactness checks).
pnl = st.decimals(min_value=D("-100000"), max_value=D("100000"), places=4,
                  allow_nan=False, allow_infinity=False)
equity = st.decimals(min_value=D("1"), max_value=D("1000000000"), places=2,
                     allow_nan=False, allow_infinity=False)
seed = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=60, deadline=None)
@given(pnls=st.lists(pnl, min_size=2, max_size=40), e=equity, s=seed,
       runs=st.integers(1, 300))
def test_percentiles_are_ordered_and_the_result_is_json(pnls, e, s, runs) -> None:
    mc = monte_carlo(pnls, e, runs, s)
    for key in ("final_return", "max_drawdown"):
        values = [mc[key][k] for k in KEYS]
        assert values == sorted(values), (key, values)
    assert all(v >= 0 for v in mc["max_drawdown"].values())
    assert 0 <= mc["loss_probability"] <= 1
    assert sum(mc["histogram"]["counts"]) == runs
    assert (mc["runs"], mc["seed"], mc["trades"], mc["note"]) == (runs, s, len(pnls), None)
    json.dumps(mc, allow_nan=False)  # report.json refuses NaN and inf


@settings(max_examples=40, deadline=None)
@given(pnls=st.lists(pnl.filter(lambda x: x > 0), min_size=2, max_size=40), e=equity, s=seed)
def test_all_winning_trades_never_lose_and_never_draw_down(pnls, e, s) -> None:
    mc = monte_carlo(pnls, e, 200, s)
    assert mc["loss_probability"] == 0
    assert all(v == 0 for v in mc["max_drawdown"].values())
    assert all(v > 0 for v in mc["final_return"].values())


@settings(max_examples=60, deadline=None)
@given(p=pnl, n=st.integers(2, 60), e=equity, s=seed)
def test_one_trade_repeated_gives_the_exact_values(p, n, e, s) -> None:
    """Every resampled path is the observed one: the figures are exact, not estimates."""
    mc = monte_carlo([p] * n, e, 50, s)
    ret = float(Fraction(n * p) / Fraction(e))
    dd = float(Fraction(-n * p) / Fraction(e)) if p < 0 else 0.0
    assert mc["final_return"] == dict.fromkeys(KEYS, ret)
    assert mc["max_drawdown"] == dict.fromkeys(KEYS, dd)
    assert mc["observed"] == {"final_return": ret, "max_drawdown": dd}
    assert mc["loss_probability"] == (1.0 if p < 0 else 0.0)


@settings(max_examples=20, deadline=None)
@given(pnls=st.lists(pnl, min_size=2, max_size=30), s=seed)
def test_the_same_seed_gives_the_same_result_whatever_the_chunking(pnls, s) -> None:
    first = monte_carlo(pnls, D(1_000_000), 500, s)
    assert monte_carlo(pnls, D(1_000_000), 500, s) == first
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mc_module, "_CHUNK_CELLS", 7)  # a few paths per chunk
        assert monte_carlo(pnls, D(1_000_000), 500, s) == first


def test_a_seed_gives_the_same_numbers_on_every_machine() -> None:
    """Pinned figures: PCG64's stream and the exact integer paths make them
    independent of the machine; a change here is a change of method."""
    pnls = [D("4.3267"), D("-2.5"), D("12.01"), D("-7.75"), D("0.5"), D("-1.125"), D("3")]
    mc = monte_carlo(pnls, D("1000"), 1000, 42)
    assert mc["loss_probability"] == 0.3
    assert mc["final_return"] == {
        "p5": -0.0165483, "p25": -0.0022883, "p50": 0.0076051,
        "p75": 0.017608375, "p95": 0.0331067,
    }
    assert mc["max_drawdown"]["p95"] == 0.022252414999999998
    # the observed order: peak 1013.8367 after the third trade, trough 1005.4617
    assert mc["observed"] == {"final_return": 0.0084617,
                              "max_drawdown": float(Fraction("8.375") / Fraction("1013.8367"))}
    assert monte_carlo(pnls, D("1000"), 1000, 43) != mc


def test_pnls_beyond_int64_at_full_precision_are_rounded_not_overflowed() -> None:
    pnls = [D("123456789.123456789012"), D("-98765432.1"), D("0.000000000001")]
    mc = monte_carlo(pnls, D("100000000000"), 100, 1)
    assert mc["note"] is None
    # every path is within the sum of the largest gains / losses
    assert -0.003 < mc["final_return"]["p5"] <= mc["final_return"]["p95"] < 0.0038


@pytest.mark.parametrize("pnls, note", [
    ([], "0 closed trades: at least 2 are needed to resample"),
    ([D("5")], "1 closed trade: at least 2 are needed to resample"),
])
def test_zero_or_one_trade_says_so(pnls, note) -> None:
    mc = monte_carlo(pnls, D(1000), 100, 0)
    assert mc["note"] == note
    assert mc["final_return"] == dict.fromkeys(KEYS)
    assert mc["loss_probability"] is None
    json.dumps(mc, allow_nan=False)


def test_a_non_positive_initial_equity_says_so() -> None:
    assert monte_carlo([D(1), D(2)], D(0), 10, 0)["note"] == "initial equity 0 is not positive"


@dataclass
class Trip:
    venue: str
    symbol: str
    pnl: Decimal


def test_trades_in_another_currency_than_the_account_are_not_resampled() -> None:
    quote = {("v", "BTCUSDT"): "USDT", ("v", "SPY"): "USD"}
    trades = [Trip("v", "SPY", D(1)), Trip("v", "BTCUSDT", D(2)), Trip("v", "SPY", D(-1))]
    mc = monte_carlo_of_trades(trades, lambda v, s: quote.get((v, s)), "USD", D(100), 10, 0)
    assert mc["note"] == "trade PnLs in USDT, not the account currency USD: not resampled"
    same = [t for t in trades if t.symbol == "SPY"]
    mc = monte_carlo_of_trades(same, lambda v, s: quote.get((v, s)), "USD", D(100), 10, 0)
    assert mc == monte_carlo([D(1), D(-1)], D(100), 10, 0)


@pytest.mark.parametrize("text, message", [
    ("0", "--monte-carlo '0': not a positive integer"),
    ("-5", "--monte-carlo '-5': not a positive integer"),
    ("1e3", "--monte-carlo '1e3': not a positive integer"),
    ("1000001", "--monte-carlo '1000001': at most 1,000,000 paths"),
])
def test_a_bad_path_count_is_one_line(text, message) -> None:
    with pytest.raises(ValueError) as exc:
        parse_runs(text)
    assert str(exc.value) == message


@pytest.mark.parametrize("text", ["-1", "x", str(2**64)])
def test_a_bad_seed_is_one_line(text) -> None:
    with pytest.raises(ValueError) as exc:
        parse_seed(text)
    assert str(exc.value) == f"--mc-seed {text!r}: not an integer from 0 to 2**64-1"


def test_monte_carlo_refuses_a_bad_count_or_seed() -> None:
    with pytest.raises(ValueError, match="runs"):
        monte_carlo([D(1), D(2)], D(10), 0, 0)
    with pytest.raises(ValueError, match="runs"):
        monte_carlo([D(1), D(2)], D(10), 1_000_001, 0)
    with pytest.raises(ValueError, match="seed"):
        monte_carlo([D(1), D(2)], D(10), 5, -1)


def test_numpy_integers_are_taken_as_plain_ints() -> None:
    import numpy as np

    mc = monte_carlo([D(1), D(-2), D(3)], D(100), np.int64(50), np.uint64(9))
    assert mc == monte_carlo([D(1), D(-2), D(3)], D(100), 50, 9)
    assert type(mc["runs"]) is int and type(mc["seed"]) is int
