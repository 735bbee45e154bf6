"""Affinity calls: servers bid for each call, `SelectionOpts` decides, one server runs it.

Timeouts that must not matter are 30 s inside a 5 s guard: a call that waited for them
fails the guard instead of passing slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest

import busrpc
from busrpc import Claim, MessageBus, SelectionOpts

from .conftest import OpenBus
from .services import Job, Worker


@contextlib.asynccontextmanager
async def serving(open_bus: OpenBus, ns: str, workers: dict[str, Worker]) -> AsyncIterator[None]:
    """Serve each worker on its own connection, with the dict key as its server id.

    On exit, bid gates open first, so shutdown does not wait for a bid in progress."""
    async with contextlib.AsyncExitStack() as stack:
        for server_id, worker in workers.items():
            server = busrpc.Server(await open_bus(), worker, namespace=ns, server_id=server_id)
            await stack.enter_async_context(server)
        try:
            yield
        finally:
            for worker in workers.values():
                if worker.bid_gate is not None:
                    worker.bid_gate.set()


def ran_on(workers: dict[str, Worker]) -> dict[str, list[int]]:
    return {sid: w.jobs for sid, w in workers.items() if w.jobs}


async def test_the_highest_bid_wins(bus: MessageBus, open_bus: OpenBus, ns: str) -> None:
    workers = {"low": Worker(0.2), "high": Worker(0.9), "mid": Worker(0.5)}
    opts = SelectionOpts(affinity_timeout=1, short_circuit_timeout=None)  # every bid is in
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        done = await client.work(Job(id=1), selection=opts)
    assert done.server == "high"
    assert ran_on(workers) == {"high": [1]}


async def test_minimum_affinity_ignores_low_bids(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"low": Worker(0.2), "ok": Worker(0.7)}
    opts = SelectionOpts(minimum_affinity=0.5, accept_first_available=True)
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):
            done = await client.work(Job(id=1), selection=opts, timeout=30)
    assert done.server == "ok"
    assert ran_on(workers) == {"ok": [1]}


async def test_minimum_affinity_with_no_qualifying_bid_is_unavailable(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"a": Worker(0.2), "b": Worker(0.3)}
    opts = SelectionOpts(minimum_affinity=0.5, affinity_timeout=0.5)
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):
            with pytest.raises(busrpc.Unavailable):
                await client.work(Job(id=1), selection=opts, timeout=30)
    assert ran_on(workers) == {}


async def test_maximum_affinity_takes_a_high_enough_bid_at_once(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"a": Worker(0.5), "best": Worker(1.0), "c": Worker(0.7)}
    # Without maximum_affinity this would collect bids for the whole 30 s.
    opts = SelectionOpts(maximum_affinity=0.9, short_circuit_timeout=None)
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):
            done = await client.work(Job(id=1), selection=opts, timeout=30)
    assert done.server == "best"
    assert ran_on(workers) == {"best": [1]}


async def test_accept_first_available_does_not_wait_for_more_bids(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"a": Worker(0.1), "b": Worker(0.2)}
    opts = SelectionOpts(accept_first_available=True, short_circuit_timeout=None)
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):
            done = await client.work(Job(id=1), selection=opts, timeout=30)
    assert done.server in workers
    assert ran_on(workers) == {done.server: [1]}


async def test_affinity_timeout_stops_collecting_bids(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    # "slow" would win, but bids only after the test ends.
    workers = {"quick": Worker(0.3), "slow": Worker(0.9, bid_gate=asyncio.Event())}
    opts = SelectionOpts(affinity_timeout=1, short_circuit_timeout=None)
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):
            done = await client.work(Job(id=1), selection=opts, timeout=30)
    assert done.server == "quick"
    assert ran_on(workers) == {"quick": [1]}


async def test_short_circuit_timeout_stops_after_the_first_bid(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"quick": Worker(0.3), "slow": Worker(0.9, bid_gate=asyncio.Event())}
    opts = SelectionOpts(short_circuit_timeout=0.3)
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):
            done = await client.work(Job(id=1), selection=opts, timeout=30)
    assert done.server == "quick"
    assert ran_on(workers) == {"quick": [1]}


async def test_custom_select_chooses_among_the_valid_bids(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"a": Worker(0.9), "b": Worker(0.1), "c": Worker(0.5), "no": Worker(0.05)}
    seen: list[list[Claim]] = []

    def lowest(claims: Sequence[Claim]) -> str:
        seen.append(list(claims))
        return min(claims, key=lambda c: c.affinity).server_id

    opts = SelectionOpts(
        minimum_affinity=0.08, affinity_timeout=1, short_circuit_timeout=None, select=lowest
    )
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        done = await client.work(Job(id=1), selection=opts)
    assert done.server == "b"
    assert ran_on(workers) == {"b": [1]}
    assert len(seen) == 1
    assert sorted((c.server_id, c.affinity) for c in seen[0]) == [
        ("a", 0.9),
        ("b", 0.1),
        ("c", 0.5),
    ]


async def test_custom_select_may_refuse_with_an_rpc_error(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"a": Worker(0.5)}

    def refuse(claims: Sequence[Claim]) -> str:
        raise busrpc.RpcError("resource_exhausted", "all busy")

    opts = SelectionOpts(select=refuse)
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        with pytest.raises(busrpc.RpcError) as info:
            await client.work(Job(id=1), selection=opts)
    assert info.value.code is busrpc.ErrorCode.RESOURCE_EXHAUSTED
    assert ran_on(workers) == {}


async def test_negative_affinity_is_no_bid(bus: MessageBus, open_bus: OpenBus, ns: str) -> None:
    workers = {"declines": Worker(-1.0), "takes": Worker(0.1)}
    opts = SelectionOpts(accept_first_available=True)
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):
            done = await client.work(Job(id=1), selection=opts, timeout=30)
    assert done.server == "takes"
    assert ran_on(workers) == {"takes": [1]}


async def test_only_negative_bids_is_unavailable(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"declines": Worker(-1.0)}
    opts = SelectionOpts(affinity_timeout=0.5)
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):
            with pytest.raises(busrpc.Unavailable):
                await client.work(Job(id=1), selection=opts, timeout=30)
    assert ran_on(workers) == {}


async def test_no_server_is_unavailable_at_once(bus: MessageBus, ns: str) -> None:
    client = busrpc.client(Worker, bus, namespace=ns)
    async with asyncio.timeout(5):
        with pytest.raises(busrpc.Unavailable, match=f"{ns}.worker.work"):
            opts = SelectionOpts(short_circuit_timeout=None)  # would collect until the deadline
            await client.work(Job(id=1), selection=opts, timeout=30)


async def test_direct_call_skips_the_bidding(bus: MessageBus, open_bus: OpenBus, ns: str) -> None:
    workers = {"a": Worker(0.9), "b": Worker(-1.0)}
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        done = await client.work(Job(id=7), server_id="b")
    assert done.server == "b"
    assert ran_on(workers) == {"b": [7]}
