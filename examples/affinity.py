"""Affinity: servers score each request, the client picks one, then calls it alone.

Three transcoders bid for a job with their free capacity; one is full and does not bid
(a negative score). `busrpc.SelectionOpts` decides which bid wins.

    python examples/affinity.py [URL]
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence

import msgspec

import busrpc


class Job(msgspec.Struct):
    video: str


class Done(msgspec.Struct):
    video: str
    worker: str


@busrpc.service("transcoder")
class Transcoder:
    def __init__(self, free: float) -> None:
        self.free = free  # share of capacity left: 0.0 .. 1.0

    @busrpc.rpc(affinity=True)
    async def transcode(self, job: Job) -> Done:
        call = busrpc.current_call()
        assert call is not None
        return Done(video=job.video, worker=call.server_id)

    @transcode.affinity  # or name the method transcode_affinity
    def transcode_affinity(self, job: Job) -> float:
        return self.free if self.free > 0 else -1.0  # below 0: no bid at all


def least_free(claims: Sequence[busrpc.Claim]) -> str:
    """A custom choice: pack work onto the busiest server that still bid."""
    return min(claims, key=lambda c: c.affinity).server_id


async def main(bus: busrpc.MessageBus) -> None:
    workers = {"big": Transcoder(0.9), "small": Transcoder(0.3), "full": Transcoder(0.0)}
    async with contextlib.AsyncExitStack() as stack:
        for server_id, worker in workers.items():
            await stack.enter_async_context(busrpc.Server(bus, worker, server_id=server_id))
        transcoder = busrpc.client(Transcoder, bus)
        job = Job(video="cat.mp4")

        # Default: collect bids briefly after the first one, take the highest.
        done = await transcoder.transcode(job, timeout=5)
        print("default ->", done.worker)
        assert done.worker == "big"

        # A custom select function sees every valid claim.
        done = await transcoder.transcode(
            job, timeout=5, selection=busrpc.SelectionOpts(select=least_free)
        )
        print("select=least_free ->", done.worker)
        assert done.worker == "small"

        # maximum_affinity: a bid at or above it wins at once, without waiting for others.
        opts = busrpc.SelectionOpts(maximum_affinity=0.8)
        done = await transcoder.transcode(job, timeout=5, selection=opts)
        assert done.worker == "big"

        # accept_first_available: whoever bids first.
        opts = busrpc.SelectionOpts(accept_first_available=True)
        done = await transcoder.transcode(job, timeout=5, selection=opts)
        print("first available ->", done.worker)
        assert done.worker in ("big", "small")

        # minimum_affinity: bids below it do not count; with none left the call fails.
        opts = busrpc.SelectionOpts(minimum_affinity=0.95, affinity_timeout=0.5)
        try:
            await transcoder.transcode(job, timeout=5, selection=opts)
        except busrpc.Unavailable as exc:
            print("minimum_affinity=0.95 ->", exc)
        else:
            raise AssertionError("no server should qualify")

        # A direct call skips the bidding entirely.
        done = await transcoder.transcode(job, timeout=5, server_id="full")
        assert done.worker == "full"


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
