"""`Watched`: what a stream client published, and a way to wait on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from events.base import Event
from events.system import VenueStatus

DEADLINE = 5.0


class Watched:
    """A list plus an event re-armed on every change, to wait on conditions."""

    def __init__(self) -> None:
        self.items: list = []
        self._changed = asyncio.Event()

    def __call__(self, item: object) -> None:
        self.items.append(item)
        self._changed.set()

    def poke(self) -> None:
        self._changed.set()

    async def wait(self, predicate: Callable[[], object], timeout: float = DEADLINE) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def statuses(self) -> list[tuple[str, str]]:
        return [(e.status, e.reason) for e in self.items if isinstance(e, VenueStatus)]

    def market(self) -> list[Event]:
        return [e for e in self.items if not isinstance(e, VenueStatus)]


class TimerCount:
    """How many timers the running loop armed (`loop.call_at`, which `call_later`
    and asyncio's timeouts go through) while `counting()` was open."""

    def __init__(self) -> None:
        self.armed = 0

    @contextmanager
    def counting(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        call_at = loop.call_at

        def counted(when: float, callback: Callable[..., object], *args: object,
                    **kwargs: object) -> asyncio.TimerHandle:
            self.armed += 1
            return call_at(when, callback, *args, **kwargs)

        loop.call_at = counted  # type: ignore[method-assign]
        try:
            yield
        finally:
            del loop.call_at  # type: ignore[method-assign]
