"""`busrpc.connect(url)`: the bus for a URL, or a clear error."""

from __future__ import annotations

import asyncio

import pytest

import busrpc
from busrpc.bus.memory import MemoryBus


def test_unknown_scheme_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown bus scheme 'carrier-pigeon'") as info:
        busrpc.connect("carrier-pigeon://loft")
    assert "memory://" in str(info.value) and "nats://" in str(info.value)


def test_url_without_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="no scheme"):
        busrpc.connect("localhost:4222")


def test_no_url_and_no_busrpc_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUSRPC_URL", raising=False)
    with pytest.raises(ValueError, match="BUSRPC_URL"):
        busrpc.connect()


def test_empty_busrpc_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUSRPC_URL", "")
    with pytest.raises(ValueError, match="BUSRPC_URL"):
        busrpc.connect()


async def test_busrpc_url_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUSRPC_URL", "memory://from-env")
    bus = busrpc.connect()
    assert isinstance(bus, MemoryBus) and bus.name == "from-env"


async def test_connect_returns_an_unconnected_bus() -> None:
    bus = busrpc.connect("memory://unconnected")
    with pytest.raises(busrpc.ClosedResourceError):
        await bus.publish(busrpc.Message("x"))
    async with bus:
        await bus.publish(busrpc.Message("x"))


def test_memory_bus_refuses_unknown_options() -> None:
    with pytest.raises(TypeError, match="unknown memory bus options"):
        busrpc.connect("memory://", color="blue")


def test_nats_url_gives_a_nats_bus() -> None:
    from busrpc.bus.nats import NatsBus

    assert isinstance(busrpc.connect("nats://127.0.0.1:4222"), NatsBus)
    assert isinstance(busrpc.connect("tls://127.0.0.1:4222"), NatsBus)


async def test_issue_01_nats_connect_to_a_dead_port_fails_fast() -> None:
    # nats-py alone retries the first connect 60 x 2 s; a user waits for an error instead.
    async with asyncio.timeout(10):  # a guard against the old two-minute hang, not a timing
        with pytest.raises(busrpc.ConnectError, match=r"cannot connect to nats://127\.0\.0\.1:1"):
            async with busrpc.connect("nats://127.0.0.1:1"):
                pass


async def test_nats_url_may_list_several_servers() -> None:
    async with busrpc.connect(
        "nats://127.0.0.1:1,nats://127.0.0.1:4222", connect_attempts=2
    ) as bus:
        await bus.publish(busrpc.Message("busrpc.test.several"))
        assert bus.statistics().published == 1
