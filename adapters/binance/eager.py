"""Tasks whose first step runs at once, in the caller: what Python 3.12's eager task
factory does, for the one place that needs it on 3.11 (an order's request).

`start_now(coro)` makes the task, then runs the coroutine's first step right away,
as that task (`asyncio.current_task()` is the new task meanwhile, and the step runs
in the task's own copy of the context), and leaves the rest to the task. So an
order's request reaches the HTTP transport inside the bus handler that decided to
send it, instead of one event-loop turn later, behind everything else the loop
has queued (the market stream's next read, its timeouts, other tasks).

What a task guarantees still holds: its outcome is the coroutine's (a result, an
exception, a cancellation, raised by the task, never by `start_now`), `cancel()`
reaches the coroutine where it waits, and a timeout or a cancel-scope the
coroutine sets up in its first step (aiohttp's request timer, `asyncio.timeout`)
belongs to the new task, not the caller's.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from asyncio.tasks import _enter_task, _leave_task  # what asyncio's own tasks use
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

__all__ = ["start_now", "step_then_task"]

T = TypeVar("T")

_YIELDED, _RETURNED, _RAISED = 0, 1, 2


def start_now(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """A task running `coro`, whose first step has already run (see the module doc).
    Call it from the event loop's thread, with the loop running."""
    loop = asyncio.get_running_loop()
    first: list[Any] = [_RETURNED, None]
    resume = _resume(coro, first)
    resume.send(None)  # to its first yield: the task's first step picks it up there
    context = contextvars.copy_context()
    task: asyncio.Task[T] = _task(loop, resume, name, context)
    _first_step(loop, coro, context, first, task)
    return task


def step_then_task(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """`start_now` for a first step that binds nothing to its task: the step runs
    here before the task exists, and the task is made after it, to carry on from
    where the step stopped. What an order's request costs before it is on the wire
    is then the step alone, not the task's set-up too.

    During the step `asyncio.current_task()` is None (the caller's task is set
    aside, as `start_now` sets it aside), so a step that does bind something to its
    task (`asyncio.timeout`, aiohttp's request timer) fails at once with their
    RuntimeError, raised by the task, instead of binding it to the caller's task.
    The step runs in the task's own copy of the context. Call it from the event
    loop's thread, with the loop running."""
    loop = asyncio.get_running_loop()
    first: list[Any] = [_RETURNED, None]
    context = contextvars.copy_context()
    _first_step(loop, coro, context, first, None)
    resume = _resume(coro, first)
    resume.send(None)
    return _task(loop, resume, name, context)


def _task(loop: asyncio.AbstractEventLoop, resume: Generator[Any, Any, Any], name: str | None,
          context: contextvars.Context) -> asyncio.Task[Any]:
    if loop.get_task_factory() is None:
        # what loop.create_task does then, without its Python frame and checks
        # (Task() refuses a closed loop too, through call_soon)
        return asyncio.Task(resume, loop=loop, name=name, context=context)  # type: ignore[arg-type]
    return loop.create_task(resume, name=name, context=context)  # type: ignore[arg-type]


def _first_step(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                context: contextvars.Context, first: list[Any],
                task: asyncio.Task[Any] | None) -> None:
    """`coro`'s first step, in `context`, as `task` (None: as no task), the caller's
    task set aside meanwhile; what it yielded, returned or raised goes into `first`."""
    caller = asyncio.current_task(loop)
    if caller is not None:
        _leave_task(loop, caller)
    if task is not None:
        _enter_task(loop, task)
    try:
        first[1] = context.run(coro.send, None)
        first[0] = _YIELDED
    except StopIteration as stop:
        first[0], first[1] = _RETURNED, stop.value
    except BaseException as exc:  # the task raises it, as it would have
        first[0], first[1] = _RAISED, exc
    finally:
        if task is not None:
            _leave_task(loop, task)
        if caller is not None:
            _enter_task(loop, caller)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], first: list[Any]) -> Generator[Any, Any, Any]:
    """The task's coroutine: hands the task what the first step yielded, then
    passes every later step through to `coro` (what `yield from` does, from a
    coroutine already under way)."""
    thrown: BaseException | None = None
    try:
        yield  # primed by start_now; the task's first step resumes here
    except GeneratorExit:
        coro.close()
        raise
    except BaseException as exc:  # cancelled before its first step
        thrown = exc
    kind, value = first
    first.clear()
    if kind == _RETURNED:
        return value
    if kind == _RAISED:
        raise value
    yielded = value
    if thrown is not None and isinstance(yielded, asyncio.Future):
        yielded.cancel()  # as Task.cancel() cancels the future the task waits on
    while True:
        if thrown is None:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # the task throws a cancellation in
                thrown = exc
        try:
            if thrown is not None:
                error, thrown = thrown, None
                yielded = coro.throw(error)
            else:
                yielded = coro.send(sent)
        except StopIteration as stop:
            return stop.value
