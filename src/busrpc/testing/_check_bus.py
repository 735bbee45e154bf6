"""`check_message_bus`: the MessageBus conformance checks, for any transport.

Plain asserts and asyncio only: no pytest, so a transport author can run it from any test
runner (trio's ``_check_streams.py`` does the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Final, TypeAlias

from .._core import ClosedResourceError, Deadline, DeadlineExceeded, Message
from ..bus import MessageBus, Overflow, Subscription

__all__ = ["BusFactory", "check_message_bus"]

BusFactory: TypeAlias = Callable[[], AbstractAsyncContextManager[MessageBus]]
"""Makes a new, not yet entered connection to the broker under test.

A bus class (``lambda: MemoryBus("x")``) fits, and so does `open_test_bus`
(``lambda: open_test_bus("nats")``): every call must reach the same broker.
"""

_Check: TypeAlias = Callable[[BusFactory, str], Awaitable[None]]

_BURST: Final = 30


async def check_message_bus(make_bus: BusFactory, *, max_wait: float = 10.0) -> None:
    """Run the MessageBus conformance checks against the transport *make_bus* connects to.

    Each check opens its own connections with *make_bus* (so they must all reach one
    broker) and uses subjects no other code uses. The checks cover: a subscription is
    live once entered; data, headers and reply arrive unchanged; a queue group delivers
    each message to exactly one member while plain subscribers all get it; wildcards
    ``*`` and ``>``; one publisher's messages arrive in order; statistics counters
    (which never go down); `aclose` is idempotent; `ClosedResourceError` after close; and
    ``Overflow.DROP_OLDEST`` keeps the newest messages and counts the dropped ones. (To
    know a burst has arrived without receiving it, that check waits for a later message
    on another subscription of the same connection: a connection must hand messages to
    its subscriptions in the order they arrive.)

    Args:
        make_bus: returns a new, not yet entered connection (a bus, or an async context
            manager giving one).
        max_wait: seconds each check may wait for deliveries before it fails.

    Raises:
        AssertionError: one or more checks failed; the message names each failed check
            and what differed. Every check runs, so one run shows every failure.

    Example:
        >>> await check_message_bus(lambda: MyBrokerBus("mybroker://localhost"))
    """
    failures: list[str] = []
    for check in _CHECKS:
        name = check.__name__.removeprefix("_check_")
        prefix = f"busrpc-check.{uuid.uuid4().hex[:12]}.{name}"
        try:
            async with Deadline.after(max_wait).scope():
                await check(make_bus, prefix)
        except DeadlineExceeded:
            failures.append(f"[{name}] a message did not arrive within {max_wait} s")
        except AssertionError as exc:
            failures.append(f"[{name}] {exc}")
    if failures:
        raise AssertionError(
            f"check_message_bus: {len(failures)} of {len(_CHECKS)} checks failed:\n"
            + "\n".join(failures)
        )


# -- helpers ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _connections(make_bus: BusFactory, n: int) -> AsyncIterator[list[MessageBus]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(make_bus()) for _ in range(n)]


async def _receive_all(subs: Iterable[Subscription], total: int) -> list[list[Message]]:
    """Receive from every subscription at once until *total* messages arrived in all."""
    subs = list(subs)
    got: list[list[Message]] = [[] for _ in subs]
    enough = asyncio.Event()
    count = 0

    async def drain(i: int, sub: Subscription) -> None:
        nonlocal count
        async for message in sub:
            got[i].append(message)
            count += 1
            if count >= total:
                enough.set()

    tasks = [asyncio.create_task(drain(i, sub)) for i, sub in enumerate(subs)]
    try:
        await enough.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return got


def _datas(messages: Iterable[Message]) -> list[bytes]:
    return [m.data for m in messages]


# -- the checks -------------------------------------------------------------------------


async def _check_subscription_is_live_once_entered(make_bus: BusFactory, prefix: str) -> None:
    subject = f"{prefix}.s"
    async with _connections(make_bus, 2) as (bus, other), bus.subscribe(subject) as sub:
        await other.publish(Message(subject, b"from another connection"))
        await bus.publish(Message(subject, b"from the same connection"))
        first, second = await sub.receive(), await sub.receive()
        got = {first.data, second.data}
        assert got == {b"from another connection", b"from the same connection"}, (
            f"a subscription must receive what is published once it is entered; got {got}"
        )
        assert first.subject == subject, f"received subject {first.subject!r}, not {subject!r}"


async def _check_message_fields_arrive_unchanged(make_bus: BusFactory, prefix: str) -> None:
    subject = f"{prefix}.s"
    sent = [
        Message(subject, b"\x00\xffbinary\r\n", {"X-Check": "1", "Busrpc-Meta-k": "v v"}),
        Message(subject, b"", {}, reply=f"{prefix}.reply.1"),
        Message(subject, b"x" * 65_536),
    ]
    async with _connections(make_bus, 2) as (bus, other), bus.subscribe(subject) as sub:
        for message in sent:
            await other.publish(message)
        received = [await sub.receive() for _ in sent]
    for want, got in zip(sent, received, strict=True):
        assert got.data == want.data, (
            f"data changed: sent {want.data[:40]!r}, got {got.data[:40]!r}"
        )
        assert got.reply == want.reply, f"reply changed: sent {want.reply!r}, got {got.reply!r}"
        for key, value in want.headers.items():
            assert got.headers.get(key) == value, (
                f"header {key!r}: sent {value!r}, got {got.headers.get(key)!r}"
            )


async def _check_publish_order_is_kept(make_bus: BusFactory, prefix: str) -> None:
    subject = f"{prefix}.s"
    sent = [str(i).encode() for i in range(_BURST)]
    async with _connections(make_bus, 2) as (bus, other), bus.subscribe(subject) as sub:
        for data in sent:
            await other.publish(Message(subject, data))
        got = [(await sub.receive()).data for _ in sent]
    assert got == sent, f"one publisher's messages must arrive in order; got {got}"


async def _check_queue_group_delivers_each_message_once(make_bus: BusFactory, prefix: str) -> None:
    subject = f"{prefix}.s"
    sent = {str(i).encode() for i in range(_BURST)}
    async with contextlib.AsyncExitStack() as stack:
        buses = await stack.enter_async_context(_connections(make_bus, 4))
        workers = [
            await stack.enter_async_context(b.subscribe(subject, queue="workers"))
            for b in buses[:3]
        ]
        single = await stack.enter_async_context(buses[0].subscribe(subject, queue="single"))
        plain = await stack.enter_async_context(buses[1].subscribe(subject))
        for data in sorted(sent):
            await buses[3].publish(Message(subject, data))
        per_worker = await _receive_all(workers, len(sent))
        single_got = await _receive_all([single], len(sent))
        plain_got = await _receive_all([plain], len(sent))
    worker_datas = [d for got in per_worker for d in _datas(got)]
    assert sorted(worker_datas) == sorted(sent), (
        "a queue group must deliver each message to exactly one member; members got "
        f"{[sorted(_datas(got)) for got in per_worker]}"
    )
    assert set(_datas(single_got[0])) == sent, "another queue group must get every message too"
    assert set(_datas(plain_got[0])) == sent, (
        "a subscriber without a queue must get every message next to a queue group"
    )


async def _check_broadcast_reaches_every_subscriber(make_bus: BusFactory, prefix: str) -> None:
    subject = f"{prefix}.s"
    sent = [str(i).encode() for i in range(5)]
    async with contextlib.AsyncExitStack() as stack:
        buses = await stack.enter_async_context(_connections(make_bus, 3))
        subs = [await stack.enter_async_context(b.subscribe(subject)) for b in buses]
        subs.append(await stack.enter_async_context(buses[0].subscribe(subject)))
        for data in sent:
            await buses[2].publish(Message(subject, data))
        for i, sub in enumerate(subs):
            got = [(await sub.receive()).data for _ in sent]
            assert got == sent, f"subscriber {i} of {len(subs)} got {got}, expected {sent}"


async def _check_wildcards(make_bus: BusFactory, prefix: str) -> None:
    star, rest = f"{prefix}.*.x", f"{prefix}.>"
    published = [
        prefix,  # matches neither: '>' needs at least one more token
        f"{prefix}.a.b.x",  # '>' only: '*' is exactly one token
        f"{prefix}.a.x",  # both
        f"{prefix}.a.y",  # '>' only
        f"{prefix}.end.x",  # both: the last one, so anything wrongly matched came first
    ]
    async with (
        _connections(make_bus, 2) as (bus, other),
        bus.subscribe(star) as star_sub,
        bus.subscribe(rest) as rest_sub,
    ):
        for subject in published:
            await other.publish(Message(subject, subject.encode()))
        star_got = [(await star_sub.receive()).subject for _ in range(2)]
        rest_got = [(await rest_sub.receive()).subject for _ in range(4)]
    assert star_got == [f"{prefix}.a.x", f"{prefix}.end.x"], f"{star!r} received {star_got}"
    assert rest_got == published[1:], f"{rest!r} received {rest_got}"


async def _check_statistics(make_bus: BusFactory, prefix: str) -> None:
    subject = f"{prefix}.s"
    async with _connections(make_bus, 1) as (bus,):
        stats = bus.statistics()
        assert (stats.published, stats.delivered, stats.dropped, stats.subscriptions) == (
            0,
            0,
            0,
            0,
        ), f"a new connection's counters must be zero: {stats}"
        async with bus.subscribe(subject, max_pending=100) as sub:
            assert bus.statistics().subscriptions == 1, "an entered subscription is counted"
            sub_stats = sub.statistics()
            assert (sub_stats.delivered, sub_stats.dropped, sub_stats.pending) == (0, 0, 0), (
                f"a new subscription's counters must be zero: {sub_stats}"
            )
            assert sub_stats.max_pending == 100, f"max_pending is {sub_stats.max_pending}"
            for i in range(3):
                await bus.publish(Message(subject, str(i).encode()))
            assert bus.statistics().published == 3, (
                f"published counts publish() calls: {bus.statistics()}"
            )
            for _ in range(3):
                await sub.receive()
            sub_stats = sub.statistics()
            assert (sub_stats.delivered, sub_stats.pending) == (3, 0), (
                f"after receiving 3 messages: {sub_stats}"
            )
            assert bus.statistics().delivered == 3, f"bus after 3 received: {bus.statistics()}"
        stats = bus.statistics()
        assert stats.subscriptions == 0, f"a closed subscription is not counted: {stats}"
        assert stats.delivered == 3, (
            f"counters never go down: delivered must stay 3 after the subscription closed: {stats}"
        )
        assert stats.published == 3, f"counters never go down: {stats}"


async def _check_aclose_is_idempotent(make_bus: BusFactory, prefix: str) -> None:
    bus_cm = make_bus()
    async with bus_cm as bus:
        sub = bus.subscribe(f"{prefix}.s")
        async with sub:
            await sub.aclose()
            await sub.aclose()
        await sub.aclose()
        await bus.aclose()
        await bus.aclose()
    await bus.aclose()


async def _check_closed_resources_raise(make_bus: BusFactory, prefix: str) -> None:
    subject = f"{prefix}.s"
    async with _connections(make_bus, 2) as (bus, other):
        sub = bus.subscribe(subject)
        async with sub:
            pass
        try:
            await sub.receive()
        except ClosedResourceError:
            pass
        else:
            raise AssertionError(
                "receive() on a closed subscription must raise ClosedResourceError"
            )
        assert [m async for m in sub] == [], "iterating a closed subscription must end at once"

        # A receiver waiting when its bus closes wakes up: iteration ends.
        live = bus.subscribe(subject)
        await live.__aenter__()
        entered = asyncio.Event()

        async def consume() -> list[Message]:
            entered.set()
            return [m async for m in live]

        consumer = asyncio.create_task(consume())
        await entered.wait()
        await other.publish(Message(subject, b"before close"))
        await bus.aclose()
        got = await consumer
        assert len(got) <= 1, f"iteration after close yielded {got}"
        await live.aclose()

        try:
            await bus.publish(Message(subject, b"after close"))
        except ClosedResourceError:
            pass
        else:
            raise AssertionError("publish() on a closed bus must raise ClosedResourceError")
        try:
            async with bus.subscribe(subject):
                pass
        except ClosedResourceError:
            pass
        else:
            raise AssertionError(
                "entering a subscription of a closed bus must raise ClosedResourceError"
            )


async def _check_overflow_drop_oldest(make_bus: BusFactory, prefix: str) -> None:
    subject, marker_subject = f"{prefix}.s", f"{prefix}.marker"
    sent = [str(i).encode() for i in range(10)]
    keep = 3
    async with (
        _connections(make_bus, 2) as (bus, other),
        bus.subscribe(subject, max_pending=keep, overflow=Overflow.DROP_OLDEST) as sub,
        bus.subscribe(marker_subject) as marker,
    ):
        for data in sent:
            await other.publish(Message(subject, data))
        # Published after the burst from the same connection: once it is here, the burst
        # has been handed to `sub` (buffered or dropped), and nothing was received yet.
        await other.publish(Message(marker_subject, b"after the burst"))
        await marker.receive()
        stats = sub.statistics()
        assert (stats.pending, stats.dropped) == (keep, len(sent) - keep), (
            f"max_pending={keep}, {len(sent)} published, none received: {stats}"
        )
        assert bus.statistics().dropped == len(sent) - keep, (
            f"the bus counts its subscriptions' drops: {bus.statistics()}"
        )
        got = [(await sub.receive()).data for _ in range(keep)]
        assert got == sent[-keep:], (
            f"DROP_OLDEST must keep the newest {keep} messages {sent[-keep:]}, got {got}"
        )
        assert sub.statistics().delivered == keep, f"after receiving: {sub.statistics()}"


_CHECKS: Final[tuple[_Check, ...]] = (
    _check_subscription_is_live_once_entered,
    _check_message_fields_arrive_unchanged,
    _check_publish_order_is_kept,
    _check_queue_group_delivers_each_message_once,
    _check_broadcast_reaches_every_subscriber,
    _check_wildcards,
    _check_statistics,
    _check_aclose_is_idempotent,
    _check_closed_resources_raise,
    _check_overflow_drop_oldest,
)
