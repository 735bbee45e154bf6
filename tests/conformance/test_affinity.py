"""Affinity calls: servers bid for each call, `SelectionOpts` decides, one server runs it.

Timeouts that must not matter are 30 s inside a 5 s guard: a call that waited for them
fails the guard instead of passing slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import msgspec
import pytest

import busrpc
from busrpc import Claim, Deadline, Headers, Message, MessageBus, SelectionOpts
from busrpc.rpc import Method, RpcClient

from .conftest import OpenBus
from .services import Done, Job, Worker, served_by


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
    opts = SelectionOpts(affinity_timeout=3, short_circuit_timeout=None)  # every bid is in
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


# -- psrpc parity (issue 02) -----------------------------------------------------------------


class OtherJob(msgspec.Struct):
    """What a client with an outdated schema sends: the servers cannot decode it as a Job."""

    id: str


OTHER_WORK: Method[OtherJob, Done] = Method("worker", "work", OtherJob, Done, affinity=True)


@busrpc.service("worker")
class FaultyScorer:
    """Serves ``worker.work`` like `Worker`, but its scoring function raises."""

    def __init__(self) -> None:
        self.jobs: list[int] = []

    @busrpc.rpc(affinity=True)
    async def work(self, req: Job) -> Done:
        self.jobs.append(req.id)
        return Done(id=req.id, server=served_by())

    async def work_affinity(self, req: Job) -> float:
        raise RuntimeError("scorer bug")


@busrpc.service("tenants")
class TenantWorker:
    """Bids only for calls whose ``tenant`` metadata is its own."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    @busrpc.rpc(affinity=True)
    async def work(self, req: Job) -> Done:
        return Done(id=req.id, server=served_by())

    async def work_affinity(self, req: Job) -> float:
        call = busrpc.current_call()
        if call is None:
            raise RuntimeError("current_call() is not set in the scoring function")
        return 1.0 if call.metadata.get("tenant") == self.tenant else -1.0


def test_selection_defaults_are_psrpcs() -> None:
    # psrpc client.go: DefaultAffinityTimeout = 1 s, DefaultAffinityShortCircuit = 200 ms,
    # the SelectionOpts of affinity methods (pkg/client/options.go).
    opts = SelectionOpts()
    assert (opts.affinity_timeout, opts.short_circuit_timeout) == (1.0, 0.2)
    assert (opts.minimum_affinity, opts.maximum_affinity) == (0.0, 0.0)
    assert not opts.accept_first_available
    assert opts.select is None


async def test_every_server_declining_is_unavailable_when_selection_ends(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"a": Worker(-1.0), "b": Worker(-1.0)}
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):  # the default selection ends after 1 s, not at 30 s
            with pytest.raises(busrpc.Unavailable, match=f"{ns}.worker.work"):
                await client.work(Job(id=1), timeout=30)
    assert ran_on(workers) == {}


async def test_no_bid_at_all_is_unavailable_when_selection_ends(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"silent": Worker(0.9, bid_gate=asyncio.Event())}  # bids after the test
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):
            with pytest.raises(busrpc.Unavailable, match="no response from servers"):
                await client.work(Job(id=1), timeout=30)
    assert ran_on(workers) == {}


async def test_a_request_the_servers_cannot_decode_fails_at_once(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"a": Worker(0.5)}
    opts = SelectionOpts(affinity_timeout=30, short_circuit_timeout=None)
    async with serving(open_bus, ns, workers):
        client = RpcClient(bus, namespace=ns)
        async with asyncio.timeout(5):  # not when the 30 s of selection end
            with pytest.raises(busrpc.RpcError) as info:
                await client.unary(
                    OTHER_WORK, OtherJob(id="x"), deadline=Deadline.after(30), selection=opts
                )
    assert info.value.code is busrpc.ErrorCode.MALFORMED_REQUEST
    assert ran_on(workers) == {}


async def test_custom_select_is_never_called_without_a_valid_bid(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"declines": Worker(-1.0), "low": Worker(0.1)}
    calls: list[list[Claim]] = []

    def record(claims: Sequence[Claim]) -> str:
        calls.append(list(claims))
        return claims[0].server_id

    opts = SelectionOpts(minimum_affinity=0.5, affinity_timeout=0.5, select=record)
    async with serving(open_bus, ns, workers):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):
            with pytest.raises(busrpc.Unavailable, match="received 1 claims"):
                await client.work(Job(id=1), selection=opts, timeout=30)
    assert calls == []
    assert ran_on(workers) == {}


async def test_a_scorer_that_raises_is_no_bid_and_another_server_wins(
    bus: MessageBus, peer_bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    faulty = FaultyScorer()
    workers = {"ok": Worker(0.1)}
    opts = SelectionOpts(affinity_timeout=3, short_circuit_timeout=None)  # every bid is in
    async with (
        busrpc.Server(peer_bus, faulty, namespace=ns, server_id="faulty"),
        serving(open_bus, ns, workers),
    ):
        client = busrpc.client(Worker, bus, namespace=ns)
        async with asyncio.timeout(5):
            done = await client.work(Job(id=1), selection=opts, timeout=30)
    assert done.server == "ok"
    assert ran_on(workers) == {"ok": [1]}
    assert faulty.jobs == []


async def test_the_scorer_sees_the_call_and_its_metadata(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for tenant in ("acme", "globex"):
            server = busrpc.Server(
                await open_bus(), TenantWorker(tenant), namespace=ns, server_id=tenant
            )
            await stack.enter_async_context(server)
        client = busrpc.client(TenantWorker, bus, namespace=ns)
        async with asyncio.timeout(5):
            for tenant in ("globex", "acme"):
                headers = {f"{Headers.META_PREFIX}tenant": tenant}
                done = await client.work(Job(id=1), headers=headers, timeout=30)
                assert done.server == tenant


async def test_a_claim_naming_an_invalid_server_id_is_ignored(
    bus: MessageBus, peer_bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    workers = {"real": Worker(0.1)}
    opts = SelectionOpts(affinity_timeout=1, short_circuit_timeout=None)
    async with (
        serving(open_bus, ns, workers),
        peer_bus.subscribe(f"{ns}.worker.work._claim") as claims,
    ):
        client = busrpc.client(Worker, bus, namespace=ns)

        async def forge() -> None:
            request = await claims.receive()
            assert request.reply is not None
            forged = b'{"server_id": "x.>", "affinity": 1.0}'  # would win: highest bid
            await peer_bus.publish(Message(request.reply, forged))

        async with asyncio.timeout(5), asyncio.TaskGroup() as tasks:
            tasks.create_task(forge())
            done = await client.work(Job(id=1), selection=opts, timeout=30)
    assert done.server == "real"
    assert ran_on(workers) == {"real": [1]}
