"""Request and response types: msgspec Structs, dataclasses, TypedDicts, builtins, bytes
and protobuf messages all work, declared by the handler's annotations.

Define the types at module level: busrpc reads the annotations to pick the decoder.
Protobuf messages use the protobuf codec, ``bytes`` passes through untouched, everything
else is JSON (msgspec). The protobuf part needs ``pip install 'busrpc[protobuf]'``.
pydantic models have an example of their own: ``examples/pydantic_models.py``.

    python examples/datatypes.py [URL]
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from typing import TypedDict

from google.protobuf import wrappers_pb2

import busrpc


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Order(TypedDict):
    sku: str
    qty: int


@busrpc.service("shapes")
class Shapes:
    @busrpc.rpc
    async def mirror(self, p: Point) -> Point:  # dataclasses
        return Point(x=-p.x, y=p.y)

    @busrpc.rpc
    async def total(self, order: Order) -> dict[str, int]:  # TypedDict in, builtins out
        return {order["sku"]: order["qty"] * 3}

    @busrpc.rpc
    async def add(self, xs: list[int]) -> int:  # builtins
        return sum(xs)

    @busrpc.rpc
    async def reverse(self, blob: bytes) -> bytes:  # raw bytes, no codec at all
        return blob[::-1]

    @busrpc.rpc
    async def shout(self, s: wrappers_pb2.StringValue) -> wrappers_pb2.StringValue:  # protobuf
        return wrappers_pb2.StringValue(value=s.value.upper())


async def main(bus: busrpc.MessageBus) -> None:
    async with busrpc.Server(bus, Shapes()):
        shapes = busrpc.client(Shapes, bus, timeout=5)
        assert await shapes.mirror(Point(x=1.5, y=2)) == Point(x=-1.5, y=2)
        assert await shapes.total({"sku": "tea", "qty": 2}) == {"tea": 6}
        assert await shapes.add([1, 2, 3]) == 6
        assert await shapes.reverse(b"\x00\x01\xff") == b"\xff\x01\x00"
        shouted = await shapes.shout(wrappers_pb2.StringValue(value="hi"))
        assert shouted.value == "HI"
        print("dataclass, TypedDict, builtins, bytes and protobuf: all round-tripped")


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
