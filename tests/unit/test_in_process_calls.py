"""Calls whose server runs in the same process: answered inside publish on 3.12+."""

from __future__ import annotations

import asyncio

import busrpc
from busrpc import Deadline
from busrpc.bus.memory import MemoryBus
from busrpc.rpc import RpcClient


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


async def test_describe_lists_each_kind_of_method() -> None:
    async with MemoryBus("inproc-describe") as bus, busrpc.Server(bus, Echo(), server_id="s1"):
        client = RpcClient(bus)
        described = await client.describe("inproc", deadline=Deadline.after(5))
        nobody = await client.describe("nobody", deadline=Deadline.after(5))
    assert described is not None
    assert (described.service, described.server_id) == ("inproc", "s1")
    assert (described.methods, described.multi) == (["all", "echo"], ["all"])
    assert nobody is None
