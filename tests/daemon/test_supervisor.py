"""daemon.supervisor and the kernel's venue views: what a venue's failure means
(exit 70, exit 5, or the daemon goes on), waiting for ready venues, the drain
within the stop budget, and what the control API shows before venues exist."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from adapters.venue import AlertHook, Venue, VenueState
from daemon.config import Config, DaemonConfig, load_config
from daemon.errors import EXIT_AUTH, EXIT_CRASH, EXIT_OK
from daemon.kernel import Kernel
from daemon.metrics import UP_STATES
from daemon.supervisor import Supervisor, graceful_stop
from events.bus import Bus
from tests.conftest import until
from tests.daemon.test_config import VALID


class AuthRefused(Exception):
    """What ScriptedVenue's exchange says to a bad key."""


class ScriptedVenue:
    """A `Venue` whose run fails (or not) as a test says: the supervisor's view of
    a venue is the protocol only, so this stands for any kind."""

    def __init__(self, name: str, *, critical: bool, error: Exception | None = None,
                 ready: bool = True) -> None:
        self.name = name
        self.critical = critical
        self.alert: AlertHook | None = None
        self.ready = ready
        self.error = error
        self.drained: list[float] = []

    def subscribe(self, bus: Bus) -> None:
        pass

    async def run(self) -> None:
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        await asyncio.get_running_loop().create_future()

    async def drain(self, timeout_s: float) -> None:
        self.drained.append(timeout_s)

    def status(self) -> VenueState:
        return VenueState(status="connected")

    def credentials_refused(self, error: BaseException) -> bool:
        return isinstance(error, AuthRefused)


def test_the_scripted_venue_is_a_venue() -> None:
    assert isinstance(ScriptedVenue("x", critical=True), Venue)


@pytest.mark.parametrize(("critical", "error", "code", "stops"), [
    (True, RuntimeError("socket gone"), EXIT_CRASH, True),
    (True, AuthRefused("bad key"), EXIT_AUTH, True),
    (False, AuthRefused("bad key"), EXIT_AUTH, True),  # a record-only key refused too
    (False, RuntimeError("feed gone"), EXIT_OK, False),  # a feed: the daemon goes on
], ids=["critical", "auth", "auth-feed", "feed"])
async def test_a_venue_failure_decides_the_exit(critical: bool, error: Exception, code: int,
                                                stops: bool) -> None:
    supervisor = Supervisor()
    venue = ScriptedVenue("v", critical=critical, error=error)
    await supervisor.run_venue(venue)  # returns: the failure is handled, not raised
    assert supervisor.stop.is_set() is stops
    assert supervisor.result() == code
    if stops:
        assert "v" in str(supervisor.fatal) and str(error) in str(supervisor.fatal)


async def test_the_first_fault_is_the_one_reported() -> None:
    supervisor = Supervisor()
    await supervisor.run_venue(ScriptedVenue("a", critical=False, error=AuthRefused("key")))
    await supervisor.run_venue(ScriptedVenue("b", critical=True, error=RuntimeError("x")))
    assert supervisor.result() == EXIT_AUTH and "a" in str(supervisor.fatal)


async def test_strategies_wait_until_every_venue_is_ready() -> None:
    supervisor = Supervisor()
    slow = ScriptedVenue("slow", critical=True, ready=False)
    said: list[str] = []
    waiting = asyncio.get_running_loop().create_task(
        supervisor.wait_ready([ScriptedVenue("quick", critical=False), slow], said.append))
    await until(lambda: said, message="a status line")
    assert not waiting.done() and said[-1] == "waiting for slow to reconcile"
    slow.ready = True
    assert await waiting is True


async def test_a_stop_ends_the_wait_for_ready_venues() -> None:
    supervisor = Supervisor()
    waiting = asyncio.get_running_loop().create_task(
        supervisor.wait_ready([ScriptedVenue("never", critical=True, ready=False)],
                              lambda _: None))
    supervisor.request_stop("test")
    assert await waiting is False


async def test_venues_drain_within_the_stop_budget() -> None:
    venues = [ScriptedVenue("a", critical=True), ScriptedVenue("b", critical=False)]
    await graceful_stop(None, venues, msgspec.convert({"stop_budget_s": 3.0}, DaemonConfig))
    assert all(len(v.drained) == 1 and 0 < v.drained[0] <= 3.0 for v in venues)


def test_a_venue_not_built_yet_shows_starting_not_up(tmp_path: Path) -> None:
    # While the state is recovered the control API already answers; a live venue
    # not connected yet showed "simulated", which /metrics counted as up.
    path = tmp_path / "live.toml"
    path.write_text(VALID.replace('kind = "sim"', 'kind = "binance"\ntrade = false'))
    config: Config = load_config(path, data_dir=tmp_path / "data")
    states = Kernel(config, str(path)).venue_states()
    assert set(states) == {"sim"}
    assert states["sim"]["status"] == "starting" and states["sim"]["status"] not in UP_STATES
