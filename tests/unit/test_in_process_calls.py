"""Calls whose server runs in the same process: answered inside publish on 3.12+."""

from __future__ import annotations

import asyncio

import busrpc
from busrpc.bus.memory import MemoryBus


@busrpc.service("inproc")
class Echo:
    @busrpc.rpc
    async def echo(self, text: str) -> str:
        return text

    @busrpc.rpc(multi=True)
    async def all(self, text: str) -> str:
        return text


async def test_a_loop_of_in_process_calls_never_starves_the_event_loop() -> None:
    # On 3.12+ the server runs a handler that never suspends inside the caller's publish,
    # so the call itself need not suspend: the client must yield now and then anyway.
    async with MemoryBus("inproc-starve") as bus, busrpc.Server(bus, Echo()):
        client = busrpc.client(Echo, bus)
        await client.echo("warm")
        for kind in ("unary", "multi"):
            other = asyncio.Event()
            asyncio.get_running_loop().call_soon(other.set)
            for i in range(1000):
                if kind == "unary":
                    assert await client.echo(str(i)) == str(i)
                else:
                    assert [r.result async for r in client.all(str(i), expect=1)] == [str(i)]
                if other.is_set():
                    break
            assert other.is_set(), f"{kind}: 1000 calls ran without the loop running once"
