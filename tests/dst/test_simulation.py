"""The deterministic simulation (issue 9): `DST_SEEDS` seeds (default 2,000) of the real
node in an adversarial world, restarted from its journal at random event boundaries,
with invariants checked after every step (tests/dst/invariants.py). A failure prints its
seed and the one-line command that replays it. `make soak` runs 100,000."""

from __future__ import annotations

import os

import pytest

from tests.dst.__main__ import run_many

SEEDS = int(os.environ.get("DST_SEEDS", "2000"))
FIRST = int(os.environ.get("DST_FIRST", "0"))


# ~60 s for 2,000 seeds on two idle cores; the limit grows with DST_SEEDS
@pytest.mark.timeout(600 * max(1.0, SEEDS / 2000))
def test_seeded_simulations_keep_every_invariant(capsys) -> None:
    totals: dict[str, int] = {}
    failures = run_many(FIRST, SEEDS, workers=min(2, os.cpu_count() or 1), totals=totals)
    with capsys.disabled():
        print()
        for failure in failures[:3]:
            print(failure)
    assert not failures, f"{len(failures)} of {SEEDS} seeds broke an invariant:\n{failures[0]}"
    # seeds that pass by exercising nothing (no restart, no order, no fill) prove nothing
    assert min(totals.values()) > 0, f"the seeds exercised {totals}"


def test_perpetual_seeds_restart_funding_and_liquidation() -> None:
    """The perp world (every sixth seed) exercises what it is there for: restarts with a
    position held, funding paid and positions liquidated (each seed keeps every
    invariant, the restored margin account included)."""
    from events.perp import FundingPayment, Liquidation
    from tests.dst.sim import Simulation

    seen = {"liquidated": 0, "funded": 0, "restarted": 0}
    for seed in range(5, 5 + 6 * 12, 6):
        sim = Simulation(seed)
        assert sim.world.name == "perp"
        out = sim.run()
        kinds = {type(e) for e in sim.journal}
        seen["liquidated"] += Liquidation in kinds
        seen["funded"] += FundingPayment in kinds
        seen["restarted"] += out.restarts > 0
    assert min(seen.values()) >= 2, seen
