"""Cancellation is safe and travels: a caller cancelled at any await leaves its connection
working, and the cancel reaches the server, which stops that handler (and no other).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import msgspec
import pytest

import busrpc
from busrpc import Message, MessageBus, Response
from busrpc.rpc import RpcClient
from busrpc.testing import BusFactory

from .conftest import OpenBus
from .services import Greeter, Greeting, Hello, Sleeper

MAX_STEPS = 400  # far more loop iterations than any first call takes to complete


async def step(n: int = 1) -> None:
    """Let the loop run *n* iterations, without sleeping."""
    loop = asyncio.get_running_loop()
    for _ in range(n):
        fut: asyncio.Future[None] = loop.create_future()
        loop.call_soon(fut.set_result, None)
        await fut


async def test_cancelling_the_first_call_at_every_step_leaves_the_connection_working(
    make_bus: BusFactory, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Greeter(), namespace=ns):
        async with make_bus() as clean:  # what a connection holds after one call
            greeter = busrpc.client(Greeter, clean, namespace=ns)
            assert (await greeter.say_hello(Hello(name="clean"), timeout=30)).text == "hello clean"
            expected = clean.statistics().subscriptions
        for k in range(MAX_STEPS):
            async with make_bus() as fresh, asyncio.timeout(10):
                greeter = busrpc.client(Greeter, fresh, namespace=ns)
                first = asyncio.create_task(greeter.say_hello(Hello(name="first"), timeout=30))
                await step(k)
                finished_by_itself = first.done()
                first.cancel()
                await asyncio.wait([first])
                reply = await greeter.say_hello(Hello(name=f"next {k}"), timeout=30)
                assert reply.text == f"hello next {k}", k
                assert fresh.statistics().subscriptions == expected, k
            if finished_by_itself:
                break  # every earlier step has had its cancel
        else:
            pytest.fail(f"the first call did not finish in {MAX_STEPS} loop iterations")
    assert k > 0


async def test_cancelling_a_call_at_every_step_on_a_warm_connection(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Greeter(), namespace=ns):
        greeter = busrpc.client(Greeter, bus, namespace=ns)
        await greeter.say_hello(Hello(name="warm up"), timeout=30)
        for k in range(MAX_STEPS):
            async with asyncio.timeout(10):
                call = asyncio.create_task(greeter.say_hello(Hello(name=f"c{k}"), timeout=30))
                await step(k)
                finished_by_itself = call.done()
                call.cancel()
                await asyncio.wait([call])
                reply = await greeter.say_hello(Hello(name=f"n{k}"), timeout=30)
                assert reply.text == f"hello n{k}", k
            if finished_by_itself:
                break
        else:
            pytest.fail(f"a call did not finish in {MAX_STEPS} loop iterations")


async def test_cancelling_the_caller_cancels_the_handler_and_sends_no_reply(
    bus: MessageBus, peer_bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    sleeper = Sleeper()
    client = busrpc.client(Sleeper, bus, namespace=ns)
    monitor = await open_bus()
    async with busrpc.Server(peer_bus, sleeper, namespace=ns, max_concurrency=1) as server:
        # Every reply to this client goes through the inbox subject prefix: watch it.
        client_id = RpcClient(bus).client_id
        async with monitor.subscribe(f"_INBOX.{client_id}.>") as replies, asyncio.timeout(10):
            call = asyncio.create_task(client.nap(Hello(name="left"), timeout=30))
            await sleeper.wait_started(1)
            call.cancel()
            await sleeper.wait_cancelled(1)
            with pytest.raises(asyncio.CancelledError):
                await call
            # The one worker takes the next call only once the cancelled one is done, so
            # a reply to it would have been sent before this one's.
            sleeper.release.set()
            assert (await client.nap(Hello(name="fence"), timeout=30)).text == "nap fence"
            got = await replies.receive()
            stats = server.statistics()
    assert msgspec.json.decode(got.data, type=Greeting).text == "nap fence"
    assert replies.statistics().pending == 0
    assert sleeper.cancelled == ["left"]
    assert sleeper.finished == ["fence"]
    assert (stats.cancelled, stats.succeeded, stats.failed, stats.in_flight) == (1, 1, 0, 0)


async def test_an_enclosing_timeout_cancels_the_handler(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    sleeper = Sleeper()
    client = busrpc.client(Sleeper, bus, namespace=ns)
    loop = asyncio.get_running_loop()
    async with busrpc.Server(peer_bus, sleeper, namespace=ns) as server:
        scope = asyncio.timeout(None)

        async def caller() -> Greeting:
            async with scope:
                return await client.nap(Hello(name="timed out"), timeout=30)

        call = asyncio.create_task(caller())
        async with asyncio.timeout(10):
            await sleeper.wait_started(1)
            scope.reschedule(loop.time())  # the caller's own timeout fires now
            with pytest.raises(TimeoutError) as info:
                await call
            await sleeper.wait_cancelled(1)
        stats = server.statistics()
    assert not isinstance(info.value, busrpc.DeadlineExceeded)  # the caller's, not ours
    assert sleeper.cancelled == ["timed out"]
    assert (stats.cancelled, stats.expired, stats.succeeded, stats.failed) == (1, 0, 0, 0)


async def test_cancelling_one_call_cancels_no_other(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    sleeper = Sleeper()
    client = busrpc.client(Sleeper, bus, namespace=ns)
    async with busrpc.Server(peer_bus, sleeper, namespace=ns) as server:
        async with asyncio.timeout(10):
            left = asyncio.create_task(client.nap(Hello(name="left"), timeout=30))
            stays = asyncio.create_task(client.nap(Hello(name="stays"), timeout=30))
            await sleeper.wait_started(2)
            left.cancel()
            await sleeper.wait_cancelled(1)
            sleeper.release.set()
            reply = await stays
            await asyncio.wait([left])
        stats = server.statistics()
    assert left.cancelled()
    assert reply.text == "nap stays"
    assert sleeper.cancelled == ["left"]
    assert sleeper.finished == ["stays"]
    assert (stats.cancelled, stats.succeeded) == (1, 1)


async def test_cancelling_a_call_waiting_for_a_worker_never_runs_it(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    sleeper = Sleeper()
    client = busrpc.client(Sleeper, bus, namespace=ns)
    async with (
        busrpc.Server(peer_bus, sleeper, namespace=ns, max_concurrency=1) as server,
        # On the server's own connection: a cancel this sees, the server has seen too
        # (delivered in the same loop iteration), give or take a step.
        peer_bus.subscribe(f"{ns}.sleeper._cancel") as cancels,
        asyncio.timeout(10),
    ):
        running = asyncio.create_task(client.nap(Hello(name="running"), timeout=30))
        await sleeper.wait_started(1)
        waiting = asyncio.create_task(client.nap(Hello(name="waiting"), timeout=30))
        while server.statistics().received < 2:  # queued behind the one worker
            await step()
        waiting.cancel()
        await asyncio.wait([waiting])
        await cancels.receive()
        await step(2)
        sleeper.release.set()
        await running
        stats = server.statistics()
    assert waiting.cancelled()
    assert sleeper.started == ["running"]
    assert (stats.cancelled, stats.succeeded, stats.in_flight) == (1, 1, 0)


@contextlib.asynccontextmanager
async def serving_sleepers(open_bus: OpenBus, ns: str, n: int) -> AsyncIterator[list[Sleeper]]:
    sleepers = [Sleeper() for _ in range(n)]
    async with contextlib.AsyncExitStack() as stack:
        servers = []
        for i, sleeper in enumerate(sleepers):
            server = busrpc.Server(await open_bus(), sleeper, namespace=ns, server_id=f"s{i}")
            servers.append(await stack.enter_async_context(server))
        try:
            yield sleepers
        finally:
            for sleeper in sleepers:
                sleeper.release.set()


async def test_cancelling_a_multi_iteration_cancels_every_handler(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    client = busrpc.client(Sleeper, bus, namespace=ns)
    async with serving_sleepers(open_bus, ns, 3) as sleepers, asyncio.timeout(10):

        async def iterate() -> list[Response[Greeting]]:
            return [r async for r in client.naps(Hello(name="all"), timeout=30)]

        gathering = asyncio.create_task(iterate())
        for sleeper in sleepers:
            await sleeper.wait_started(1)
        gathering.cancel()
        for sleeper in sleepers:
            await sleeper.wait_cancelled(1)
        await asyncio.wait([gathering])
    assert gathering.cancelled()
    assert [s.cancelled for s in sleepers] == [["all"]] * 3
    assert [s.finished for s in sleepers] == [[]] * 3


async def test_a_forged_cancel_for_an_unknown_call_changes_nothing(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    sleeper = Sleeper()
    client = busrpc.client(Sleeper, bus, namespace=ns)
    async with busrpc.Server(peer_bus, sleeper, namespace=ns) as server:
        async with asyncio.timeout(10):
            call = asyncio.create_task(client.nap(Hello(name="kept"), timeout=30))
            await sleeper.wait_started(1)
            for data in (b"", b"_INBOX.nobody.1t1.d1", b"\xff\xfe" * 1000, b"x" * 100_000):
                await bus.publish(Message(f"{ns}.sleeper._cancel", data))
            sleeper.release.set()
            reply = await call
        stats = server.statistics()
    assert reply.text == "nap kept"
    assert (stats.cancelled, stats.succeeded) == (0, 1)
