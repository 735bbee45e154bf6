"""Server lifecycle on the memory bus: what `wait_closed` reports."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

import busrpc
from busrpc.bus import DEFAULT_MAX_PENDING, Overflow
from busrpc.bus.memory import MemoryBus, MemorySubscription


@busrpc.service("lifecycle")
class Greeter:
    @busrpc.rpc
    async def echo(self, text: str) -> str:
        return text


async def test_wait_closed_raises_when_the_bus_closes_under_the_server() -> None:
    bus = MemoryBus("lifecycle-lost")
    await bus.__aenter__()
    server = busrpc.Server(bus, Greeter())
    await server.__aenter__()
    waiter = asyncio.create_task(server.wait_closed())
    await bus.aclose()
    with pytest.raises(busrpc.TransportError, match="bus closed"):
        await waiter
    await server.shutdown()


async def test_wait_closed_returns_after_shutdown() -> None:
    async with MemoryBus("lifecycle-ok") as bus:
        server = busrpc.Server(bus, Greeter())
        await server.__aenter__()
        waiter = asyncio.create_task(server.wait_closed())
        await server.shutdown()
        await waiter  # no exception: we asked it to stop


class _StubbornSubscription(MemorySubscription):
    """A drain that takes its time and loses a cancel, as 3.11's `asyncio.wait_for`
    does when its future completes at the moment it is cancelled (nats-py's flush)."""

    started: asyncio.Event
    gate: asyncio.Event

    async def _drain(self) -> None:
        self.started.set()
        with contextlib.suppress(asyncio.CancelledError):  # lost, on purpose
            await self.gate.wait()
        await super()._drain()


class _StubbornBus(MemoryBus):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    def subscribe(self, subject: str, **options: Any) -> MemorySubscription:
        sub = _StubbornSubscription(
            self,
            subject,
            queue=options.get("queue") or None,
            max_pending=options.get("max_pending", DEFAULT_MAX_PENDING),
            overflow=options.get("overflow", Overflow.DROP_OLDEST),
        )
        sub.started, sub.gate = self.started, self.gate
        return sub


@busrpc.service("stuck")
class Stuck:
    def __init__(self) -> None:
        self.entered = asyncio.Event()

    @busrpc.rpc
    async def hang(self, text: str) -> str:
        self.entered.set()
        await asyncio.Event().wait()
        return text


async def test_issue_6_kill_ends_a_shutdown_whose_drain_lost_the_cancel() -> None:
    server_bus = _StubbornBus("lifecycle-stubborn")
    async with server_bus, MemoryBus("lifecycle-stubborn") as bus:
        service = Stuck()
        server = busrpc.Server(server_bus, service)
        await server.__aenter__()
        call = asyncio.create_task(busrpc.client(Stuck, bus).hang("x", timeout=3600))
        await service.entered.wait()
        shutdown = asyncio.create_task(server.shutdown(grace=3600))
        await server_bus.started.wait()  # the drain is under way
        async with asyncio.timeout(10):  # a hang guard, not a timing
            await server.kill()
            await shutdown
            with pytest.raises(busrpc.Unavailable, match="shutting down"):
                await call


async def test_issue_6_the_grace_ends_a_shutdown_whose_drain_lost_the_cancel() -> None:
    server_bus = _StubbornBus("lifecycle-stubborn-grace")
    async with server_bus, MemoryBus("lifecycle-stubborn-grace") as bus:
        service = Stuck()
        server = busrpc.Server(server_bus, service)
        await server.__aenter__()
        call = asyncio.create_task(busrpc.client(Stuck, bus).hang("x", timeout=3600))
        await service.entered.wait()
        async with asyncio.timeout(10):  # a hang guard, not a timing
            await server.shutdown(grace=0)
            with pytest.raises(busrpc.Unavailable, match="shutting down"):
                await call
