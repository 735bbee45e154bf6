"""MessageBus basics, the same on every bus."""

from __future__ import annotations

import uuid

from busrpc import ClosedResourceError, Message, MessageBus
from busrpc.testing import BusFactory, check_message_bus


async def test_check_message_bus_passes(make_bus: BusFactory) -> None:
    await check_message_bus(make_bus)


async def test_subscription_is_live_once_entered(bus: MessageBus, peer_bus: MessageBus) -> None:
    subject = f"conf.{uuid.uuid4().hex[:8]}.live"
    async with bus.subscribe(subject) as sub:
        await peer_bus.publish(Message(subject=subject, data=b"1"))
        assert (await sub.receive()).data == b"1"


async def test_queue_group_and_plain_subscriber_on_one_connection(bus: MessageBus) -> None:
    subject = f"conf.{uuid.uuid4().hex[:8]}.mixed"
    async with (
        bus.subscribe(subject, queue="q") as member,
        bus.subscribe(subject) as plain,
    ):
        await bus.publish(Message(subject, b"a"))
        await bus.publish(Message(subject, b"b"))
        assert [(await member.receive()).data for _ in range(2)] == [b"a", b"b"]
        assert [(await plain.receive()).data for _ in range(2)] == [b"a", b"b"]
        assert member.statistics().delivered == 2


async def test_publish_after_close_raises(make_bus: BusFactory) -> None:
    async with make_bus() as bus:
        pass
    try:
        await bus.publish(Message("conf.closed", b""))
    except ClosedResourceError:
        return
    raise AssertionError("publish on a closed bus must raise ClosedResourceError")
