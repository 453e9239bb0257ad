"""Fuzzing as tests (issue 10 item 7): hostile configs, import files, journal tails and
Parquet parts, each checked against the project's rule for a user's mistake or a broken
environment: exit 0, or a documented non-zero exit with ONE line naming the file; never
a traceback; nothing already recorded lost.

Every test is a seeded hypothesis property (`tests.fuzz.settings`): `make test` runs a
few examples of each family with a fixed seed, `make soak` many more with a random one,
printed at the end of the run; `TAPELOOP_FUZZ_SEED=N` replays a run."""
