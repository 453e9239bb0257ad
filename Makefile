# tapeloop: `make run` and `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= configs/paper.toml

.PHONY: run test soak bench lint clean native

# uv installs the same pinned ranges as pip in ~40 s, where pip takes ~2 minutes of a
# fresh clone's make test; pip does it if uv cannot be had or fails. Compiled to bytecode
# as pip does: under PYTHONDONTWRITEBYTECODE every process would otherwise compile
# numpy, pyarrow, aiohttp... at each start (a fresh clone's tests: 13:14 against 10:41).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	{ $(BIN)/python -m pip install --quiet 'uv>=0.9,<1' && \
	  $(BIN)/python -m uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[test,dev]'; } || \
	{ $(BIN)/python -m pip install --quiet --upgrade pip && \
	  $(BIN)/python -m pip install --quiet -e '.[test,dev]'; }
	touch $(STAMP)

# The order path's synchronous modules compiled with mypyc (events/native.py), from a
# snapshot of the source into build/native: served only while the source is unchanged
# since (anything edited runs as source until this rebuilds it); TAPELOOP_NATIVE=0
# runs the source regardless. Nothing to do when the build is current.
# Then the project's bytecode, as a wheel install has it: under PYTHONDONTWRITEBYTECODE
# (set on CI and on these VMs) every process would otherwise compile every module it
# imports at each start (each test worker, daemon and command: ~75 s of make test on a
# fresh clone). Incremental: ~0.4 s when nothing changed.
native: $(STAMP)
	$(BIN)/python -m events.native_build
	$(BIN)/python -m compileall -q -j 0 daemon events adapters replay bench tests

run: native
	$(BIN)/tapeloop run --config $(CONFIG)

# on every core (pytest-xdist): each test is independent of the others' order and files
TEST_WORKERS ?= auto
test: native
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --durations=15 $(PYTEST_ARGS)

# the long runs: 100,000 seeds of the deterministic simulation (tests/dst), seeds apart
# from make test's; a failure prints the command that replays it. Then ten minutes of
# market making through faults against the fake Binance, and the fuzz tests
# (tests/fuzz) on SOAK_FUZZ_SCALE times make test's examples from a fresh seed, printed
# at the end with the command that replays the run.
SOAK_SEEDS ?= 100000
SOAK_FUZZ_SCALE ?= 50
SOAK_FUZZ_SEED ?= random
soak: native
	$(BIN)/python -m tests.dst --seeds $(SOAK_SEEDS) --first 1000000
	TAPELOOP_SOAK_S=600 $(BIN)/python -m pytest -q -p no:cacheprovider tests/adapters/binance/test_soak.py
	TAPELOOP_SOAK_S=600 $(BIN)/python -m pytest -q -p no:cacheprovider tests/adapters/binance_usdm/test_soak.py
	TAPELOOP_DST_BINANCE_SEEDS=30 $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=1800 \
		tests/dst/test_binance_world.py
	TAPELOOP_FUZZ_SEED=$(SOAK_FUZZ_SEED) TAPELOOP_FUZZ_SCALE=$(SOAK_FUZZ_SCALE) \
		$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=7200 tests/fuzz
	TAPELOOP_EXAMPLES_SCALE=10 TAPELOOP_HYPOTHESIS=explore $(BIN)/python -m pytest -q \
		-p no:cacheprovider --timeout=7200 -n $(TEST_WORKERS) \
		$$(grep -rl "max_examples=examples(" tests --include="test_*.py")

# The benches time whole processes, with the project's bytecode compiled (make native).
bench: native
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check daemon events adapters replay tests bench
	$(BIN)/mypy events replay

clean:
	rm -rf $(VENV) build *.egg-info
