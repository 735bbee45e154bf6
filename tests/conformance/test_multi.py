"""Multi calls: every server answers; the caller can stop early."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

import busrpc
from busrpc import MessageBus, Response

from .conftest import OpenBus
from .services import Greeter, Greeting, Hello


@contextlib.asynccontextmanager
async def serving(open_bus: OpenBus, ns: str, services: dict[str, Greeter]) -> AsyncIterator[None]:
    """Serve each service on its own connection, with the dict key as its server id.

    On exit, hanging handlers are released first, so shutdown does not wait for them."""
    async with contextlib.AsyncExitStack() as stack:
        for server_id, service in services.items():
            server = busrpc.Server(await open_bus(), service, namespace=ns, server_id=server_id)
            await stack.enter_async_context(server)
        try:
            yield
        finally:  # let hanging handlers finish, so the servers shut down at once
            for service in services.values():
                service.release.set()


async def collect(responses: AsyncIterator[Response[Greeting]]) -> list[Response[Greeting]]:
    return [r async for r in responses]


async def test_every_server_answers(bus: MessageBus, open_bus: OpenBus, ns: str) -> None:
    async with serving(open_bus, ns, {sid: Greeter() for sid in "abc"}):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        async with asyncio.timeout(5):
            responses = await collect(greeter.stats(Hello(name="x"), timeout=30, expect=3))
    assert sorted(r.server_id for r in responses) == ["a", "b", "c"]
    for r in responses:
        assert r.ok and r.error is None
        assert r.result == Greeting(text="stats x", server=r.server_id)
        assert r.unwrap() == r.result


async def test_expect_stops_after_that_many_answers(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    services = {sid: Greeter() for sid in "abc"}
    async with serving(open_bus, ns, services):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        # A 30 s window inside a 5 s guard: the call must end when 2 answers are in.
        async with asyncio.timeout(5):
            responses = await collect(greeter.stats(Hello(name="x"), timeout=30, expect=2))
    assert len(responses) == 2
    assert len({r.server_id for r in responses}) == 2
    assert {r.server_id for r in responses} <= set(services)


async def test_first_success_stops_at_the_first_result(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    failing = busrpc.RpcError("unavailable", "busy")
    services = {"a": Greeter(error=failing), "b": Greeter(error=failing), "c": Greeter()}
    async with serving(open_bus, ns, services):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        async with asyncio.timeout(5):
            responses = await collect(
                greeter.stats(Hello(name="x"), timeout=30, first_success=True)
            )
    assert responses[-1].ok and responses[-1].server_id == "c"
    assert all(not r.ok for r in responses[:-1])
    assert len(responses) <= 3


async def test_first_success_with_every_server_succeeding_gives_one(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    async with serving(open_bus, ns, {sid: Greeter() for sid in "abc"}):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        async with asyncio.timeout(5):
            responses = await collect(
                greeter.stats(Hello(name="x"), timeout=30, first_success=True)
            )
    assert len(responses) == 1 and responses[0].ok


async def test_deadline_ends_iteration_with_the_answers_received(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    silent = Greeter(hang=True)  # never answers
    async with serving(open_bus, ns, {"a": Greeter(), "b": Greeter(), "silent": silent}):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        responses = await collect(greeter.stats(Hello(name="x"), timeout=3))  # wide: a and b answer
        assert silent.calls == ["x"]
    assert sorted(r.server_id for r in responses) == ["a", "b"]


async def test_quiet_period_ends_iteration(bus: MessageBus, open_bus: OpenBus, ns: str) -> None:
    async with serving(open_bus, ns, {"a": Greeter(), "silent": Greeter(hang=True)}):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        async with asyncio.timeout(5):
            responses = await collect(greeter.stats(Hello(name="x"), timeout=30, quiet=1))
    assert [r.server_id for r in responses] == ["a"]


async def test_errors_arrive_inside_the_response(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    error = busrpc.RpcError("not_found", "no such thing", {"key": "x"})
    async with serving(open_bus, ns, {"ok": Greeter(), "bad": Greeter(error=error)}):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        async with asyncio.timeout(5):
            responses = await collect(greeter.stats(Hello(name="x"), timeout=30, expect=2))
    by_server = {r.server_id: r for r in responses}
    assert set(by_server) == {"ok", "bad"}
    assert by_server["ok"].ok
    bad = by_server["bad"]
    assert not bad.ok and bad.result is None
    assert bad.error is not None
    assert (bad.error.code, bad.error.message, dict(bad.error.details)) == (
        busrpc.ErrorCode.NOT_FOUND,
        "no such thing",
        {"key": "x"},
    )
    with pytest.raises(busrpc.RpcError) as info:
        bad.unwrap()
    assert info.value.code is busrpc.ErrorCode.NOT_FOUND


async def test_no_server_ends_iteration_at_once(bus: MessageBus, ns: str) -> None:
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    async with asyncio.timeout(5):
        responses = await collect(greeter.stats(Hello(name="x"), timeout=30))
    assert responses == []


async def test_expect_must_be_positive(bus: MessageBus, ns: str) -> None:
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    with pytest.raises(ValueError, match="expect"):
        await collect(greeter.stats(Hello(name="x"), expect=0))
