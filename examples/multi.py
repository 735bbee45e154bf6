"""Multi calls: one request, every server answers; iterate the answers as they arrive.

Three nodes serve ``cluster.stats``. The caller says how many answers it expects, so the
call ends as soon as all three are in instead of waiting for the deadline. A node that
fails answers with an error in its `busrpc.Response`; the iteration never raises for it.

    python examples/multi.py [URL]
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import msgspec

import busrpc


class StatsQuery(msgspec.Struct):
    detail: bool = False


class NodeStats(msgspec.Struct):
    node: str
    load: float


@busrpc.service("cluster")
class Node:
    def __init__(self, load: float, *, healthy: bool = True) -> None:
        self.load = load
        self.healthy = healthy

    @busrpc.rpc(multi=True)
    async def stats(self, req: StatsQuery) -> NodeStats:
        call = busrpc.current_call()
        assert call is not None  # always set inside a handler
        if not self.healthy:
            raise busrpc.RpcError("failed_precondition", "disk full", {"disk": "/var"})
        return NodeStats(node=call.server_id, load=self.load)


async def main(bus: busrpc.MessageBus) -> None:
    nodes = {
        "node-1": Node(0.25),
        "node-2": Node(0.5),
        "node-3": Node(0.0, healthy=False),
    }
    async with contextlib.AsyncExitStack() as stack:
        for server_id, node in nodes.items():
            await stack.enter_async_context(busrpc.Server(bus, node, server_id=server_id))
        cluster = busrpc.client(Node, bus)

        # expect=3: return as soon as three servers answered (else: at the deadline).
        answers: dict[str, busrpc.Response[NodeStats]] = {}
        async for r in cluster.stats(StatsQuery(), expect=3, timeout=5):
            print(r.server_id, r.result if r.ok else r.error)
            answers[r.server_id] = r
        assert sorted(answers) == ["node-1", "node-2", "node-3"]
        assert answers["node-2"].unwrap() == NodeStats(node="node-2", load=0.5)
        failed = answers["node-3"].error
        assert failed is not None and failed.code is busrpc.ErrorCode.FAILED_PRECONDITION
        assert failed.details == {"disk": "/var"}

        # first_success=True: stop at the first result (errors before it are yielded too).
        results = [r async for r in cluster.stats(StatsQuery(), first_success=True, timeout=5)]
        assert [r.ok for r in results][-1:] == [True]
        assert sum(r.ok for r in results) == 1
        print("first success from", results[-1].server_id)


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
