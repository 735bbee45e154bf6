"""A graceful shutdown under load loses no call; kill ends a shutdown at once; a second
shutdown waits for the first.

Call timeouts are 30 s inside shorter guards: a call that waited for its deadline fails
the guard instead of passing slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import pytest

import busrpc
from busrpc import MessageBus

from .conftest import OpenBus
from .services import Greeter, Hello, Sleeper

CALLERS = 64
ROUNDS = 5
CALLS_PER_ROUND = 400  # calls completed between two shutdowns


async def step(n: int = 1) -> None:
    """Let the loop run *n* iterations, without sleeping."""
    loop = asyncio.get_running_loop()
    for _ in range(n):
        fut: asyncio.Future[None] = loop.create_future()
        loop.call_soon(fut.set_result, None)
        await fut


class Load:
    """*CALLERS* tasks calling without pause until `stop`; every outcome is recorded."""

    def __init__(self, greeter: Greeter) -> None:
        self.greeter = greeter
        self.done = 0
        self.failures: list[BaseException] = []
        self._progress = asyncio.Event()
        self._stopping = False

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for i in range(CALLERS):
                tg.create_task(self._caller(i))

    def stop(self) -> None:
        self._stopping = True

    async def wait_done(self, count: int) -> None:
        while self.done < count:
            self._progress.clear()
            await self._progress.wait()

    async def _caller(self, i: int) -> None:
        n = 0
        while not self._stopping:
            name = f"{i}-{n}"
            try:
                reply = await self.greeter.say_hello(Hello(name=name), timeout=30)
                if reply.text != f"hello {name}":
                    self.failures.append(AssertionError(reply.text))
            except busrpc.RpcError as exc:
                self.failures.append(exc)
            n += 1
            self.done += 1
            self._progress.set()


async def test_shutdown_under_load_loses_no_call(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    servers: deque[busrpc.Server] = deque()

    async def start_server() -> None:
        server = busrpc.Server(await open_bus(), Greeter(), namespace=ns, shutdown_grace=30)
        servers.append(await server.__aenter__())

    for _ in range(3):
        await start_server()
    load = Load(busrpc.client(Greeter, bus, namespace=ns))
    stopped: list[busrpc.Server] = []
    running = asyncio.create_task(load.run())
    try:
        async with asyncio.timeout(120):  # a hang guard, not a timing
            for _ in range(ROUNDS):
                await load.wait_done(load.done + CALLS_PER_ROUND)
                leaving = servers.popleft()
                await leaving.shutdown()  # mid-load: the callers never pause
                stopped.append(leaving)
                await start_server()
            await load.wait_done(load.done + CALLS_PER_ROUND)
            load.stop()
            await running
    finally:
        running.cancel()
        await asyncio.wait([running])
        for server in servers:
            await server.shutdown()
    assert load.failures == [], (len(load.failures), load.failures[:5])
    assert len(stopped) == ROUNDS
    assert all(s.statistics().in_flight == 0 for s in stopped)
    served = sum(s.statistics().succeeded for s in [*stopped, *servers])
    assert served == load.done


async def test_kill_during_a_shutdown_ends_it_at_once(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    sleeper = Sleeper()  # its handlers never end unless cancelled
    client = busrpc.client(Sleeper, bus, namespace=ns)
    server = busrpc.Server(peer_bus, sleeper, namespace=ns)
    await server.__aenter__()
    try:
        call = asyncio.create_task(client.nap(Hello(name="stuck"), timeout=30))
        async with asyncio.timeout(5):  # a hang guard, not a timing
            await sleeper.wait_started(1)
            shutdown = asyncio.create_task(server.shutdown(grace=30))
            await step(5)
            assert not shutdown.done()  # waiting for the stuck call, for up to 30 s
            await server.kill()
            await shutdown
            with pytest.raises(busrpc.Unavailable):
                await call
    finally:
        await _stop(server, sleeper)
    assert sleeper.cancelled == ["stuck"]
    assert server.statistics().in_flight == 0


async def test_a_cancelled_kill_leaves_the_server_stoppable(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    sleeper = Sleeper()
    client = busrpc.client(Sleeper, bus, namespace=ns)
    server = busrpc.Server(peer_bus, sleeper, namespace=ns)
    await server.__aenter__()
    try:
        call = asyncio.create_task(client.nap(Hello(name="stuck"), timeout=30))
        async with asyncio.timeout(5):  # a hang guard, not a timing
            await sleeper.wait_started(1)
            for k in range(20):  # cancel the first kill at each of its awaits
                first = asyncio.create_task(server.kill())
                await step(k)
                if first.done():
                    break
                first.cancel()
                await asyncio.wait([first])
                if not first.cancelled():
                    break
            await server.kill()  # whatever the first one left, this one finishes
            await server.shutdown()
            await server.wait_closed()
            with pytest.raises(busrpc.Unavailable):
                await call
    finally:
        await _stop(server, sleeper)


async def _stop(server: busrpc.Server, sleeper: Sleeper) -> None:
    """Stop *server* after a test, even one that failed because kill hung: its stuck
    handlers are released first, so nothing waits on them."""
    sleeper.release.set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await server.kill()


async def test_a_second_shutdown_waits_for_the_first(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    sleeper = Sleeper()
    client = busrpc.client(Sleeper, bus, namespace=ns)
    server = busrpc.Server(peer_bus, sleeper, namespace=ns)
    async with server:
        call = asyncio.create_task(client.nap(Hello(name="finishing"), timeout=30))
        async with asyncio.timeout(10):  # a hang guard, not a timing
            await sleeper.wait_started(1)
            first = asyncio.create_task(server.shutdown(grace=30))
            await step(5)
            second = asyncio.create_task(server.shutdown())
            await step(5)
            # The call still runs: neither shutdown may have returned.
            assert not first.done() and not second.done()
            sleeper.release.set()
            await second
            assert first.done()  # the second returned only once the first had finished
            reply = await call
    assert reply.text == "nap finishing"
    assert sleeper.finished == ["finishing"]
    assert server.statistics().succeeded == 1
