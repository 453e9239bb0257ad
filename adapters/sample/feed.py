"""Play a raw Binance recording into the bus in real time (× speed), looping.

The recording is parsed once into memory (the bundled sample is ~30 k
messages). Each pass shifts every timestamp so the feed looks live: the first
message of the first pass is stamped "now", and each further pass continues
where the previous one ended, so `ts_event` never goes backwards. `ts_recv` is
the real local receive time. Trade ids get a `-<pass>` suffix after the first
pass so they stay unique. A USD-M recording's funding times (`FundingRate.
funding_ts`, `MarkPrice.next_funding_ts`) shift with the timestamps, so funding
falls due as it did in the recording.

As the kernel runs it (the `adapters.venue.Venue` port) it is a feed: nothing to
subscribe, reconcile or drain; the orders on a sample venue go to the node's
simulated account of the same name, fed by what this plays.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import structlog

from adapters.binance.stream import read_recording
from adapters.venue import AlertHook, VenueState
from events.base import Event
from events.bus import Bus
from events.market import Trade
from events.perp import FundingRate, MarkPrice
from events.system import CONNECTED, DISCONNECTED, VenueStatus

log = structlog.get_logger("tapeloop.sample")

YIELD_EVERY = 512  # at speed max, let the loop breathe this often


class SampleFeed:
    """A recording played as a live market-data feed; see the module docstring."""

    critical = False  # a feed: the daemon goes on without it
    ready = True  # nothing to reconcile

    def __init__(self, *, venue: str, path: Path, symbol: str, speed: float | None,
                 loop: bool, publish: Callable[[Event], object],
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        """`speed=None` means as fast as possible."""
        self.name = self.venue = venue
        self.alert: AlertHook | None = None
        self.path = Path(path)
        self.speed = speed
        self.loop = loop
        self.publish = publish
        self.now_ns = now_ns
        recording = [ev for _, ev in read_recording(self.path, venue, symbol)]
        if not recording:
            raise ValueError(f"{self.path}: no market events in the recording")
        recording.sort(key=lambda e: e.ts_recv)  # play in the recorder's receive order
        self.events = recording
        self.first_recv = recording[0].ts_recv
        self.span_ns = recording[-1].ts_recv - self.first_recv + 1_000_000
        self.published = 0
        self.passes = 0
        self._status = "connecting"

    def subscribe(self, bus: Bus) -> None:
        """Nothing: it publishes market data and handles no request."""

    async def drain(self, timeout_s: float) -> None:
        """Nothing in flight."""

    def status(self) -> VenueState:
        """The last VenueStatus it published ("connecting" before it runs)."""
        return VenueState(status=self._status)

    def credentials_refused(self, error: BaseException) -> bool:
        return False

    async def run(self) -> None:
        """Publish until cancelled (or the end of the recording, without `loop`)."""
        self._status = CONNECTED
        self.publish(VenueStatus(ts_event=self.now_ns(), ts_recv=self.now_ns(),
                                 venue=self.venue, status=CONNECTED, reason="sample feed"))
        log.info("sample.started", venue=self.venue, file=str(self.path),
                 messages=len(self.events), speed=self.speed or "max")
        try:
            loop = asyncio.get_running_loop()
            start_wall_ns = self.now_ns()
            start_mono = loop.time()
            while True:
                offset = start_wall_ns - self.first_recv + self.passes * self.span_ns
                await self._play_pass(offset, start_mono, loop)
                self.passes += 1
                if not self.loop:
                    break
        finally:
            # on cancellation too: the venue is gone either way
            now = self.now_ns()
            self._status = DISCONNECTED
            self.publish(VenueStatus(ts_event=now, ts_recv=now, venue=self.venue,
                                     status=DISCONNECTED, reason="sample feed stopped"))

    async def _play_pass(self, offset: int, start_mono: float,
                         loop: asyncio.AbstractEventLoop) -> None:
        replace = msgspec.structs.replace
        suffix = f"-{self.passes}" if self.passes else ""
        speed = self.speed
        pass_base = self.passes * self.span_ns
        n = 0
        for ev in self.events:
            if speed is not None:
                # Target time is computed from the start, never accumulated: no drift.
                due = start_mono + (ev.ts_recv - self.first_recv + pass_base) / 1e9 / speed
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            n += 1
            now = self.now_ns()
            if suffix and type(ev) is Trade:
                out = replace(ev, ts_event=ev.ts_event + offset, ts_recv=now,
                              trade_id=ev.trade_id + suffix)
            elif type(ev) is MarkPrice and ev.next_funding_ts:
                out = replace(ev, ts_event=ev.ts_event + offset, ts_recv=now,
                              next_funding_ts=ev.next_funding_ts + offset)
            elif type(ev) is FundingRate:
                out = replace(ev, ts_event=ev.ts_event + offset, ts_recv=now,
                              funding_ts=ev.funding_ts + offset)
            else:
                out = replace(ev, ts_event=ev.ts_event + offset, ts_recv=now)
            self.publish(out)
            self.published += 1
