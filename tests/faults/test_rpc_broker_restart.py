"""RPC calls when the broker restarts or goes away for good (a broker of the test's own).

Issue 02, point 3: calls in flight fail within their deadline (never hang), none gets
another call's reply, and the same process calls successfully once the broker is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
from _broker import GUARD, Broker

import busrpc
from busrpc.bus.nats import NatsBus

pytestmark = pytest.mark.slow  # starts nats-server processes


class Ask(msgspec.Struct):
    n: int


@busrpc.service("restart")
class Restart:
    def __init__(self) -> None:
        self.started = asyncio.Event()

    @busrpc.rpc
    async def echo(self, req: Ask) -> Ask:
        return req

    @busrpc.rpc
    async def hang(self, req: Ask) -> Ask:
        self.started.set()
        await asyncio.Event().wait()
        return req


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    broker = Broker()
    await broker.start()
    try:
        yield broker
    finally:
        await broker.kill()


async def _echo_all(client: Restart, count: int) -> None:
    results = await asyncio.gather(*(client.echo(Ask(n=i), timeout=10) for i in range(count)))
    assert [r.n for r in results] == list(range(count))  # each got its own reply


async def test_issue_6_calls_survive_a_broker_restart_in_the_same_process(
    broker: Broker,
) -> None:
    reconnected = asyncio.Event()

    async def on_reconnected() -> None:
        reconnected.set()

    server_bus = NatsBus(broker.url, max_reconnect_attempts=400, reconnect_time_wait=0.05)
    bus = NatsBus(
        broker.url,
        max_reconnect_attempts=400,
        reconnect_time_wait=0.05,
        reconnected_cb=on_reconnected,
    )
    service = Restart()
    async with server_bus, bus, busrpc.Server(server_bus, service):
        client = busrpc.client(Restart, bus)
        await _echo_all(client, 50)
        in_flight = [asyncio.create_task(client.hang(Ask(n=i), timeout=1)) for i in range(20)]
        await service.started.wait()
        await broker.kill()
        async with asyncio.timeout(GUARD):  # a hang guard: each call has a 1 s deadline
            results = await asyncio.gather(*in_flight, return_exceptions=True)
        for result in results:
            assert isinstance(result, busrpc.DeadlineExceeded | busrpc.Unavailable), result
        await broker.start()
        async with asyncio.timeout(GUARD):
            await reconnected.wait()
            # The server's connection may take a moment longer to resubscribe: until it
            # has, the call is answered no-responders, never hangs.
            while True:
                try:
                    await client.echo(Ask(n=-1), timeout=2)
                except busrpc.Unavailable:
                    continue
                break
            await _echo_all(client, 50)


async def test_issue_6_a_broker_gone_for_good_fails_waiting_calls_at_once(
    broker: Broker,
) -> None:
    server_bus = NatsBus(broker.url, max_reconnect_attempts=1, reconnect_time_wait=0.05)
    bus = NatsBus(broker.url, max_reconnect_attempts=1, reconnect_time_wait=0.05)
    service = Restart()
    async with server_bus, bus:
        server = busrpc.Server(server_bus, service)
        await server.__aenter__()
        client = busrpc.client(Restart, bus)
        call = asyncio.create_task(client.hang(Ask(n=1), timeout=3600))
        await service.started.wait()
        await broker.kill()
        async with asyncio.timeout(GUARD):  # long before the call's own deadline
            with pytest.raises(busrpc.Unavailable):
                await call
            with pytest.raises(busrpc.TransportError):
                await server.wait_closed()
        assert bus.closed and server_bus.closed
        with pytest.raises(busrpc.ClosedResourceError):
            await client.echo(Ask(n=2), timeout=1)
        # The same process connects again once a broker is back.
        await broker.start()
        async with NatsBus(broker.url) as again, busrpc.Server(again, Restart()):
            assert (await busrpc.client(Restart, again).echo(Ask(n=3), timeout=5)).n == 3
