"""Deterministic simulation of the trading core (issue 9): a seeded scheduler drives the
real node (OMS, risk, portfolio, strategies, simulated venue) through an adversarial but
legal world, restarts it from its journal at any event boundary, and checks invariants
after every step. `python -m tests.dst --seed N` replays one seed exactly."""
