"""The server's worker pool and `run_in`: what shutdown and per-call contexts rely on.

`wait_drained` is what a graceful shutdown waits on, `take_queued` and `cancel_running`
what kill uses to answer every call it holds; `run_in` runs each call in its own context
on a worker that outlives it.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import TypeAlias, TypeVar

import pytest

import busrpc
from busrpc.bus.memory import MemoryBus
from busrpc.rpc._pool import EagerPool, WorkerPool

T = TypeVar("T")

# The pool the server uses on this Python, and the other one where it can run: both keep
# the same contract (EagerPool needs eager tasks, Python 3.12+).
POOLS: list[type[WorkerPool[str]] | type[EagerPool[str]]] = [WorkerPool]
if sys.version_info >= (3, 12):
    POOLS.append(EagerPool)
Pool: TypeAlias = type[WorkerPool[str]] | type[EagerPool[str]]

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


# -- both pools ---------------------------------------------------------------------------


@pytest.fixture(params=POOLS, ids=lambda cls: cls.__name__)
def pool_cls(request: pytest.FixtureRequest) -> Pool:
    cls: Pool = request.param
    return cls


async def test_wait_drained_waits_for_an_item_handed_to_a_worker_not_yet_awake(
    pool_cls: Pool,
) -> None:
    handler = Recorder()
    pool = pool_cls(handler, 1, 1)
    async with asyncio.timeout(5):
        assert pool.submit_nowait("a")
        await pool.wait_drained()
        assert handler.handled == ["a"]  # the worker is idle now, waiting for work
        assert pool.submit_nowait("b")  # resolved into the idle worker's future
        await pool.wait_drained()  # ...which has not woken up yet
        assert handler.handled == ["a", "b"]
        await pool.cancel_running()


@pytest.mark.parametrize("rounds", [50])
async def test_wait_drained_under_many_hand_offs(pool_cls: Pool, rounds: int) -> None:
    handler = Recorder()
    pool = pool_cls(handler, 4, 4)
    async with asyncio.timeout(5):
        for r in range(rounds):
            items = [f"{r}.{i}" for i in range(r % 9)]
            assert all(pool.submit_nowait(item) for item in items)
            await pool.wait_drained()
            assert set(items) <= set(handler.handled), r
        await pool.cancel_running()


async def test_cancel_running_ends_wait_drained(pool_cls: Pool) -> None:
    handler = Recorder(hang={"stuck"})
    pool = pool_cls(handler, 1, 1)
    async with asyncio.timeout(5):  # a hang guard, not a timing
        assert pool.submit_nowait("stuck")
        drained = asyncio.create_task(pool.wait_drained())
        await step(3)
        assert not drained.done() and handler.started == ["stuck"]
        await pool.cancel_running()
        await drained
    assert handler.cancelled == ["stuck"]


async def test_cancel_running_while_a_worker_waits_for_work_ends_it(pool_cls: Pool) -> None:
    handler = Recorder()
    pool = pool_cls(handler, 2, 2)
    async with asyncio.timeout(5):
        assert pool.submit_nowait("a") and pool.submit_nowait("b")
        await pool.wait_drained()
        await pool.cancel_running()  # both idle: they exit
        assert not pool.submit_nowait("late")  # stopped: refuses
    assert sorted(handler.handled) == ["a", "b"]


async def test_every_item_is_handled_or_taken_back_when_the_pool_is_cancelled(
    pool_cls: Pool,
) -> None:
    # Kill answers what `take_queued` returns and what its handlers see cancelled; an
    # item it hands to an idle worker that has not woken yet must be one or the other,
    # or its call is never answered.
    handler = Recorder()
    pool = pool_cls(handler, 3, 3)
    async with asyncio.timeout(5):
        for i in range(3):
            assert pool.submit_nowait(f"w{i}")
        await pool.wait_drained()  # three idle workers now
        for i in range(3):
            assert pool.submit_nowait(f"x{i}")  # handed to the idle workers: not awake yet
        taken = pool.take_queued()
        taken += await pool.cancel_running()  # those handed over but never started
    accounted = set(taken) | set(handler.started)
    assert accounted >= {"x0", "x1", "x2"}, (taken, handler.started)


async def test_workers_never_run_in_the_submitters_context(pool_cls: Pool) -> None:
    handler = Recorder()
    token = var.set("the pool's")
    try:
        pool = pool_cls(handler, 1, 4)
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
    # Every item starts in a copy of the pool's context: never the submitter's, and never
    # what an earlier item left (a worker whose item set a var is retired).
    assert handler.seen == ["the pool's", "the pool's"]


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
