"""Topics: servers choose the topics they serve; calls name one."""

from __future__ import annotations

import asyncio

import pytest

import busrpc
from busrpc import MessageBus

from .services import Hello, Regions


async def test_calls_reach_the_server_of_their_topic(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    eu, us = Regions("eu"), Regions("us")
    async with (
        busrpc.Server(peer_bus, eu, namespace=ns, topics={Regions.region_stats: ["eu"]}),
        busrpc.Server(bus, us, namespace=ns) as us_server,
    ):
        await us_server.register_topic(Regions.region_stats, "us")
        client = busrpc.client(Regions, bus, namespace=ns)
        assert (await client.region_stats(Hello(name="1"), topic="eu")).text == "eu 1"
        assert (await client.region_stats(Hello(name="2"), topic="us")).text == "us 2"
        assert (await client.region_stats(Hello(name="3"), topic="eu")).text == "eu 3"
    assert (eu.calls, us.calls) == (["1", "3"], ["2"])


async def test_a_server_serves_several_topics(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    regions = Regions("multi")
    topics = {Regions.region_stats: ["eu", ("us", "east")]}
    async with busrpc.Server(peer_bus, regions, namespace=ns, topics=topics):
        client = busrpc.client(Regions, bus, namespace=ns)
        await client.region_stats(Hello(name="a"), topic="eu")
        await client.region_stats(Hello(name="b"), topic=("us", "east"))
        async with asyncio.timeout(5):
            with pytest.raises(busrpc.Unavailable, match=f"{ns}.regions.region_stats.us"):
                await client.region_stats(Hello(name="c"), topic="us", timeout=30)
    assert regions.calls == ["a", "b"]


async def test_deregistered_topic_is_no_longer_served(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    regions = Regions("eu")
    async with busrpc.Server(peer_bus, regions, namespace=ns) as server:
        await server.register_topic(Regions.region_stats, "eu")
        client = busrpc.client(Regions, bus, namespace=ns)
        assert (await client.region_stats(Hello(name="1"), topic="eu")).text == "eu 1"
        await server.deregister_topic(Regions.region_stats, "eu")
        async with asyncio.timeout(5):
            with pytest.raises(busrpc.Unavailable, match=f"{ns}.regions.region_stats.eu"):
                await client.region_stats(Hello(name="2"), topic="eu", timeout=30)
    assert regions.calls == ["1"]


async def test_a_topic_method_needs_a_topic(bus: MessageBus, ns: str) -> None:
    client = busrpc.client(Regions, bus, namespace=ns)
    with pytest.raises(ValueError, match="topic"):
        await client.region_stats(Hello(name="x"))
    with pytest.raises(ValueError, match="topic"):
        async for _ in client.region_ping(Hello(name="x")):
            pass


@pytest.mark.parametrize("topic", ["", "a.b", "*", ">", "@server", "_claim", "has space"])
async def test_invalid_topics_are_refused(bus: MessageBus, ns: str, topic: str) -> None:
    client = busrpc.client(Regions, bus, namespace=ns)
    with pytest.raises(ValueError):
        await client.region_stats(Hello(name="x"), topic=topic)


async def test_multi_calls_are_scoped_to_their_topic(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with (
        busrpc.Server(peer_bus, Regions("eu1"), namespace=ns, server_id="eu1") as eu1,
        busrpc.Server(peer_bus, Regions("eu2"), namespace=ns, server_id="eu2") as eu2,
        busrpc.Server(bus, Regions("us"), namespace=ns, server_id="us") as us,
    ):
        await eu1.register_topic(Regions.region_ping, "eu")
        await eu2.register_topic(Regions.region_ping, "eu")
        await us.register_topic(Regions.region_ping, "us")
        client = busrpc.client(Regions, bus, namespace=ns)
        async with asyncio.timeout(5):
            responses = [
                # The whole window (wide: both eu servers answer in it), so that an
                # answer from "us" would be seen too.
                r
                async for r in client.region_ping(Hello(name="x"), topic="eu", timeout=3)
            ]
    assert sorted(r.server_id for r in responses) == ["eu1", "eu2"]
