"""The deterministic simulation (issue 9): `DST_SEEDS` seeds (default 2,000) of the real
node in an adversarial world, restarted from its journal at random event boundaries,
with invariants checked after every step (tests/dst/invariants.py). A failure prints its
seed and the one-line command that replays it. `make soak` runs 100,000."""

from __future__ import annotations

import os

from tests.dst.__main__ import run_many

SEEDS = int(os.environ.get("DST_SEEDS", "2000"))
FIRST = int(os.environ.get("DST_FIRST", "0"))


def test_seeded_simulations_keep_every_invariant(capsys) -> None:
    failures = run_many(FIRST, SEEDS, workers=min(2, os.cpu_count() or 1))
    with capsys.disabled():
        print()
        for failure in failures[:3]:
            print(failure)
    assert not failures, f"{len(failures)} of {SEEDS} seeds broke an invariant:\n{failures[0]}"
