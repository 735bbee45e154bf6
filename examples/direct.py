"""Direct calls: address one server instance by its id.

Three servers share the ``kv`` queue group, so a plain call goes to any one of them.
``server_id=`` sends the call to the named instance only (subject ``kv.whoami.@node-b``);
an id nobody has is `busrpc.Unavailable` at once.

    python examples/direct.py [URL]
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import msgspec

import busrpc


class Empty(msgspec.Struct):
    pass


class Identity(msgspec.Struct):
    server_id: str


@busrpc.service("kv")
class Node:
    @busrpc.rpc
    async def whoami(self, req: Empty) -> Identity:
        call = busrpc.current_call()
        assert call is not None
        return Identity(server_id=call.server_id)


async def main(bus: busrpc.MessageBus) -> None:
    async with contextlib.AsyncExitStack() as stack:
        ids = ["node-a", "node-b", "node-c"]
        for server_id in ids:
            server = busrpc.Server(bus, Node(), server_id=server_id)
            await stack.enter_async_context(server)
            assert server.server_id == server_id
        kv = busrpc.client(Node, bus)

        anyone = await kv.whoami(Empty(), timeout=5)
        print("queue group ->", anyone.server_id)
        assert anyone.server_id in ids

        for _ in range(3):
            me = await kv.whoami(Empty(), timeout=5, server_id="node-b")
            assert me.server_id == "node-b"
        print("server_id='node-b' -> node-b, every time")

        try:
            await kv.whoami(Empty(), timeout=5, server_id="node-z")
        except busrpc.Unavailable as exc:
            print(exc)
            assert "kv.whoami.@node-z" in exc.message
        else:
            raise AssertionError("node-z does not exist")


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
