"""Task supervision: what stops the daemon, with which exit code, and how.

`Supervisor` owns the stop request (SIGTERM/SIGINT, a fatal fault, a refused
start), the first fault and its exit code (daemon/errors.py), and the venues'
tasks: each venue runs in the kernel's root task group through `run_venue`,
which turns its failure into a stop (a critical venue: exit 70, so the service
manager restarts us and reconciliation runs; credentials refused: exit 5,
restarting will not help) or a log line (a feed). `wait_ready` holds the
strategies until every venue is ready; `graceful_stop` is the ordered way out:
strategies, then the open orders, then the venues' in-flight requests within
what is left of `daemon.stop_budget_s`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from adapters.venue import Venue
from daemon.config import DaemonConfig
from daemon.errors import EXIT_AUTH, EXIT_CRASH, EXIT_OK, UserError

if TYPE_CHECKING:
    from daemon.node import TradingNode

log = structlog.get_logger("tapeloop.kernel")

READY_POLL_S = 0.05  # how often wait_ready looks again (a start takes seconds)


class FatalError(Exception):
    """The daemon cannot go on safely (e.g. the journal cannot write)."""


class Supervisor:
    """The stop request, the fault that caused it and the exit code; see the module docstring."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.fatal: BaseException | None = None
        self.exit_code = EXIT_OK
        self.refused: UserError | None = None  # a start refused (a strategy could not start)

    def fail(self, error: BaseException, code: int = EXIT_CRASH) -> None:
        """Stop with `error`; the first fault is the one reported (what follows it is
        usually its consequence)."""
        if self.fatal is None:
            self.fatal, self.exit_code = error, code
        self.stop.set()

    def refuse(self, refusal: UserError) -> None:
        """Stop as for SIGTERM, then exit with this one line (`result` raises it)."""
        self.refused = refusal
        self.stop.set()

    def request_stop(self, reason: str = "requested") -> None:
        if not self.stop.is_set():
            log.info("daemon.stopping", reason=reason)
        self.stop.set()

    def result(self) -> int:
        """The exit code once stopped; raises the refusal of a refused start."""
        if self.fatal is not None:
            log.critical("daemon.fatal", error=str(self.fatal), code=self.exit_code)
            return self.exit_code if self.exit_code != EXIT_OK else EXIT_CRASH
        if self.refused is not None:
            raise self.refused
        return EXIT_OK

    async def run_venue(self, venue: Venue) -> None:
        """Run `venue` (a task of the root group); its failure decides what follows."""
        try:
            await venue.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            name = venue.name
            log.error("venue.failed", venue=name, error=str(exc) or repr(exc))
            if venue.credentials_refused(exc):
                self.fail(FatalError(f"venue {name}: credentials refused: {exc}"), EXIT_AUTH)
            elif isinstance(exc, UserError):
                # the venue found a mistake of the user's (an account setting, a
                # config the venue contradicts): its one line, its exit code
                self.fail(FatalError(str(exc)), exc.code)
            elif venue.critical:
                # A live trading venue that cannot run leaves orders unwatched:
                # stop, so the supervisor restarts us and reconciliation runs.
                self.fail(FatalError(f"venue {name} failed: {exc}"))
            # Otherwise (a feed) the daemon goes on without it.

    async def wait_ready(self, venues: Sequence[Venue],
                         status: Callable[[str], object]) -> bool:
        """Wait until every venue is ready (False if a stop came first); `status`
        hears which ones are still awaited. Strategies start only then."""
        waiting = list(venues)
        while not self.stop.is_set():
            waiting = [v for v in waiting if not v.ready]
            if not waiting:
                break
            status("waiting for " + ", ".join(v.name for v in waiting) + " to reconcile")
            try:
                await asyncio.wait_for(self.stop.wait(), READY_POLL_S)
            except TimeoutError:
                pass
        return not self.stop.is_set()


async def graceful_stop(node: TradingNode | None, venues: Sequence[Venue],
                        daemon: DaemonConfig) -> None:
    """Strategies stop first, so what they send on the way out (a market maker's
    cancels) still reaches live venues; then the open orders are kept or
    cancelled (`daemon.on_stop`); venues get what is left of the stop budget."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + daemon.stop_budget_s
    if node is not None:
        node.stop()
        if daemon.on_stop == "cancel":
            for order in node.oms.open_orders():
                node.oms.cancel(order.strategy_id, order.client_order_id,
                                reason="daemon stopping")
        # a simulated venue answers requests on market events; at a stop it answers
        # what waits now (the cancels above), against the last market it saw
        for sim in node.venues:
            sim.answer_pending()
    for venue in venues:
        left = deadline - loop.time()
        if left > 0:
            await venue.drain(left)
