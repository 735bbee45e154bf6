"""Test helpers for busrpc users and transport authors (no pytest import).

- `MemoryBus`: the in-process bus, for fast tests of services.
- `open_test_bus(name)` and `TEST_BUSES`: connections to the brokers a suite runs against
  (``BUSRPC_TEST_BUSES``), failing loudly when one is not running.
- `check_message_bus(make_bus)`: the MessageBus conformance checks, for your own transport.
- ``busrpc.testing.pytest_plugin``: a ``memory_bus`` fixture
  (``pytest_plugins = ["busrpc.testing.pytest_plugin"]``).

Example:
    >>> from busrpc.testing import check_message_bus, open_test_bus
    >>> await check_message_bus(lambda: open_test_bus("nats"))
"""

from ..bus.memory import MemoryBus
from ._buses import DEFAULT_TEST_NATS_URL, MEMORY_TEST_BROKER, TEST_BUSES, open_test_bus
from ._check_bus import BusFactory, check_message_bus

__all__ = [
    "DEFAULT_TEST_NATS_URL",
    "MEMORY_TEST_BROKER",
    "TEST_BUSES",
    "BusFactory",
    "MemoryBus",
    "check_message_bus",
    "open_test_bus",
]
