"""The buses the conformance suite runs on: every name in `TEST_BUSES`.

Test bodies never name a bus: they take ``bus`` (a client's connection), ``peer_bus`` (a
second, independent connection to the same broker, for servers: like another process),
``open_bus`` (more connections), or ``make_bus`` (a factory for `check_message_bus`).
A bus whose broker is down fails its tests, it is never skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from busrpc import MessageBus
from busrpc.testing import TEST_BUSES, BusFactory, open_test_bus

OpenBus = Callable[[], Awaitable[MessageBus]]

HANG_GUARD = 60
"""Seconds any conformance test may take before it fails (pytest-timeout): a hang guard,
never a timing. A test that needs longer says so with its own ``timeout`` mark."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(HANG_GUARD))


@pytest.fixture(params=TEST_BUSES)
def bus_name(request: pytest.FixtureRequest) -> str:
    """The name of the bus under test (``memory``, ``nats``, ...)."""
    name: str = request.param
    return name


@pytest.fixture
async def bus(bus_name: str) -> AsyncIterator[MessageBus]:
    """A connection to the broker under test."""
    async with open_test_bus(bus_name) as connection:
        yield connection


@pytest.fixture
async def peer_bus(bus_name: str) -> AsyncIterator[MessageBus]:
    """A second, independent connection to the same broker as ``bus``."""
    async with open_test_bus(bus_name) as connection:
        yield connection


@pytest.fixture
async def open_bus(bus_name: str) -> AsyncIterator[OpenBus]:
    """Opens more connections to the broker under test; all close after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_connection() -> MessageBus:
            return await stack.enter_async_context(open_test_bus(bus_name))

        yield open_connection


@pytest.fixture
def make_bus(bus_name: str) -> BusFactory:
    """A factory of new, not yet entered connections to the broker under test."""

    def factory() -> AbstractAsyncContextManager[MessageBus]:
        return open_test_bus(bus_name)

    return factory
