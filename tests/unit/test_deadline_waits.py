"""Every wait of a call honours its deadline, even a publish that blocks.

A memory-bus subscription with ``Overflow.BLOCK`` and a full buffer makes a publish to its
subject wait for room: a stand-in for a stalled socket or a broker pushing back. Nothing
here may outlast the call's deadline, and the connection must still work afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

import busrpc
from busrpc import Message
from busrpc.bus import Overflow, Subscription
from busrpc.bus.memory import MemoryBus
from busrpc.rpc import Next, RpcClient


@busrpc.service("stalled")
class Stalled:
    @busrpc.rpc
    async def echo(self, text: str) -> str:
        return text

    @busrpc.rpc(multi=True)
    async def poll(self, text: str) -> str:
        return text

    @busrpc.rpc(affinity=True)
    async def place(self, text: str) -> str:
        return text

    async def place_affinity(self, text: str) -> float:
        return 1.0


@contextlib.asynccontextmanager
async def blocked(
    bus: MemoryBus, subject: str, filler: str | None = None
) -> AsyncIterator[Subscription]:
    """A never-read subscription on *subject* whose one-message buffer is full (filled by
    a message to *filler*, default *subject*): every further publish it matches waits
    for room, until it closes."""
    async with bus.subscribe(subject, max_pending=1, overflow=Overflow.BLOCK) as sub:
        await bus.publish(Message(filler or subject, b'"filler"'))
        assert sub.statistics().pending == 1
        yield sub


@pytest.fixture
def broker() -> str:
    return f"deadline-waits-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("warm", [False, True], ids=["first-call", "warm-connection"])
async def test_a_blocked_publish_fails_at_the_deadline(broker: str, warm: bool) -> None:
    async with MemoryBus(broker) as server_bus, MemoryBus(broker) as bus:
        client = busrpc.client(Stalled, bus)
        async with busrpc.Server(server_bus, Stalled()):
            if warm:
                assert await client.echo("warm", timeout=30) == "warm"
            async with blocked(bus, "stalled.echo"), asyncio.timeout(5):  # a hang guard
                with pytest.raises(busrpc.DeadlineExceeded):
                    await client.echo("stuck", timeout=0.2)
            # The blocking subscriber is gone: the same connection calls as before.
            async with asyncio.timeout(5):
                assert await client.echo("after", timeout=30) == "after"
                assert await client.echo("again", timeout=30) == "again"


async def test_a_blocked_publish_with_interceptors_fails_at_the_deadline(broker: str) -> None:
    seen: list[str] = []

    async def interceptor(call: busrpc.Call, next_: Next) -> object:
        seen.append(call.subject)
        return await next_(call)

    async with MemoryBus(broker) as server_bus, MemoryBus(broker) as bus:
        client = busrpc.client(Stalled, bus, interceptors=[interceptor])
        async with busrpc.Server(server_bus, Stalled()):
            async with blocked(bus, "stalled.echo"), asyncio.timeout(5):
                with pytest.raises(busrpc.DeadlineExceeded):
                    await client.echo("stuck", timeout=0.2)
            async with asyncio.timeout(5):
                assert await client.echo("after", timeout=30) == "after"
    assert seen == ["stalled.echo", "stalled.echo"]


async def test_a_blocked_multi_publish_ends_the_iteration_at_the_deadline(broker: str) -> None:
    async with MemoryBus(broker) as server_bus, MemoryBus(broker) as bus:
        client = busrpc.client(Stalled, bus)
        async with busrpc.Server(server_bus, Stalled()):
            async with blocked(bus, "stalled.poll"), asyncio.timeout(5):
                got = [r async for r in client.poll("stuck", timeout=0.2)]
            async with asyncio.timeout(5):
                after = [r.unwrap() async for r in client.poll("after", timeout=30, expect=1)]
    assert len(got) <= 1  # the server may have heard it before the blocking subscriber
    assert after == ["after"]


async def test_a_blocked_affinity_claim_fails_at_the_deadline(broker: str) -> None:
    async with MemoryBus(broker) as server_bus, MemoryBus(broker) as bus:
        client = busrpc.client(Stalled, bus)
        opts = busrpc.SelectionOpts(accept_first_available=True)
        async with busrpc.Server(server_bus, Stalled()):
            assert await client.place("warm", timeout=30, selection=opts) == "warm"
            async with blocked(bus, "stalled.place._claim"), asyncio.timeout(5):
                with pytest.raises(busrpc.DeadlineExceeded):
                    await client.place("stuck", timeout=0.2, selection=opts)
            async with asyncio.timeout(5):
                assert await client.place("after", timeout=30, selection=opts) == "after"


async def test_a_reply_blocked_on_the_server_side_does_not_stall_the_server(broker: str) -> None:
    # The caller's reply subject is full: the server's reply publish waits for room. It
    # must give up at the call's deadline, and the server serve its other callers.
    async with (
        MemoryBus(broker) as server_bus,
        MemoryBus(broker) as bus,
        MemoryBus(broker) as other_bus,
    ):
        client = busrpc.client(Stalled, bus)
        other = busrpc.client(Stalled, other_bus)
        async with busrpc.Server(server_bus, Stalled(), max_concurrency=1) as server:
            client_id = RpcClient(bus).client_id
            async with asyncio.timeout(10):  # a hang guard
                assert await client.echo("warm", timeout=30) == "warm"
                async with blocked(bus, f"_INBOX.{client_id}.>", f"_INBOX.{client_id}.x"):
                    # Whether the caller's own inbox got the reply first does not matter.
                    with contextlib.suppress(busrpc.DeadlineExceeded):
                        await client.echo("stuck", timeout=0.2)
                    # One worker, its reply publish blocked: served only if it gave up.
                    assert await other.echo("other", timeout=30) == "other"
                assert await client.echo("after", timeout=30) == "after"
            stats = server.statistics()
    assert stats.in_flight == 0


@busrpc.service("full")
class Full:
    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @busrpc.rpc
    async def hold(self, text: str) -> str:
        self.entered.set()
        await self.release.wait()
        return text


async def test_a_refusal_blocked_on_its_way_does_not_hold_up_the_next_ones(broker: str) -> None:
    # Refusals go out through the server's outbox, one after another: one whose publish
    # blocks (its caller's inbox is full) must give up at that caller's deadline.
    async with (
        MemoryBus(broker) as server_bus,
        MemoryBus(broker) as bus_a,
        MemoryBus(broker) as bus_b,
    ):
        service = Full()
        server = busrpc.Server(server_bus, service, max_concurrency=1, max_pending=1)
        client_a, client_b = busrpc.client(Full, bus_a), busrpc.client(Full, bus_b)
        async with server, asyncio.timeout(10):  # a hang guard, not a timing
            a_id = RpcClient(bus_a).client_id
            for bus in (bus_a, bus_b):  # both reply inboxes live
                assert await RpcClient(bus).describe("full", deadline=busrpc.Deadline.after(5))
            running = asyncio.create_task(client_b.hold("running", timeout=30))
            await service.entered.wait()
            waiting = asyncio.create_task(client_b.hold("waiting", timeout=30))
            while server.statistics().received < 2:
                await asyncio.wait([waiting], timeout=0)  # one loop step, nothing awaited
            async with blocked(bus_a, f"_INBOX.{a_id}.>", f"_INBOX.{a_id}.x"):
                with contextlib.suppress(busrpc.RpcError):
                    await client_a.hold("refused, stuck", timeout=0.3)
                with pytest.raises(busrpc.RpcError) as refused:
                    await client_b.hold("refused", timeout=30)
            assert refused.value.code is busrpc.ErrorCode.RESOURCE_EXHAUSTED
            service.release.set()
            assert await running == "running"
            assert await waiting == "waiting"
