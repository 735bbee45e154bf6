"""Who called, and who answers: a handler knows its caller (client id, request id, when
it was sent); a multi call goes on past a server's error; a call nobody can serve says
why (``unimplemented`` naming the method, or ``unavailable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import msgspec
import pytest

import busrpc
from busrpc import Deadline, ErrorCode, MessageBus, Response
from busrpc.rpc import Method, RpcClient

from .conftest import OpenBus
from .services import Greeter, Greeting, Hello


class Caller(msgspec.Struct):
    caller_id: str | None
    request_id: str | None
    sent_at: float | None


@busrpc.service("whocalled")
class WhoCalled:
    """Reports who called, as `current_call()` tells the handler."""

    @busrpc.rpc
    async def who(self, req: Hello) -> Caller:
        return _caller()

    @busrpc.rpc(multi=True)
    async def everyone(self, req: Hello) -> Caller:
        return _caller()


def _caller() -> Caller:
    call = busrpc.current_call()
    assert call is not None
    return Caller(caller_id=call.caller_id, request_id=call.request_id, sent_at=call.sent_at)


async def test_the_handler_knows_who_called_and_when(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    client = busrpc.client(WhoCalled, bus, namespace=ns)
    async with busrpc.Server(peer_bus, WhoCalled(), namespace=ns), asyncio.timeout(10):
        before = time.time()
        first = await client.who(Hello(name="1"), timeout=30)
        second = await client.who(Hello(name="2"), timeout=30)
        after = time.time()
        (multi,) = [r.unwrap() async for r in client.everyone(Hello(name="3"), expect=1)]
    client_id = RpcClient(bus).client_id
    assert first.caller_id == second.caller_id == multi.caller_id == client_id
    assert first.request_id and second.request_id and multi.request_id
    assert len({first.request_id, second.request_id, multi.request_id}) == 3
    for seen in (first, second):
        assert seen.sent_at is not None
        assert before - 1 <= seen.sent_at <= after + 1  # generous: ms stamps, clock reads


async def test_callers_on_two_connections_are_told_apart(
    bus: MessageBus, peer_bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    other_bus = await open_bus()
    async with busrpc.Server(peer_bus, WhoCalled(), namespace=ns), asyncio.timeout(10):
        mine = await busrpc.client(WhoCalled, bus, namespace=ns).who(Hello(name="a"))
        theirs = await busrpc.client(WhoCalled, other_bus, namespace=ns).who(Hello(name="b"))
    assert mine.caller_id == RpcClient(bus).client_id
    assert theirs.caller_id == RpcClient(other_bus).client_id
    assert mine.caller_id != theirs.caller_id


# -- multi: a server's error is an item ---------------------------------------------------


@contextlib.asynccontextmanager
async def serving(open_bus: OpenBus, ns: str, services: dict[str, Greeter]) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for server_id, service in services.items():
            server = busrpc.Server(await open_bus(), service, namespace=ns, server_id=server_id)
            await stack.enter_async_context(server)
        try:
            yield
        finally:
            for service in services.values():
                service.release.set()


async def test_a_servers_no_responders_error_is_an_item_and_the_others_still_answer(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    # What a handler raises when its own nested call found nobody: the server's answer,
    # not the transport's, so it must not end the gathering.
    nested = busrpc.Unavailable("no responders for inventory.count")
    services = {"a": Greeter(error=nested), "b": Greeter(hang=True), "c": Greeter(hang=True)}
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    async with serving(open_bus, ns, services), asyncio.timeout(10):
        responses = aiter(greeter.stats(Hello(name="x"), timeout=30, expect=3))
        first = await anext(responses)  # b and c hang: a's error comes first
        services["b"].release.set()
        services["c"].release.set()
        rest = [r async for r in responses]
    assert first.server_id == "a" and first.error is not None
    assert first.error.code is ErrorCode.UNAVAILABLE
    assert "no responders" in first.error.message
    assert sorted(r.server_id for r in rest) == ["b", "c"]
    assert all(r.ok for r in rest)


async def test_a_multi_call_nobody_serves_ends_empty_at_once(bus: MessageBus, ns: str) -> None:
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    async with asyncio.timeout(5):  # a 30 s window: it must end long before
        responses: list[Response[Greeting]] = [
            r async for r in greeter.stats(Hello(name="x"), timeout=30)
        ]
    assert responses == []


# -- calls nobody can serve ---------------------------------------------------------------


async def test_a_method_the_service_lacks_is_unimplemented(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    nope: Method[Hello, Greeting] = Method("greeter", "nope", Hello, Greeting)
    client = RpcClient(bus, namespace=ns)
    async with busrpc.Server(peer_bus, Greeter(), namespace=ns), asyncio.timeout(5):
        with pytest.raises(busrpc.RpcError) as info:
            await client.unary(nope, Hello(name="x"), deadline=Deadline.after(30))
        # The service itself still answers.
        hello = await busrpc.client(Greeter, bus, namespace=ns).say_hello(Hello(name="y"))
    assert info.value.code is ErrorCode.UNIMPLEMENTED
    assert "nope" in info.value.message
    assert hello.text == "hello y"


async def test_a_service_nobody_serves_is_unavailable(bus: MessageBus, ns: str) -> None:
    ghost: Method[Hello, Greeting] = Method("ghost", "boo", Hello, Greeting)
    client = RpcClient(bus, namespace=ns)
    async with asyncio.timeout(5):
        with pytest.raises(busrpc.Unavailable):
            await client.unary(ghost, Hello(name="x"), deadline=Deadline.after(30))
