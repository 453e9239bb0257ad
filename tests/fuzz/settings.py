"""How much the fuzz tests run and from which seed.

- `TAPELOOP_FUZZ_SEED`: an integer (default 0, so `make test` is the same run every
  time and a failure on CI replays on a laptop), or `random` for a fresh seed (`make
  soak`). The seed in use is printed at the end of the run and in every failure.
- `TAPELOOP_FUZZ_SCALE`: multiplies every test's example count (default 1; `make soak`
  raises it).
- `TAPELOOP_FUZZ_SHRINK=1`: shrink a failing example to a minimal one. Off by default:
  hypothesis may shrink for five minutes, and an example here starts real processes;
  a failure prints the example as drawn (the part, the damage, the mutation) instead.

`fuzz(n)` applies both to a hypothesis test: `n` examples times the scale, the seed,
no example database (a database would replay old failures first and make two runs
with one seed differ) and no deadline (a real process is slow on a loaded machine).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, note, seed, settings

F = TypeVar("F", bound=Callable[..., Any])


def _seed_from_env() -> int:
    text = os.environ.get("TAPELOOP_FUZZ_SEED", "0").strip()
    if text == "random":
        return random.SystemRandom().randrange(2**32)
    try:
        return int(text)
    except ValueError:
        raise SystemExit(f"TAPELOOP_FUZZ_SEED={text!r}: expected an integer or 'random'") from None


def _scale_from_env() -> float:
    text = os.environ.get("TAPELOOP_FUZZ_SCALE", "1").strip()
    try:
        scale = float(text)
    except ValueError:
        scale = 0.0
    if scale <= 0:
        raise SystemExit(f"TAPELOOP_FUZZ_SCALE={text!r}: expected a number > 0")
    return scale


FUZZ_SEED = _seed_from_env()
FUZZ_SCALE = _scale_from_env()
FUZZ_SHRINK = os.environ.get("TAPELOOP_FUZZ_SHRINK", "") not in ("", "0")
PHASES = tuple(Phase) if FUZZ_SHRINK else tuple(p for p in Phase if p is not Phase.shrink)


def rerun_hint(test: str = "tests/fuzz") -> str:
    return (f"fuzz seed {FUZZ_SEED} (scale {FUZZ_SCALE:g}); rerun: TAPELOOP_FUZZ_SEED={FUZZ_SEED} "
            f"TAPELOOP_FUZZ_SCALE={FUZZ_SCALE:g} .venv/bin/python -m pytest {test}")


def examples(n: int) -> int:
    return max(1, round(n * FUZZ_SCALE))


def fuzz(n: int) -> Callable[[F], F]:
    """Run a hypothesis test on `n` (times the scale) examples from the fuzz seed."""

    def wrap(test: F) -> F:
        configured = settings(
            max_examples=examples(n),
            deadline=None,
            database=None,
            print_blob=True,
            phases=PHASES,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                   HealthCheck.data_too_large],
        )(test)
        return seed(FUZZ_SEED)(configured)  # type: ignore[no-any-return]

    return wrap


def note_seed(test: str) -> None:
    """Make the falsifying example's report say how to replay it."""
    note(rerun_hint(test))
