"""The in-process bus: NATS semantics without a broker."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid

import pytest

from busrpc import ClosedResourceError, Headers, Message, TransportError
from busrpc.bus import Overflow, Subscription, SupportsDrain
from busrpc.testing import MemoryBus, check_message_bus


def fresh() -> MemoryBus:
    """A bus on a broker no other test uses."""
    return MemoryBus(f"unit-{uuid.uuid4().hex}")


async def test_buses_with_the_same_name_share_a_broker() -> None:
    name = f"unit-{uuid.uuid4().hex}"
    async with (
        MemoryBus(name) as a,
        MemoryBus(name) as b,
        MemoryBus(f"{name}-2") as c,
        a.subscribe("s") as sub_a,
        c.subscribe("s") as sub_c,
    ):
        await b.publish(Message("s", b"shared"))
        await c.publish(Message("s", b"separate"))
        assert (await sub_a.receive()).data == b"shared"
        assert (await sub_c.receive()).data == b"separate"
        assert sub_a.statistics().pending == 0  # "separate" did not cross brokers


async def test_queue_group_members_take_turns() -> None:
    async with (
        fresh() as bus,
        bus.subscribe("q", queue="g") as m1,
        bus.subscribe("q", queue="g") as m2,
    ):
        for i in range(4):
            await bus.publish(Message("q", str(i).encode()))
        assert m1.statistics().pending == 2
        assert m2.statistics().pending == 2


async def test_drop_oldest_keeps_the_newest() -> None:
    async with fresh() as bus, bus.subscribe("s", max_pending=2) as sub:
        for i in range(5):
            await bus.publish(Message("s", str(i).encode()))
        assert sub.statistics().dropped == 3
        assert bus.statistics().dropped == 3
        assert [(await sub.receive()).data for _ in range(2)] == [b"3", b"4"]


async def test_block_makes_the_publisher_wait_for_room() -> None:
    async with fresh() as bus, bus.subscribe("s", max_pending=1, overflow=Overflow.BLOCK) as sub:
        await bus.publish(Message("s", b"1"))
        started, published = asyncio.Event(), asyncio.Event()

        async def publish_second() -> None:
            started.set()
            await bus.publish(Message("s", b"2"))
            published.set()

        task = asyncio.create_task(publish_second())
        await started.wait()  # the task ran until publish() had to wait
        assert not published.is_set()
        assert (await sub.receive()).data == b"1"
        await task
        assert published.is_set()
        assert (await sub.receive()).data == b"2"
        assert sub.statistics().dropped == 0


async def test_request_without_subscribers_gets_no_responders() -> None:
    async with fresh() as bus, bus.subscribe("replies.>") as replies:
        await bus.publish(Message("nobody.home", b"{}", reply="replies.1"))
        reply = await replies.receive()
    assert reply.subject == "replies.1"
    assert reply.headers[Headers.ERROR] == "unavailable"
    assert reply.headers[Headers.NATS_ERROR_CODE] == "503"


async def test_publish_without_reply_and_subscribers_is_silent() -> None:
    async with fresh() as bus:
        await bus.publish(Message("nobody.home", b"{}"))
        assert bus.statistics().published == 1


async def test_data_must_be_bytes() -> None:
    async with fresh() as bus:
        with pytest.raises(TypeError, match="bytes"):
            await bus.publish(Message("s", bytearray(b"x")))  # type: ignore[arg-type]


async def test_payload_over_max_payload_is_refused() -> None:
    async with MemoryBus(f"unit-{uuid.uuid4().hex}", max_payload=10) as bus:
        with pytest.raises(TransportError, match="max payload"):
            await bus.publish(Message("s", b"x" * 11))
        await bus.publish(Message("s", b"x" * 10))


@pytest.mark.parametrize("subject", ["", "a..b", "a.>.b", "a b", ".a", "a."])
async def test_invalid_subjects_are_refused(subject: str) -> None:
    async with fresh() as bus:
        with pytest.raises(ValueError):
            bus.subscribe(subject)


async def test_a_bus_is_entered_once() -> None:
    async with fresh() as bus:
        with pytest.raises(RuntimeError):
            await bus.__aenter__()


async def test_publish_before_entering_raises() -> None:
    with pytest.raises(ClosedResourceError, match="enter"):
        await fresh().publish(Message("s"))


async def test_receive_before_entering_the_subscription_raises() -> None:
    async with fresh() as bus:
        with pytest.raises(RuntimeError, match="enter"):
            await bus.subscribe("s").receive()


async def test_closing_the_bus_ends_every_iteration() -> None:
    async with fresh() as bus:
        subs: list[Subscription] = [await bus.subscribe(s).__aenter__() for s in ("a", "b.>")]
        consumers = [asyncio.create_task(_drain(s)) for s in subs]
        await bus.publish(Message("a", b"1"))
        await bus.aclose()
        async with asyncio.timeout(5):
            results = await asyncio.gather(*consumers)
        assert bus.statistics().subscriptions == 0
    assert all(isinstance(r, list) for r in results)


async def _drain(sub: Subscription) -> list[bytes]:
    return [m.data async for m in sub]


async def test_unclosed_bus_warns() -> None:
    bus = fresh()
    await bus.__aenter__()
    with pytest.warns(ResourceWarning, match="unclosed"):
        del bus
        gc.collect()


async def test_memory_bus_passes_the_conformance_checks() -> None:
    name = f"unit-{uuid.uuid4().hex}"
    await check_message_bus(lambda: MemoryBus(name))


async def test_listen_on_a_closed_subscription_reports_the_close_at_once() -> None:
    seen: list[object] = []
    async with MemoryBus("listen-closed") as bus:
        sub = bus.subscribe("a.b")
        async with sub:
            pass
        sub.listen(seen.append)
    assert seen == [None]


async def test_a_refusing_listener_leaves_messages_for_receive() -> None:
    taken: list[bytes] = []

    def listener(message: Message | None) -> bool:
        if message is None:
            return True
        if len(taken) < 1:
            taken.append(message.data)
            return True
        return False  # full: the subscription buffers this one and the next ones

    async with MemoryBus("listen-refuse") as bus, bus.subscribe("a.b") as sub:
        sub.listen(listener)
        for data in (b"1", b"2", b"3"):
            await bus.publish(Message("a.b", data))
        assert taken == [b"1"]
        assert [(await sub.receive()).data for _ in range(2)] == [b"2", b"3"]


async def test_closed_tells_whether_the_bus_is_open() -> None:
    bus = fresh()
    assert bus.closed  # not entered yet
    async with bus:
        assert not bus.closed
    assert bus.closed


async def test_drain_keeps_what_was_routed_and_ends_the_subscription() -> None:
    async with fresh() as bus, bus.subscribe("s") as sub:
        assert isinstance(sub, SupportsDrain)
        for data in (b"1", b"2"):
            await bus.publish(Message("s", data))
        await sub.drain()
        await bus.publish(Message("s", b"after"))  # routed nowhere: the drain is done
        assert [m.data async for m in sub] == [b"1", b"2"]
        with pytest.raises(ClosedResourceError):
            await sub.receive()
        await sub.drain()  # idempotent
        assert sub.statistics().delivered == 2


async def test_drain_gives_a_listener_none_after_the_last_message() -> None:
    seen: list[bytes | None] = []

    def listener(message: Message | None) -> None:
        seen.append(None if message is None else message.data)

    async with fresh() as bus, bus.subscribe("s") as sub:
        sub.listen(listener)
        await bus.publish(Message("s", b"1"))
        await sub.drain()
        await bus.publish(Message("s", b"2"))
    assert seen == [b"1", None]


async def test_drain_takes_in_deliveries_blocked_on_a_full_buffer() -> None:
    async with fresh() as bus, bus.subscribe("s", max_pending=1, overflow=Overflow.BLOCK) as sub:
        await bus.publish(Message("s", b"1"))
        # Tasks start in order: both publishers wait for room before the drain begins.
        blocked = [asyncio.create_task(bus.publish(Message("s", d))) for d in (b"2", b"3")]
        drain = asyncio.create_task(sub.drain())
        async with asyncio.timeout(5):
            await drain  # nobody receives: the drain must not wait for room
            await asyncio.gather(*blocked)
        assert [m.data async for m in sub] == [b"1", b"2", b"3"]


async def test_aclose_after_drain_discards_what_is_left() -> None:
    async with fresh() as bus, bus.subscribe("s") as sub:
        await bus.publish(Message("s", b"1"))
        await sub.drain()
        await sub.aclose()
        assert [m.data async for m in sub] == []


async def test_drain_of_a_subscription_never_entered_closes_it() -> None:
    async with fresh() as bus:
        sub = bus.subscribe("s")
        await sub.drain()
        with pytest.raises(ClosedResourceError):
            await sub.__aenter__()


async def test_each_overflow_episode_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="busrpc.bus")
    async with fresh() as bus, bus.subscribe("s", max_pending=4) as sub:
        for episode in range(2):
            for i in range(10):  # 6 drops, one warning
                await bus.publish(Message("s", str(i).encode()))
            got = []
            async for message in sub:  # the iterator ends the episode, as receive() does
                got.append(message.data)
                if len(got) == 4:
                    break
            assert got == [b"6", b"7", b"8", b"9"], episode
        assert sub.statistics().dropped == 12
    warnings = [r for r in caplog.records if r.getMessage() == "slow consumer: dropping messages"]
    assert len(warnings) == 2
