"""busrpc.testing: the kit users test their services and transports with."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest

import busrpc
from busrpc import Message
from busrpc.bus import DEFAULT_MAX_PENDING, Overflow
from busrpc.bus.memory import MemorySubscription
from busrpc.testing import MEMORY_TEST_BROKER, MemoryBus, check_message_bus, open_test_bus


class QueueBlindBus(MemoryBus):
    """Broken on purpose: treats every queue subscriber as a plain one."""

    def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> MemorySubscription:
        return super().subscribe(subject, max_pending=max_pending, overflow=overflow)


class DeafBus(MemoryBus):
    """Broken on purpose: publish() goes nowhere."""

    async def publish(self, message: Message) -> None:
        pass


async def test_check_message_bus_finds_a_broken_queue_group() -> None:
    name = f"kit-{uuid.uuid4().hex}"
    with pytest.raises(AssertionError) as info:
        await check_message_bus(lambda: QueueBlindBus(name))
    assert "[queue_group_delivers_each_message_once]" in str(info.value)
    assert "exactly one member" in str(info.value)


async def test_check_message_bus_reports_messages_that_never_arrive() -> None:
    name = f"kit-{uuid.uuid4().hex}"
    with pytest.raises(AssertionError) as info:
        await check_message_bus(lambda: DeafBus(name), max_wait=0.1)
    message = str(info.value)
    assert "[subscription_is_live_once_entered] a message did not arrive within 0.1 s" in message
    assert "[wildcards]" in message


async def test_open_test_bus_memory_connections_share_one_broker() -> None:
    subject = f"kit.{uuid.uuid4().hex}"
    async with open_test_bus("memory") as a, open_test_bus("memory") as b:
        assert isinstance(a, MemoryBus) and a.name == MEMORY_TEST_BROKER
        async with a.subscribe(subject) as sub:
            await b.publish(Message(subject, b"x"))
            assert (await sub.receive()).data == b"x"


async def test_open_test_bus_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown test bus 'carrier-pigeon'"):
        async with open_test_bus("carrier-pigeon"):
            pass


async def test_open_test_bus_fails_clearly_when_the_broker_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"nats://127.0.0.1:{port}"
    monkeypatch.setenv("BUSRPC_TEST_NATS_URL", url)
    with pytest.raises(busrpc.ConnectError) as info:
        async with open_test_bus("nats"):
            pass
    message = str(info.value)
    assert url in message
    assert "scripts/start-brokers nats" in message
    assert "BUSRPC_TEST_NATS_URL" in message


def test_test_buses_come_from_the_environment() -> None:
    code = "from busrpc.testing import TEST_BUSES; print(','.join(TEST_BUSES))"

    def run(value: str | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "BUSRPC_TEST_BUSES"}
        if value is not None:
            env["BUSRPC_TEST_BUSES"] = value
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert run(None) == "memory,nats"
    assert run(" Memory , ") == "memory"
    assert run("nats,memory") == "nats,memory"


async def test_memory_bus_fixture_is_entered_and_private(memory_bus: MemoryBus) -> None:
    assert memory_bus.name != MEMORY_TEST_BROKER
    async with memory_bus.subscribe("fixture") as sub:
        await memory_bus.publish(Message("fixture", b"1"))
        assert (await sub.receive()).data == b"1"
