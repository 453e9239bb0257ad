"""The paper venue is event-sourced: a venue restored from the journal at any
point of a session holds the same books as the venue that ran it, and from
there on answers the same market and requests with the same events (trade ids,
fills, balances).

Each seed records one random session (`scenario.record`: two symbols, trades
and quotes, limits resting and crossing, partial fills under the `volume`
slippage model, stops, GTD/DAY/IOC/FOK, amends and cancels, fees in the quote,
the asset received or BNB, latency that leaves requests in flight) and cuts it
at random steps. A failure names its seed and cut; replay one seed with
`pytest tests/adapters/sim/test_restore_equivalence.py -k 'seed_<n>]'`.
"""

from __future__ import annotations

import random

import pytest

from events.base import Event

from .scenario import JOURNALED, MARKET, Session, Tape, answers, folded_positions, record

SEEDS = range(100)
CUTS_PER_SEED = 6


def _restored(tape: Tape, cut: int, *, primed: bool) -> Session:
    """A fresh venue restored from the events journaled before step `cut`;
    `primed`: it has seen the market events before the cut (as the original
    has), which leaves nothing to tell the two apart."""
    b = Session(tape.options)
    if primed:
        for ev in tape.steps[:cut]:
            if isinstance(ev, MARKET):
                b.feed(ev)
        assert not [e for e in b.events if not isinstance(e, MARKET)], \
            "a venue with no orders publishes nothing"
    journal = [e for e in tape.events[:tape.marks[cut]] if isinstance(e, JOURNALED)]
    before = len(b.events)
    b.venue.restore(journal, folded_positions(journal))
    assert len(b.events) == before, "restore publishes nothing"
    return b


def _cuts(tape: Tape) -> list[int]:
    """Random steps, half of them where the venue holds a partly filled order
    or a request in flight (the states a restart most easily gets wrong)."""
    rng = random.Random(tape.seed * 7919 + 1)
    busy = [i for i, st in enumerate(tape.states)
            if st["pending"] or any(terms[9] for terms in st["open"].values())]
    half = CUTS_PER_SEED // 2
    cuts = set(rng.sample(busy, min(half, len(busy))))
    cuts.update(rng.sample(range(len(tape.steps) + 1), CUTS_PER_SEED - len(cuts)))
    return sorted(cuts)


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed_{s}" for s in SEEDS])
def test_a_venue_restored_at_any_step_continues_as_the_original(seed: int) -> None:
    tape = record(seed)
    where = f"seed {seed} ({tape.options})"
    assert any(type(e).__name__ == "Fill" for e in tape.events), where
    for i, problems in enumerate(tape.problems):
        assert problems == [], f"{where}: before step {i}: {problems}"
    for cut in _cuts(tape):
        b = _restored(tape, cut, primed=True)
        at = f"{where}, cut before step {cut}"
        assert b.venue.state() == tape.states[cut], at
        assert b.venue.invariant_violations() == [], at
        b.venue.start()
        start = len(b.events)
        for ev in tape.steps[cut:]:
            b.feed(ev)
        assert answers(b.events[start:]) == answers(tape.events[tape.marks[cut]:]), at
        assert b.venue.state() == tape.states[-1], at


@pytest.mark.parametrize("seed", range(20), ids=[f"seed_{s}" for s in range(20)])
def test_a_restart_that_has_not_seen_the_market_loses_and_doubles_nothing(seed: int) -> None:
    """A real restart learns the market again from the next events: fills may
    differ from the original's, but every id stays unique, every request is
    answered once, and the books stay sound."""
    tape = record(seed)
    rng = random.Random(seed)
    cut = rng.randrange(len(tape.steps) // 3, len(tape.steps))
    b = _restored(tape, cut, primed=False)
    b.venue.start()
    start = len(b.events)
    for ev in tape.steps[cut:]:
        b.feed(ev)
        assert b.venue.invariant_violations() == [], f"seed {seed}, cut {cut}"
    before, after = tape.events[:tape.marks[cut]], b.events[start:]
    trade_ids = [e.trade_id for e in [*before, *after] if type(e).__name__ == "Fill"]
    assert len(trade_ids) == len(set(trade_ids)), f"seed {seed}: a trade id repeats"
    accepted = [e.venue_order_id for e in [*before, *after]
                if type(e).__name__ == "OrderAccepted"]
    assert len(accepted) == len(set(accepted)), f"seed {seed}: a venue order id repeats"
    _every_request_answered_once([*before, *after], b.venue.state(), seed)


def _every_request_answered_once(events: list[Event], state: dict, seed: int) -> None:
    waiting = {(kind, cid) for kind, cid in state["pending"]}
    for kind, answer in (("OrderSubmitted", ("OrderAccepted", "OrderRejected")),
                         ("AmendOrder", ("OrderAmended", "AmendRejected"))):
        sent: dict[str, int] = {}
        got: dict[str, int] = {}
        for e in events:
            name = type(e).__name__
            if name == kind:
                sent[e.client_order_id] = sent.get(e.client_order_id, 0) + 1
            elif name in answer and (kind != "OrderSubmitted" or not getattr(e, "check", "")):
                got[e.client_order_id] = got.get(e.client_order_id, 0) + 1
        for cid, n in sent.items():
            expected = n - (1 if (kind, cid) in waiting else 0)
            assert got.get(cid, 0) == expected, f"seed {seed}: {kind} {cid}: {got.get(cid)}"
