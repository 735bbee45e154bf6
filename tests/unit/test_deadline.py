"""Deadline: one absolute point in time, on the wire as Unix epoch milliseconds."""

from __future__ import annotations

import asyncio
import time

import pytest

from busrpc import Deadline, DeadlineExceeded


async def test_a_deadline_in_the_past_has_expired() -> None:
    deadline = Deadline.from_wire(0)
    assert deadline.expired()
    assert deadline.remaining() == 0.0


async def test_a_future_deadline_has_not_expired() -> None:
    deadline = Deadline.after(60)
    assert not deadline.expired()
    assert 0 < deadline.remaining() <= 60


async def test_to_wire_is_epoch_milliseconds() -> None:
    before = time.time() * 1000
    wire = Deadline.after(10).to_wire()
    after = time.time() * 1000
    # A tolerance, not a timing assertion: both clocks are read around the call.
    assert before + 10_000 - 5 <= wire <= after + 10_000 + 5


async def test_wire_round_trip() -> None:
    deadline = Deadline.after(30)
    back = Deadline.from_wire(deadline.to_wire())
    assert abs(back.when - deadline.when) < 0.01  # milliseconds on the wire
    assert not back.expired()


async def test_earliest_picks_the_sooner() -> None:
    soon, late = Deadline.after(1), Deadline.after(100)
    assert soon.earliest(late) is soon
    assert late.earliest(soon) is soon
    assert late.earliest(None) is late


async def test_scope_raises_deadline_exceeded_when_it_passes() -> None:
    never = asyncio.Event()
    with pytest.raises(DeadlineExceeded):
        async with Deadline.from_wire(0).scope():
            await never.wait()


async def test_scope_does_not_rename_someone_elses_timeout() -> None:
    never = asyncio.Event()
    with pytest.raises(TimeoutError) as info:
        async with asyncio.timeout(0), Deadline.after(60).scope():
            await never.wait()
    assert not isinstance(info.value, DeadlineExceeded)


async def test_scope_lets_a_body_that_finishes_in_time_through() -> None:
    async with Deadline.after(60).scope():
        result = 1 + 1
    assert result == 2


async def test_deadline_exceeded_is_a_timeout_error() -> None:
    never = asyncio.Event()
    with pytest.raises(TimeoutError):
        async with Deadline.from_wire(0).scope():
            await never.wait()


def test_after_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        Deadline.after(1)
