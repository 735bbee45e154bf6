"""Shutdown vs kill, and statistics().

``shutdown(grace)`` (also what leaving ``async with`` does) stops taking new calls and lets
running ones finish for up to *grace* seconds. ``kill()`` stops at once and answers every
running call ``unavailable``, so no caller waits for a reply that will never come.

    python examples/lifecycle.py [URL]
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

import busrpc


class Task(msgspec.Struct):
    n: int


class Result(msgspec.Struct):
    n: int


@busrpc.service("worker")
class Worker:
    def __init__(self) -> None:
        self.started = asyncio.Event()  # a call is running
        self.release = asyncio.Event()  # let it finish

    @busrpc.rpc
    async def work(self, task: Task) -> Result:
        self.started.set()
        await self.release.wait()
        return Result(n=task.n * 2)


async def main(bus: busrpc.MessageBus) -> None:
    worker = busrpc.client(Worker, bus)

    # Graceful: the call in flight when shutdown starts still gets its result.
    graceful = Worker()
    async with busrpc.Server(bus, graceful, shutdown_grace=5) as server:
        call = asyncio.create_task(worker.work(Task(n=21), timeout=5))
        await graceful.started.wait()
        stopping = asyncio.create_task(server.shutdown())
        graceful.release.set()
        assert await call == Result(n=42)
        await stopping
    print("after shutdown:", server.statistics())
    assert server.statistics().succeeded == 1

    # Nobody serves worker.work any more.
    try:
        await worker.work(Task(n=1), timeout=5)
    except busrpc.Unavailable as exc:
        print(exc)
    else:
        raise AssertionError("the server has stopped")

    # Kill: the running call is answered `unavailable` at once.
    stuck = Worker()  # never released
    async with busrpc.Server(bus, stuck) as server:
        call = asyncio.create_task(worker.work(Task(n=1), timeout=30))
        await stuck.started.wait()
        assert server.statistics().in_flight == 1
        await server.kill()
        try:
            await call
        except busrpc.Unavailable as exc:
            print("killed:", exc)
            assert exc.message == "server is shutting down"
        else:
            raise AssertionError("kill answers running calls unavailable")
    stats = server.statistics()
    print("after kill:", stats)
    assert (stats.failed, stats.in_flight) == (1, 0)


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
