"""Deadlines: every call ends; servers stop work the caller gave up on; nested calls
inherit the caller's deadline."""

from __future__ import annotations

import asyncio

import pytest

import busrpc
from busrpc import Deadline, MessageBus

from .services import Greeter, Hello, Inner, Outer


async def test_hanging_handler_gives_deadline_exceeded_and_is_cancelled(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    service = Greeter(hang=True)  # waits for an event nobody sets
    async with busrpc.Server(peer_bus, service, namespace=ns) as server:
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        with pytest.raises(busrpc.DeadlineExceeded) as info:
            await greeter.say_hello(Hello(name="x"), timeout=0.5)
        # The server cancels the handler at the same deadline: its finally block runs.
        async with asyncio.timeout(5):
            await service.exited.wait()
        stats = server.statistics()
    assert isinstance(info.value, TimeoutError)
    assert info.value.code is busrpc.ErrorCode.DEADLINE_EXCEEDED
    assert not service.release.is_set()
    assert (stats.expired, stats.succeeded) == (1, 0)


async def test_client_timeout_is_the_default_deadline(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Greeter(hang=True), namespace=ns):
        greeter = busrpc.client(Greeter, bus, namespace=ns, timeout=0.3)
        async with asyncio.timeout(5):
            with pytest.raises(busrpc.DeadlineExceeded):
                await greeter.say_hello(Hello(name="x"))


async def test_expired_deadline_is_dropped_without_running_the_handler(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    service = Greeter()
    async with busrpc.Server(peer_bus, service, namespace=ns) as server:
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        # The connection's reply inbox is live after a first call: the late request is
        # then sent (and must be dropped by the server), not stopped at the client.
        assert (await greeter.say_hello(Hello(name="first"))).text == "hello first"
        with pytest.raises(busrpc.DeadlineExceeded):
            await greeter.say_hello(Hello(name="late"), deadline=Deadline.from_wire(0))
        # Same subject, same connection: once this is answered, the late one was seen.
        assert (await greeter.say_hello(Hello(name="on time"))).text == "hello on time"
        stats = server.statistics()
    assert service.calls == ["first", "on time"]
    assert (stats.expired, stats.succeeded) == (1, 2)


async def test_nested_call_inherits_the_remaining_deadline(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    inner = busrpc.client(Inner, peer_bus, namespace=ns)  # its default timeout: 10 s
    async with (
        busrpc.Server(peer_bus, Inner(), namespace=ns),
        busrpc.Server(peer_bus, Outer(inner), namespace=ns),
    ):
        outer = busrpc.client(Outer, bus, namespace=ns)
        measured = await outer.measure(Hello(name="x"), timeout=3)
    assert 0 < measured.outer <= 3
    assert 0 < measured.inner <= measured.outer  # not the inner client's 10 s


async def test_explicit_deadline_is_used_as_given(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Inner(), namespace=ns):
        inner = busrpc.client(Inner, bus, namespace=ns, timeout=60)
        remaining = await inner.remaining(Hello(name="x"), deadline=Deadline.after(2))
    assert 0 < remaining <= 2
