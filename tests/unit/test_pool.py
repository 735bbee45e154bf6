"""The server's worker pool and `run_in`: what shutdown and per-call contexts rely on.

`wait_drained` is what a graceful shutdown waits on, `take_queued` and `cancel_running`
what kill uses to answer every call it holds; `run_in` runs each call in its own context
on a worker that outlives it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable
from typing import TypeVar

import pytest

import busrpc
from busrpc.bus.memory import MemoryBus
from busrpc.rpc import _pool
from busrpc.rpc._pool import WorkerPool

T = TypeVar("T")

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def step(n: int = 1) -> None:
    """Let the loop run *n* iterations, without sleeping."""
    loop = asyncio.get_running_loop()
    for _ in range(n):
        fut: asyncio.Future[None] = loop.create_future()
        loop.call_soon(fut.set_result, None)
        await fut


class Recorder:
    """A pool handler: records each item; items in `hang` wait for `release`."""

    def __init__(self, *, hang: set[str] | None = None) -> None:
        self.hang = hang or set()
        self.release = asyncio.Event()
        self.started: list[str] = []
        self.handled: list[str] = []
        self.cancelled: list[str] = []
        self.seen: list[str] = []  # `var` as each item saw it

    async def __call__(self, item: str) -> None:
        self.started.append(item)
        self.seen.append(var.get())
        var.set(f"leaked by {item}")
        try:
            if item in self.hang:
                await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(item)
            raise
        self.handled.append(item)


@busrpc.service("pool_echo")
class Echo:
    @busrpc.rpc
    async def echo(self, text: str) -> str:
        return text


# -- WorkerPool ---------------------------------------------------------------------------


async def test_wait_drained_waits_for_an_item_handed_to_a_worker_not_yet_awake() -> None:
    handler = Recorder()
    pool: WorkerPool[str] = WorkerPool(handler, 1, 1)
    async with asyncio.timeout(5):
        assert pool.submit_nowait("a")
        await pool.wait_drained()
        assert handler.handled == ["a"]  # the worker is idle now, waiting for work
        assert pool.submit_nowait("b")  # resolved into the idle worker's future
        await pool.wait_drained()  # ...which has not woken up yet
        assert handler.handled == ["a", "b"]
        await pool.cancel_running()


@pytest.mark.parametrize("rounds", [50])
async def test_wait_drained_under_many_hand_offs(rounds: int) -> None:
    handler = Recorder()
    pool: WorkerPool[str] = WorkerPool(handler, 4, 4)
    async with asyncio.timeout(5):
        for r in range(rounds):
            items = [f"{r}.{i}" for i in range(r % 9)]
            assert all(pool.submit_nowait(item) for item in items)
            await pool.wait_drained()
            assert set(items) <= set(handler.handled), r
        await pool.cancel_running()


async def test_cancel_running_ends_wait_drained() -> None:
    handler = Recorder(hang={"stuck"})
    pool: WorkerPool[str] = WorkerPool(handler, 1, 1)
    async with asyncio.timeout(5):  # a hang guard, not a timing
        assert pool.submit_nowait("stuck")
        drained = asyncio.create_task(pool.wait_drained())
        await step(3)
        assert not drained.done() and handler.started == ["stuck"]
        await pool.cancel_running()
        await drained
    assert handler.cancelled == ["stuck"]


async def test_cancel_running_while_a_worker_waits_for_work_ends_it() -> None:
    handler = Recorder()
    pool: WorkerPool[str] = WorkerPool(handler, 2, 2)
    async with asyncio.timeout(5):
        assert pool.submit_nowait("a") and pool.submit_nowait("b")
        await pool.wait_drained()
        await pool.cancel_running()  # both idle: they exit
        assert not pool.submit_nowait("late")  # stopped: refuses
    assert sorted(handler.handled) == ["a", "b"]


async def test_every_item_is_handled_or_taken_back_when_the_pool_is_cancelled() -> None:
    # Kill answers what `take_queued` returns and what its handlers see cancelled; an
    # item it hands to an idle worker that has not woken yet must be one or the other,
    # or its call is never answered.
    handler = Recorder()
    pool: WorkerPool[str] = WorkerPool(handler, 3, 3)
    async with asyncio.timeout(5):
        for i in range(3):
            assert pool.submit_nowait(f"w{i}")
        await pool.wait_drained()  # three idle workers now
        for i in range(3):
            assert pool.submit_nowait(f"x{i}")  # handed to the idle workers: not awake yet
        taken = pool.take_queued()
        await pool.cancel_running()
    accounted = set(taken) | set(handler.started)
    assert accounted >= {"x0", "x1", "x2"}, (taken, handler.started)


async def test_workers_never_run_in_the_submitters_context() -> None:
    handler = Recorder()
    token = var.set("the pool's")
    try:
        pool: WorkerPool[str] = WorkerPool(handler, 1, 4)
    finally:
        var.reset(token)

    async def submitter(item: str) -> None:
        var.set(f"submitter of {item}")
        assert pool.submit_nowait(item)

    async with asyncio.timeout(5):
        await asyncio.create_task(submitter("a"))
        await pool.wait_drained()
        await asyncio.create_task(submitter("b"))
        await pool.wait_drained()
        await pool.cancel_running()
    # The worker starts in a copy of the pool's context. (Isolating one item from the
    # next is the handler's job, with run_in: here "b" sees what "a" left.)
    assert handler.seen[0] == "the pool's"
    assert "submitter" not in " ".join(handler.seen)


async def test_server_kill_answers_requests_handed_to_workers_not_yet_awake() -> None:
    # On the memory bus a request is handed to an idle worker inside the caller's
    # publish; a kill scheduled right behind the callers runs before those workers wake.
    async with MemoryBus("pool-kill") as server_bus, MemoryBus("pool-kill") as bus:
        server = busrpc.Server(server_bus, Echo())
        client = busrpc.client(Echo, bus)
        async with server, asyncio.timeout(5):  # a hang guard, not a timing
            await asyncio.gather(*(client.echo(f"w{i}", timeout=30) for i in range(8)))
            calls = [asyncio.create_task(client.echo(str(i), timeout=30)) for i in range(8)]
            kill = asyncio.create_task(server.kill())
            results = await asyncio.gather(*calls, return_exceptions=True)
            await kill
    for i, result in enumerate(results):
        assert result == str(i) or isinstance(result, busrpc.Unavailable), result


# -- run_in -------------------------------------------------------------------------------


async def run(context: contextvars.Context, awaitable: Awaitable[T]) -> T:
    return await _pool.run_in(context, awaitable)


async def test_run_in_returns_the_value() -> None:
    async def at_once() -> int:
        return 42

    async def after_a_step() -> int:
        await step()
        return 43

    ctx = contextvars.copy_context()
    assert await run(ctx, at_once()) == 42
    assert await run(ctx, after_a_step()) == 43


async def test_run_in_raises_the_exception() -> None:
    async def at_once() -> None:
        raise ValueError("now")

    async def after_a_step() -> None:
        await step()
        raise KeyError("later")

    ctx = contextvars.copy_context()
    with pytest.raises(ValueError, match="now"):
        await run(ctx, at_once())
    with pytest.raises(KeyError, match="later"):
        await run(ctx, after_a_step())


async def test_cancelling_the_awaiting_task_cancels_the_coroutine() -> None:
    entered = asyncio.Event()
    seen: list[str] = []

    async def forever() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    task = asyncio.create_task(run(contextvars.copy_context(), forever()))
    async with asyncio.timeout(5):
        await entered.wait()
        task.cancel("stop")
        await asyncio.wait([task])
    assert task.cancelled()
    assert seen == ["cancelled", "finally"]


async def test_a_coroutine_may_answer_its_cancellation_with_a_value() -> None:
    entered = asyncio.Event()

    async def answers() -> str:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "cleaned up"
        return "never"

    async def awaiting() -> str:
        result = await run(contextvars.copy_context(), answers())
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 1  # still the task's to handle
        task.uncancel()
        return result

    task = asyncio.create_task(awaiting())
    async with asyncio.timeout(5):
        await entered.wait()
        task.cancel()
        assert await task == "cleaned up"


async def test_closing_the_awaiting_coroutine_closes_the_inner_one() -> None:
    closed: list[str] = []

    async def inner() -> None:
        try:
            await step()
            await step()
        finally:
            closed.append("inner")

    outer = run(contextvars.copy_context(), inner())
    outer.send(None)  # runs to inner's first suspension
    outer.close()
    assert closed == ["inner"]


async def test_vars_set_inside_run_in_stay_inside() -> None:
    ctx = contextvars.copy_context()
    ctx.run(var.set, "the call's")
    seen: list[str] = []

    async def handler() -> None:
        seen.append(var.get())
        var.set("set by the handler")
        await step()
        seen.append(var.get())  # every step runs in the call's context
        await step()
        seen.append(var.get())

    token = var.set("the worker's")
    try:
        await run(ctx, handler())
        assert var.get() == "the worker's"
    finally:
        var.reset(token)
    assert seen == ["the call's", "set by the handler", "set by the handler"]
    assert ctx[var] == "set by the handler"


async def test_each_run_in_context_is_separate_on_one_awaiting_task() -> None:
    base = contextvars.copy_context()
    seen: list[str] = []

    async def handler(name: str) -> None:
        seen.append(var.get())
        var.set(name)
        await step()

    for name in ("a", "b", "c"):
        await run(base.copy(), handler(name))
    assert seen == ["unset", "unset", "unset"]
    assert var.get() == "unset"
