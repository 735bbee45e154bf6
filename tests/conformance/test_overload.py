"""Overload: a full server refuses at once (``resource_exhausted``), so its callers can go
elsewhere instead of waiting out their deadlines; what it accepted, it serves.

Call timeouts are 30 s inside a 10 s guard: a call that waited for its deadline fails the
guard instead of passing slowly.
"""

from __future__ import annotations

import asyncio

import busrpc
from busrpc import ErrorCode, MessageBus

from .services import Greeter, Greeting, Hello, Sleeper


async def test_calls_beyond_workers_and_queue_are_refused_at_once(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    sleeper = Sleeper()
    client = busrpc.client(Sleeper, bus, namespace=ns)
    server = busrpc.Server(peer_bus, sleeper, namespace=ns, max_concurrency=1, max_pending=2)
    async with server:
        calls = [asyncio.create_task(client.nap(Hello(name=str(i)), timeout=30)) for i in range(10)]
        async with asyncio.timeout(10):  # a hang guard, not a timing
            await until_done(calls, 7)
            refused = [c for c in calls if c.done()]
            held = [c for c in calls if not c.done()]
            # Nothing was released yet: exactly one runs, two wait for it.
            await sleeper.wait_started(1)
            started_before_release = list(sleeper.started)
            stats_before = server.statistics()
            sleeper.release.set()
            results = await asyncio.gather(*held)
        stats = server.statistics()
    assert len(refused) == 7 and len(held) == 3
    for call in refused:
        error = call.exception()
        assert isinstance(error, busrpc.RpcError), error
        assert error.code is ErrorCode.RESOURCE_EXHAUSTED, error
    assert len(started_before_release) == 1
    assert (stats_before.rejected, stats_before.in_flight) == (7, 1)
    assert sorted(r.text for r in results) == sorted(f"nap {n}" for n in sleeper.finished)
    assert len(sleeper.finished) == 3 and sleeper.cancelled == []
    assert (stats.rejected, stats.succeeded, stats.failed) == (7, 3, 0)


async def until_done(calls: list[asyncio.Task[Greeting]], n: int) -> None:
    """Wait until at least *n* of *calls* are done."""
    while sum(c.done() for c in calls) < n:
        await asyncio.wait([c for c in calls if not c.done()], return_when=asyncio.FIRST_COMPLETED)


async def test_a_flood_gets_results_or_refusals_never_deadlines(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    greeter = busrpc.client(Greeter, bus, namespace=ns)
    server = busrpc.Server(peer_bus, Greeter(), namespace=ns, max_concurrency=4, max_pending=16)
    async with server:
        async with asyncio.timeout(60):  # a hang guard, not a timing
            results = await asyncio.gather(
                *(greeter.say_hello(Hello(name=str(i)), timeout=30) for i in range(2000)),
                return_exceptions=True,
            )
            # Full a moment ago, the server still serves.
            after = await greeter.say_hello(Hello(name="after"), timeout=30)
        stats = server.statistics()
    ok = [r for r in results if isinstance(r, Greeting)]
    refused = [
        r
        for r in results
        if isinstance(r, busrpc.RpcError) and r.code is ErrorCode.RESOURCE_EXHAUSTED
    ]
    others = [r for r in results if not isinstance(r, Greeting) and r not in refused]
    assert others == []  # no DeadlineExceeded, no unavailable, nothing lost
    assert after.text == "hello after"
    for i, result in enumerate(results):
        if isinstance(result, Greeting):
            assert result.text == f"hello {i}"  # each caller got its own answer
    assert (stats.succeeded, stats.rejected) == (len(ok) + 1, len(refused))
    assert stats.failed == stats.expired == stats.in_flight == 0
