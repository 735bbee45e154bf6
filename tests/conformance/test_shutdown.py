"""Shutdown finishes the calls in flight; kill answers them `unavailable`."""

from __future__ import annotations

import asyncio

import pytest

import busrpc
from busrpc import MessageBus

from .services import Greeter, Hello


async def test_shutdown_lets_calls_in_flight_finish(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    service = Greeter(hang=True)
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    async with busrpc.Server(peer_bus, service, namespace=ns) as server:
        call = asyncio.create_task(greeter.say_hello(Hello(name="in flight"), timeout=30))
        async with asyncio.timeout(5):
            await service.entered.wait()
        shutdown = asyncio.create_task(server.shutdown())
        service.release.set()
        async with asyncio.timeout(5):
            reply = await call
            await shutdown
        stats = server.statistics()
    assert reply.text == "hello in flight"
    assert (stats.succeeded, stats.in_flight) == (1, 0)
    async with asyncio.timeout(5):
        with pytest.raises(busrpc.Unavailable):
            await greeter.say_hello(Hello(name="after"), timeout=30)
    assert service.calls == ["in flight"]


async def test_shutdown_grace_ends_with_kill(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    service = Greeter(hang=True)
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    async with busrpc.Server(peer_bus, service, namespace=ns) as server:
        call = asyncio.create_task(greeter.say_hello(Hello(name="slow"), timeout=30))
        async with asyncio.timeout(5):
            await service.entered.wait()
            await server.shutdown(grace=0.2)
            with pytest.raises(busrpc.Unavailable):
                await call
    assert service.exited.is_set()


async def test_kill_answers_calls_in_flight_unavailable(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    service = Greeter(hang=True)
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    async with busrpc.Server(peer_bus, service, namespace=ns) as server:
        calls = [
            asyncio.create_task(greeter.say_hello(Hello(name=str(i)), timeout=30)) for i in range(3)
        ]
        async with asyncio.timeout(5):
            while len(service.calls) < 3:
                await service.entered.wait()
                service.entered.clear()
            await server.kill()
            results = await asyncio.gather(*calls, return_exceptions=True)
        stats = server.statistics()
    assert all(isinstance(r, busrpc.Unavailable) for r in results), results
    assert service.exited.is_set() and not service.release.is_set()
    assert (stats.failed, stats.in_flight) == (3, 0)


async def test_shutdown_and_kill_are_idempotent(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    never_started = busrpc.Server(peer_bus, Greeter(), namespace=ns)
    await never_started.shutdown()  # nothing to do
    await never_started.kill()
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    async with busrpc.Server(peer_bus, Greeter(), namespace=ns) as server:
        assert (await greeter.say_hello(Hello(name="1"))).text == "hello 1"
        await server.shutdown()
        await server.shutdown()
        await server.kill()
    await server.kill()
    assert server.statistics().succeeded == 1
    async with asyncio.timeout(5):
        with pytest.raises(busrpc.Unavailable):
            await greeter.say_hello(Hello(name="2"), timeout=30)


async def test_server_left_before_its_readers_ran_stops_at_once(
    peer_bus: MessageBus, ns: str
) -> None:
    # Regression: a server entered and left without the loop ever running its readers
    # used to wait forever for a push-delivery listener on an already closed subscription.
    async with asyncio.timeout(5):  # a hang guard, not a timing
        async with busrpc.Server(peer_bus, Greeter(), namespace=ns) as server:
            pass
    assert server.statistics().in_flight == 0


async def test_kill_with_a_full_pool_of_hanging_handlers_stops_at_once(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    service = Greeter(hang=True)
    server = busrpc.Server(peer_bus, service, namespace=ns, max_concurrency=1)
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    async with server:
        # One call runs (and hangs), one waits in the pool's queue, the rest back up in
        # the subscription behind a reader that waits for room.
        calls = [
            asyncio.create_task(greeter.say_hello(Hello(name=str(i)), timeout=30)) for i in range(4)
        ]
        await service.entered.wait()
        async with asyncio.timeout(5):  # a hang guard, not a timing
            await server.kill()
        async with asyncio.timeout(5):
            results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[0], busrpc.Unavailable)
    assert service.calls == ["0"]  # the others were never started
