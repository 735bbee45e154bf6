"""Context isolation: every call runs in its own copy of the context the server was
started in. Nothing the caller's task set (the memory bus delivers inside the caller's
publish), nothing an earlier call's handler, interceptor or affinity scorer set, is ever
seen by another call; what was set before the server started is seen by all of them.
"""

from __future__ import annotations

import asyncio
import contextvars

import msgspec
import pytest

import busrpc
from busrpc import MessageBus, ServerCall
from busrpc.rpc import ServerInterceptor, ServerNext

from .conftest import OpenBus

probe: contextvars.ContextVar[str] = contextvars.ContextVar("probe", default="unset")
"""Set by the test before the server starts, by callers, and by handlers (to leak)."""

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
"""Set by the server interceptor, for the handler of the same call only."""


class Seen(msgspec.Struct):
    probe: str
    marker: str
    method: str


class Ask(msgspec.Struct):
    name: str


@busrpc.service("isolation")
class Peeker:
    """Reports the context vars it sees, then sets them, trying to leak into later calls."""

    @busrpc.rpc
    async def peek(self, req: Ask) -> Seen:
        call = busrpc.current_call()
        seen = Seen(probe=probe.get(), marker=marker.get(), method=call.method.name if call else "")
        probe.set(f"leaked by handler {req.name}")
        marker.set(f"leaked by handler {req.name}")
        # Suspend once with the leaked values set: a worker that runs the handler in its
        # own context keeps them across the await, and into the next call.
        await _step()
        return seen


class Job(msgspec.Struct):
    id: int


@busrpc.service("isolated_worker")
class Bidder:
    """An affinity service whose scorer reports what it sees and then tries to leak."""

    def __init__(self) -> None:
        self.bids: list[tuple[int, str, str | None]] = []  # (job, probe, current method)
        self.handled: list[tuple[int, str]] = []  # (job, probe)

    @busrpc.rpc(affinity=True)
    async def work(self, req: Job) -> int:
        self.handled.append((req.id, probe.get()))
        probe.set(f"leaked by handler {req.id}")
        return req.id

    async def work_affinity(self, req: Job) -> float:
        call = busrpc.current_call()
        self.bids.append((req.id, probe.get(), call.method.name if call is not None else None))
        probe.set(f"leaked by scorer {req.id}")
        await _step()
        return 1.0


async def _step() -> None:
    """One loop iteration, without sleeping."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.call_soon(fut.set_result, None)
    await fut


def leaky_interceptor(seen: list[str]) -> ServerInterceptor:
    async def intercept(call: ServerCall, next_: ServerNext) -> object:
        seen.append(marker.get())
        assert isinstance(call.request, Ask)
        marker.set(f"interceptor of {call.request.name}")
        return await next_(call)

    return intercept


async def call_with_var(client: Peeker, name: str, value: str) -> Seen:
    """Make a call from a task of its own whose context has `probe` set to *value*."""

    async def caller() -> Seen:
        probe.set(value)
        return await client.peek(Ask(name=name), timeout=30)

    return await asyncio.create_task(caller())


async def test_caller_context_never_reaches_the_handler(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, Peeker(), namespace=ns):
        client = busrpc.client(Peeker, bus, namespace=ns)
        async with asyncio.timeout(10):
            seen = [await call_with_var(client, str(i), f"caller {i}") for i in range(5)]
    assert [s.probe for s in seen] == ["unset"] * 5


async def test_context_the_server_started_in_is_seen_by_every_call(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    token = probe.set("set before the server started")
    try:
        server = busrpc.Server(peer_bus, Peeker(), namespace=ns)
        await server.__aenter__()
    finally:
        probe.reset(token)
    try:
        client = busrpc.client(Peeker, bus, namespace=ns)
        async with asyncio.timeout(10):
            first = await call_with_var(client, "1", "the caller's")
            second = await client.peek(Ask(name="2"), timeout=30)
    finally:
        await server.shutdown()
    assert first.probe == second.probe == "set before the server started"
    assert probe.get() == "unset"  # and the handlers' sets never came back here


@pytest.mark.parametrize("intercepted", [False, True], ids=["direct", "intercepted"])
async def test_nothing_a_call_sets_reaches_the_next_call_on_the_same_worker(
    bus: MessageBus, peer_bus: MessageBus, ns: str, intercepted: bool
) -> None:
    interceptor_saw: list[str] = []
    interceptors = [leaky_interceptor(interceptor_saw)] if intercepted else []
    server = busrpc.Server(
        peer_bus, Peeker(), namespace=ns, max_concurrency=1, interceptors=interceptors
    )
    client = busrpc.client(Peeker, bus, namespace=ns)
    async with server:
        async with asyncio.timeout(20):
            one_by_one = [await client.peek(Ask(name=f"s{i}"), timeout=30) for i in range(20)]
            # Concurrent calls queue for the one worker, which takes them back to back.
            together = await asyncio.gather(
                *(call_with_var(client, f"c{i}", f"caller c{i}") for i in range(50))
            )
    assert all(s.probe == "unset" for s in one_by_one + together), one_by_one + together
    assert all(s.method == "peek" for s in one_by_one + together)
    if intercepted:
        # The handler sees what its own call's interceptor set, and nothing older.
        assert [s.marker for s in one_by_one] == [f"interceptor of s{i}" for i in range(20)]
        assert sorted(s.marker for s in together) == sorted(
            f"interceptor of c{i}" for i in range(50)
        )
        assert interceptor_saw == ["unset"] * 70
    else:
        assert all(s.marker == "unset" for s in one_by_one + together)


async def test_affinity_scorer_sees_its_call_and_no_leaked_vars(
    bus: MessageBus, open_bus: OpenBus, ns: str
) -> None:
    bidder = Bidder()
    opts = busrpc.SelectionOpts(accept_first_available=True)
    server = busrpc.Server(await open_bus(), bidder, namespace=ns, max_concurrency=1)
    client = busrpc.client(Bidder, bus, namespace=ns)
    async with server:
        token = probe.set("the caller's")  # the test task calls: its context is the caller's
        try:
            async with asyncio.timeout(20):
                done = [await client.work(Job(id=i), timeout=30, selection=opts) for i in range(10)]
                done += await asyncio.gather(
                    *(client.work(Job(id=i), timeout=30, selection=opts) for i in range(10, 30))
                )
        finally:
            probe.reset(token)
    assert sorted(done) == list(range(30))
    assert sorted(bidder.bids) == [(i, "unset", "work") for i in range(30)]
    assert sorted(bidder.handled) == [(i, "unset") for i in range(30)]
