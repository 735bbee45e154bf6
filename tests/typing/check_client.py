"""Checked by mypy, never run (pytest collects only test_*.py): the client is typed.

`assert_type` fails the mypy run when an inferred type drifts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import assert_type

import msgspec

import busrpc
from busrpc import MessageBus, Response


class Hello(msgspec.Struct):
    name: str


class Greeting(msgspec.Struct):
    text: str


@busrpc.service("greeter")
class Greeter:
    @busrpc.rpc
    async def say_hello(self, req: Hello) -> Greeting:
        return Greeting(text=f"hello {req.name}")

    @busrpc.rpc(multi=True)
    async def stats(self, req: Hello) -> Greeting:
        return Greeting(text=req.name)

    @busrpc.rpc(affinity=True)
    async def transcode(self, req: Hello) -> bytes:
        return b""

    @transcode.affinity
    def transcode_affinity(self, req: Hello) -> float:
        return 1.0


async def unary(bus: MessageBus) -> None:
    greeter = busrpc.client(Greeter, bus)
    assert_type(greeter, Greeter)
    assert_type(await busrpc.client(Greeter, bus).say_hello(Hello(name="x")), Greeting)
    assert_type(await greeter.say_hello(Hello(name="x"), timeout=2, topic="eu"), Greeting)
    selection = busrpc.SelectionOpts(minimum_affinity=0.5)
    assert_type(await greeter.transcode(Hello(name="x"), selection=selection), bytes)


async def multi(bus: MessageBus) -> None:
    greeter = busrpc.client(Greeter, bus)
    responses = greeter.stats(Hello(name="x"), expect=2, timeout=1)
    assert_type(responses, AsyncIterator[Response[Greeting]])
    async for response in responses:
        assert_type(response, Response[Greeting])
        assert_type(response.result, Greeting | None)
        assert_type(response.error, busrpc.RpcError | None)
        assert_type(response.unwrap(), Greeting)


def errors() -> None:
    assert_type(busrpc.ErrorCode("x"), busrpc.ErrorCode)
    assert_type(busrpc.ErrorCode.from_http(404), busrpc.ErrorCode)
    assert_type(busrpc.RpcError("not_found").code, busrpc.ErrorCode)
    assert_type(busrpc.Deadline.from_wire(0), busrpc.Deadline)


def context() -> None:
    assert_type(busrpc.current_call(), busrpc.ServerCall | None)
