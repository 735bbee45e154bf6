"""Topics: the same method, scoped to a topic (``region.stats.eu``).

Each region's server serves ``region.stats`` on its own topic; the caller names the
topic and only that region answers. Topics can be added while the server runs, and work
with multi methods too.

    python examples/topics.py [URL]
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import msgspec

import busrpc


class StatsQuery(msgspec.Struct):
    metric: str


class RegionStats(msgspec.Struct):
    region: str
    value: int


@busrpc.service("region")
class Region:
    def __init__(self, name: str, value: int) -> None:
        self.name = name
        self.value = value

    @busrpc.rpc(topics=True)
    async def stats(self, req: StatsQuery) -> RegionStats:
        return RegionStats(region=self.name, value=self.value)

    @busrpc.rpc(multi=True, topics=True)
    async def ping(self, req: StatsQuery) -> RegionStats:
        return RegionStats(region=self.name, value=0)


async def main(bus: busrpc.MessageBus) -> None:
    eu, us = Region("eu", 7), Region("us", 11)
    async with contextlib.AsyncExitStack() as stack:
        # Topics to serve from the start, by method.
        await stack.enter_async_context(
            busrpc.Server(bus, eu, topics={Region.stats: ["eu"], Region.ping: ["all"]})
        )
        us_server = await stack.enter_async_context(
            busrpc.Server(bus, us, topics={Region.stats: ["us"], Region.ping: ["all"]})
        )
        regions = busrpc.client(Region, bus)

        for topic, expected in (("eu", 7), ("us", 11)):
            stats = await regions.stats(StatsQuery(metric="rps"), topic=topic, timeout=5)
            print(topic, "->", stats)
            assert stats == RegionStats(region=topic, value=expected)

        # No server on a topic: unavailable at once, not a timeout.
        try:
            await regions.stats(StatsQuery(metric="rps"), topic="ap", timeout=5)
        except busrpc.Unavailable as exc:
            print("ap ->", exc)
        else:
            raise AssertionError("nobody serves region.stats.ap")

        # Serve another topic while running: the us server takes over "ap" too.
        await us_server.register_topic(Region.stats, "ap")
        stats = await regions.stats(StatsQuery(metric="rps"), topic="ap", timeout=5)
        assert stats.region == "us"

        # A topic may have several tokens: ("eu", "west") is region.stats.eu.west.
        await us_server.register_topic(Region.stats, ("us", "east"))
        stats = await regions.stats(StatsQuery(metric="rps"), topic=("us", "east"), timeout=5)
        assert stats.region == "us"

        # Multi on a shared topic: every region answers.
        pings = regions.ping(StatsQuery(metric="up"), topic="all", expect=2, timeout=5)
        answered = sorted([r.unwrap().region async for r in pings])
        print("all ->", answered)
        assert answered == ["eu", "us"]


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
