"""A pytest plugin with busrpc fixtures; opt in from a ``conftest.py``:

```python
pytest_plugins = ["busrpc.testing.pytest_plugin"]
```

Fixtures:
    memory_bus: an entered `MemoryBus` on a broker of its own, closed after the test.

Example:
    >>> async def test_greeter(memory_bus):
    ...     async with busrpc.Server(memory_bus, Greeter()):
    ...         greeter = busrpc.client(Greeter, memory_bus)
    ...         assert (await greeter.say_hello(Hello(name="ada"))).text == "hello ada"
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio

from ..bus.memory import MemoryBus

__all__ = ["memory_bus"]


@pytest_asyncio.fixture
async def memory_bus() -> AsyncIterator[MemoryBus]:
    """An entered `MemoryBus` on a fresh in-process broker (nothing shared between tests)."""
    async with MemoryBus(f"pytest-{uuid.uuid4().hex}") as bus:
        yield bus
