"""Server lifecycle on the memory bus: what `wait_closed` reports."""

from __future__ import annotations

import asyncio

import pytest

import busrpc
from busrpc.bus.memory import MemoryBus


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
