"""The Binance world of the simulation (tests/dst/binance_world.py): the real node and
Binance venue against the fake Binance, through faults and restarts, invariants checked
at every step. `TAPELOOP_DST_BINANCE_SEEDS` seeds (2 by default, about 15 s each; 30 in
make soak) from `TAPELOOP_DST_BINANCE_FIRST` (1), or the one seed
`TAPELOOP_DST_BINANCE_SEED`. A failure prints its seed and the command that runs it again."""

from __future__ import annotations

import os
import sys

import pytest

from tests.dst.binance_world import SEED_ENV, run

FIRST = int(os.environ.get("TAPELOOP_DST_BINANCE_FIRST", "1"))
COUNT = int(os.environ.get("TAPELOOP_DST_BINANCE_SEEDS", "2"))
SEEDS = [int(os.environ[SEED_ENV])] if os.environ.get(SEED_ENV) else \
    list(range(FIRST, FIRST + COUNT))


@pytest.mark.parametrize("seed", SEEDS)
async def test_the_binance_world_keeps_every_invariant(seed: int) -> None:
    print(f"binance world: seed {seed}", file=sys.stderr)
    outcome = await run(seed)
    print(outcome, file=sys.stderr)
    assert outcome.restarts >= 1 and outcome.settles >= 1, "the run restarted and settled"
