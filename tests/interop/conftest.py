"""Interop fixtures: the NATS test broker, reached by busrpc and by raw nats-py."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client

from busrpc import MessageBus
from busrpc.testing import DEFAULT_TEST_NATS_URL, open_test_bus


@pytest.fixture
async def server_bus() -> AsyncIterator[MessageBus]:
    """A busrpc connection to the NATS test broker, for the servers under test."""
    async with open_test_bus("nats") as bus:
        yield bus


@pytest.fixture
async def nc(server_bus: MessageBus) -> AsyncIterator[Client]:
    """A plain nats-py connection: a client that knows nothing of busrpc.

    It depends on ``server_bus``, whose connect fails first, with a clear message, when
    the broker is down.
    """
    url = os.environ.get("BUSRPC_TEST_NATS_URL") or DEFAULT_TEST_NATS_URL
    client = await nats.connect(url, max_reconnect_attempts=1, connect_timeout=2)
    try:
        yield client
    finally:
        await client.close()
