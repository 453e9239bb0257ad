"""A durable commit's wait for the disk, without letting its CPU go idle.

The journal's commit blocks the event loop until its `fdatasync` returns: an order's
intent is on disk before the order is sent. Where that thread sleeps in the kernel
for the disk (a hundred µs or more), its CPU goes idle, and what the order path runs
after the wake-up (the send, the next market event) runs on cold caches: on the
2-core VM this project is measured on, `bench.tick_to_order_stages` with
`fsync = "critical"` showed every stage of the path taking 2-4x its CPU time of the
non-durable path. (A virtual CPU that idles is halted and the host runs something
else on the core; an idle bare-metal core drops to a deeper C-state: both cost.)

`DiskSync` runs the `fdatasync` on a thread of its own, and the committing thread
waits for it spinning: `os.sched_yield()` in a loop, which releases the GIL at every
turn (the syncing thread needs it to report back) and keeps the CPU busy. After
`spin_ns` of spinning (a disk that stalls) it blocks instead, so a stall costs no
more CPU than that. The commit's meaning is unchanged: the call returns once the
data is durable, or raises what `fdatasync` raised.

It is `JournalPolicy(sync_wait="spin")`, not the default: on this VM it took ~100 µs
off the durable tick-to-order p50 while other processes loaded the machine, and
nothing measurable when it was quiet, where handing the sync to another thread (a
wake-up, the GIL handed over twice) costs about what the warm caches save.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from sys import getswitchinterval, setswitchinterval

__all__ = ["SPIN_NS", "DiskSync"]

# Longest spin before blocking: well past this disk's p99.9 fdatasync (~1 ms); a
# longer wait is a stall, and then CPU time matters more than the wake-up.
SPIN_NS = 2_000_000

# The switch interval while a sync is under way: how long the syncing thread may
# wait for the GIL this thread holds between its turns of the loop.
HANDOFF_S = 5e-6

_yield: Callable[[], object] = getattr(os, "sched_yield", lambda: time.sleep(0))


class DiskSync:
    """`sync(fd)`: `datasync(fd)` on this object's thread (started on first use),
    waited for by the caller as the module doc says. One caller at a time (the
    journal's owner thread). `close()` stops the thread; a later call starts a new
    one."""

    __slots__ = ("_datasync", "_spin_ns", "_go", "_done", "_fd", "_error", "_owed",
                 "_thread")

    def __init__(self, datasync: Callable[[int], None], *, spin_ns: int = SPIN_NS) -> None:
        self._datasync = datasync
        self._spin_ns = spin_ns
        # two locks used as signals (a Lock may be released by another thread):
        # `_go` held until a job is given, `_done` held until it has finished
        self._go = threading.Lock()
        self._done = threading.Lock()
        self._fd = -1
        self._error: BaseException | None = None
        self._owed = False  # a job whose end the caller has not collected
        self._thread: threading.Thread | None = None

    def __call__(self, fd: int) -> None:
        if self._thread is None:
            self._start()
        elif self._owed:  # a wait interrupted (KeyboardInterrupt): its job ends first
            self._done.acquire()
            self._owed = False
        self._fd = fd
        self._error = None
        self._owed = True
        # The syncing thread needs the GIL twice (to start, to report back), and a
        # thread waiting for it gets it only after a switch interval (5 ms by
        # default) when the holder keeps taking it back, as this loop does.
        interval = getswitchinterval()
        setswitchinterval(HANDOFF_S)
        try:
            self._go.release()
            done = self._done
            if not done.acquire(False):
                clock = time.perf_counter_ns
                deadline = clock() + self._spin_ns
                while not done.acquire(False):
                    if clock() > deadline:
                        done.acquire()
                        break
                    _yield()
        finally:
            setswitchinterval(interval)
        self._owed = False
        error = self._error
        if error is not None:
            self._error = None
            raise error

    def _start(self) -> None:
        self._go.acquire(False)
        self._done.acquire(False)
        thread = threading.Thread(target=self._run, name="tapeloop-journal-sync", daemon=True)
        thread.start()
        self._thread = thread

    def _run(self) -> None:
        go, done, datasync = self._go, self._done, self._datasync
        while True:
            go.acquire()
            fd = self._fd
            if fd < 0:
                return
            try:
                datasync(fd)
            except BaseException as exc:  # the caller raises it, as a direct call would
                self._error = exc
            done.release()

    def close(self) -> None:
        """Stop the thread (after a job still running)."""
        thread = self._thread
        if thread is None:
            return
        if self._owed:
            self._done.acquire()
            self._owed = False
        self._fd = -1
        self._go.release()
        thread.join()
        self._thread = None
