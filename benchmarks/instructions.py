"""Instructions per in-memory call, for callgrind (deterministic, unlike wall time).

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python benchmarks/instructions.py 6400
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python benchmarks/instructions.py 0

The difference of the two totals divided by the calls is what one call costs: `memory://`,
C=64 concurrent callers, a 100 B echo, no uvloop (callgrind counts the same either way).
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

import busrpc
from busrpc.bus.memory import MemoryBus


class Echo(msgspec.Struct):
    data: str


@busrpc.service("bench")
class Bench:
    @busrpc.rpc
    async def echo(self, req: Echo) -> Echo:
        return req


async def main(calls: int, concurrency: int = 64) -> None:
    async with MemoryBus("instructions") as bus, busrpc.Server(bus, Bench()):
        client = busrpc.client(Bench, bus)
        await client.echo(Echo(data="warm"))
        per_task = calls // concurrency
        payload = "x" * 100

        async def caller() -> None:
            for _ in range(per_task):
                await client.echo(Echo(data=payload))

        await asyncio.gather(*(caller() for _ in range(concurrency)))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 6400))
