"""Unary calls: load-balanced over a queue group, or direct to one server."""

from __future__ import annotations

import asyncio

import pytest

import busrpc
from busrpc import MessageBus

from .conftest import OpenBus
from .services import Greeter, Hello


async def test_call_returns_the_handlers_result(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Greeter(), namespace=ns, server_id="s1") as server:
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        reply = await greeter.say_hello(Hello(name="ada"))
        assert (reply.text, reply.server) == ("hello ada", "s1")
        stats = server.statistics()
        assert (stats.succeeded, stats.failed, stats.expired, stats.in_flight) == (1, 0, 0, 0)
        assert stats.received >= 1


async def test_each_call_is_handled_by_exactly_one_server(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    services = [Greeter() for _ in range(3)]
    n = 60
    async with (
        busrpc.Server(await open_bus(), services[0], namespace=ns, server_id="a") as a,
        busrpc.Server(await open_bus(), services[1], namespace=ns, server_id="b") as b,
        busrpc.Server(await open_bus(), services[2], namespace=ns, server_id="c") as c,
    ):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        names = [f"n{i}" for i in range(n)]
        replies = await asyncio.gather(*(greeter.say_hello(Hello(name=x)) for x in names))
        succeeded = [s.statistics().succeeded for s in (a, b, c)]

    assert [r.text for r in replies] == [f"hello {x}" for x in names]
    handled = [name for service in services for name in service.calls]
    assert len(handled) == n, f"{len(handled)} handler calls for {n} requests"
    assert sorted(handled) == sorted(names), "every request must be handled exactly once"
    handled_by = {name: sid for sid, s in zip("abc", services, strict=True) for name in s.calls}
    assert [r.server for r in replies] == [handled_by[x] for x in names], (
        "each reply must come from the server whose handler ran"
    )
    assert sum(succeeded) == n


async def test_direct_call_reaches_only_the_named_server(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    services = {sid: Greeter() for sid in "abc"}
    async with (
        busrpc.Server(await open_bus(), services["a"], namespace=ns, server_id="a"),
        busrpc.Server(await open_bus(), services["b"], namespace=ns, server_id="b"),
        busrpc.Server(await open_bus(), services["c"], namespace=ns, server_id="c"),
    ):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        replies = [await greeter.say_hello(Hello(name=str(i)), server_id="b") for i in range(10)]
    assert {r.server for r in replies} == {"b"}
    assert len(services["b"].calls) == 10
    assert services["a"].calls == services["c"].calls == []


async def test_direct_call_to_an_unknown_server_is_unavailable(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Greeter(), namespace=ns, server_id="a"):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        async with asyncio.timeout(5):
            with pytest.raises(busrpc.Unavailable, match=f"{ns}.greeter.say_hello.@nobody"):
                await greeter.say_hello(Hello(name="x"), server_id="nobody", timeout=30)


async def test_no_server_is_unavailable_at_once_naming_the_subject(
    bus: MessageBus, ns: str
) -> None:
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    # The guard is far shorter than the call's timeout: waiting for the deadline fails.
    async with asyncio.timeout(5):
        with pytest.raises(busrpc.Unavailable) as info:
            await greeter.say_hello(Hello(name="x"), timeout=30)
    assert f"no responders for {ns}.greeter.say_hello" in str(info.value)
    assert info.value.code is busrpc.ErrorCode.UNAVAILABLE


async def test_client_in_another_namespace_does_not_reach_the_server(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    service = Greeter()
    async with busrpc.Server(peer_bus, service, namespace=ns):
        other = busrpc.client(Greeter, bus, namespace=f"{ns}x")
        async with asyncio.timeout(5):
            with pytest.raises(busrpc.Unavailable, match=f"{ns}x.greeter.say_hello"):
                await other.say_hello(Hello(name="x"), timeout=30)
        same = busrpc.client(Greeter, bus, namespace=ns)
        assert (await same.say_hello(Hello(name="y"))).text == "hello y"
    assert service.calls == ["y"]


async def test_server_and_client_on_one_connection(bus: MessageBus, ns: str) -> None:
    async with busrpc.Server(bus, Greeter(), namespace=ns):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        assert (await greeter.say_hello(Hello(name="self"))).text == "hello self"


async def test_calls_after_shutdown_are_unavailable(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    async with busrpc.Server(peer_bus, Greeter(), namespace=ns):
        assert (await greeter.say_hello(Hello(name="1"))).text == "hello 1"
    async with asyncio.timeout(5):
        with pytest.raises(busrpc.Unavailable):
            await greeter.say_hello(Hello(name="2"), timeout=30)
