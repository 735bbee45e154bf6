"""`open_test_bus(name)`: a connection to the broker a test suite runs against."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Final

from .._core import ConnectError
from ..bus import MessageBus, connect
from ..bus.memory import MemoryBus

__all__ = ["DEFAULT_TEST_NATS_URL", "MEMORY_TEST_BROKER", "TEST_BUSES", "open_test_bus"]

DEFAULT_TEST_NATS_URL: Final = "nats://127.0.0.1:4222"
"""The NATS server tests use unless ``BUSRPC_TEST_NATS_URL`` names another."""

MEMORY_TEST_BROKER: Final = "busrpc-test"
"""The in-process broker every ``open_test_bus("memory")`` connection shares."""

_KNOWN: Final = ("memory", "nats")


def _test_buses() -> tuple[str, ...]:
    names = os.environ.get("BUSRPC_TEST_BUSES", "memory,nats")
    return tuple(name.strip().lower() for name in names.split(",") if name.strip())


TEST_BUSES: Final[tuple[str, ...]] = _test_buses()
"""The buses a suite runs against: ``BUSRPC_TEST_BUSES`` (comma-separated), default
``memory,nats``. Narrow it on purpose (``BUSRPC_TEST_BUSES=memory``); a bus in the list
whose broker is down fails the run, it is never skipped.

Example:
    >>> @pytest.fixture(params=TEST_BUSES)
    ... async def bus(request): ...
"""


@contextlib.asynccontextmanager
async def open_test_bus(name: str) -> AsyncIterator[MessageBus]:
    """Connect to the test broker for the bus called *name*; close it on exit.

    Every connection opened with the same *name* reaches the same broker, as separate
    processes would: ``"memory"`` shares one in-process broker (`MEMORY_TEST_BROKER`),
    ``"nats"`` connects to ``BUSRPC_TEST_NATS_URL`` (default `DEFAULT_TEST_NATS_URL`).
    Tests sharing a broker keep apart by using their own subjects or namespaces.

    Raises:
        ConnectError: the broker is not running; the message names it and says how to
            start it. A missing broker is a failure, never a reason to skip.
        ValueError: *name* is not a bus this kit knows.

    Example:
        >>> async with open_test_bus("nats") as server_bus, open_test_bus("nats") as bus:
        ...     async with busrpc.Server(server_bus, Greeter(), namespace="t1"):
        ...         await busrpc.client(Greeter, bus, namespace="t1").say_hello(req)
    """
    if name == "memory":
        async with MemoryBus(MEMORY_TEST_BROKER) as memory_bus:
            yield memory_bus
        return
    if name != "nats":
        known = ", ".join(_KNOWN)
        raise ValueError(f"unknown test bus {name!r}: busrpc.testing knows {known}")
    url = os.environ.get("BUSRPC_TEST_NATS_URL") or DEFAULT_TEST_NATS_URL
    # One quick attempt: a test run must fail fast on a missing broker, not retry for
    # minutes as nats-py does by default.
    bus = connect(url, connect_timeout=2)
    try:
        await bus.__aenter__()
    except ConnectError as exc:
        raise ConnectError(
            f"the NATS test broker at {url} is not running ({exc}). Start it with "
            "`scripts/start-brokers nats` (or `nats-server -js -a 127.0.0.1 -p 4222`), point "
            "BUSRPC_TEST_NATS_URL at a running one, or leave nats out of BUSRPC_TEST_BUSES"
        ) from exc
    try:
        yield bus
    finally:
        await bus.aclose()
