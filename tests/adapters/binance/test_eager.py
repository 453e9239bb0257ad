"""`start_now` and `step_then_task`: a task whose first step runs in the caller keeps
every promise of a task (outcome, cancellation, current task, context), on asyncio's
loop and uvloop's. `step_then_task` makes the task after the step, with no current
task during it: what binds itself to a task there fails, never binds to the caller."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from adapters.binance.eager import start_now, step_then_task

uvloop = pytest.importorskip("uvloop")

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    factory = LOOPS[request.param]

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)

    return run


STARTERS = {"start_now": start_now, "step_then_task": step_then_task}


@pytest.fixture(params=sorted(STARTERS))
def starter(request: pytest.FixtureRequest) -> Callable[..., asyncio.Task[Any]]:
    return STARTERS[request.param]


def test_the_first_step_runs_before_the_call_returns_then_the_rest_as_a_task(run, starter) -> None:
    async def main() -> None:
        steps: list[str] = []
        gate = asyncio.get_running_loop().create_future()

        async def work() -> str:
            steps.append("first")
            got = await gate
            steps.append(f"then {got}")
            return "done"

        task = starter(work())
        assert steps == ["first"]  # before any loop turn
        gate.set_result(7)
        assert await task == "done"
        assert steps == ["first", "then 7"]

    run(main())


def test_a_coroutine_that_never_waits_ends_its_task_with_its_result(run, starter) -> None:
    async def main() -> None:
        async def work() -> int:
            return 42

        task = starter(work())
        assert await task == 42

    run(main())


def test_an_exception_of_the_first_step_is_the_tasks_not_the_callers(run, starter) -> None:
    async def main() -> None:
        async def work() -> None:
            raise ValueError("boom")

        task = starter(work())  # does not raise here
        with pytest.raises(ValueError, match="boom"):
            await task

    run(main())


def test_the_first_step_runs_as_the_new_task_and_the_caller_is_current_again_after(
        run, starter) -> None:
    """`start_now`'s first step runs as the task; `step_then_task`'s as no task (the
    task is made after it). Later steps are the task's, and the caller is current
    again once either returns."""
    async def main() -> None:
        seen: list[Any] = []
        caller = asyncio.current_task()

        async def work() -> None:
            seen.append(asyncio.current_task())
            await asyncio.sleep(0)
            seen.append(asyncio.current_task())

        task = starter(work())
        assert asyncio.current_task() is caller
        await task
        assert seen == [task if starter is start_now else None, task]

    run(main())


def test_a_timeout_set_in_the_first_step_cancels_the_new_task_never_the_caller(run) -> None:
    async def main() -> str:
        async def work() -> None:
            async with asyncio.timeout(0.01):  # binds to the current task, as aiohttp's timer
                await asyncio.get_running_loop().create_future()

        task = start_now(work())
        await asyncio.sleep(0.05)  # the timeout fires meanwhile: not on the caller
        with pytest.raises(TimeoutError):
            await task
        return "caller alive"

    assert run(main()) == "caller alive"


@pytest.mark.parametrize("when", ["before its first loop step", "while it waits"])
def test_cancel_reaches_the_coroutine_where_it_waits(run, starter, when: str) -> None:
    async def main() -> None:
        events: list[str] = []
        waiting = asyncio.get_running_loop().create_future()

        async def work() -> None:
            try:
                await waiting
            except asyncio.CancelledError:
                events.append("cancelled at its await")
                raise
            finally:
                events.append("cleaned up")

        task = starter(work())
        if when == "while it waits":
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert events == ["cancelled at its await", "cleaned up"]
        assert waiting.cancelled()  # the future it waited on, as Task.cancel() does

    run(main())


def test_the_first_step_runs_in_the_tasks_own_context(run, starter) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="caller")

    async def main() -> None:
        async def work() -> str:
            var.set("task")
            await asyncio.sleep(0)
            return var.get()

        task = starter(work())
        assert var.get() == "caller"
        assert await task == "task"

    run(main())


def test_values_and_exceptions_of_later_steps_pass_through(run, starter) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = loop.create_future(), loop.create_future()

        async def work() -> tuple[int, str]:
            x = await a
            try:
                await b
            except KeyError as exc:
                return x, str(exc)
            return x, "no error"

        task = starter(work())
        a.set_result(1)
        await asyncio.sleep(0)
        b.set_exception(KeyError("k"))
        assert await task == (1, "'k'")

    run(main())


def test_a_timeout_in_step_then_tasks_first_step_fails_the_task_never_the_caller(run) -> None:
    async def main() -> str:
        async def work() -> None:
            async with asyncio.timeout(0.01):  # binds to the current task: there is none
                await asyncio.get_running_loop().create_future()

        task = step_then_task(work())
        await asyncio.sleep(0.05)  # a timeout bound to the caller would cancel it here
        with pytest.raises(RuntimeError, match="inside a task"):
            await task
        return "caller alive"

    assert run(main()) == "caller alive"
