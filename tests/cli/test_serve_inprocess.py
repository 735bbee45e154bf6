"""`busrpc serve`'s main coroutine in the test's event loop, on a bus the test controls."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Iterator

import pytest

import busrpc
from busrpc.cli import _serve
from busrpc.cli._runtime import CliError
from busrpc.testing import MemoryBus

svc_fixture = importlib.import_module("svc_fixture")


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MemoryBus, asyncio.Event]]:
    """`serve` runs on this memory bus; the event is set once it serves."""
    bus = MemoryBus("cli-serve-inprocess")
    started = asyncio.Event()

    async def open_memory(
        stack: contextlib.AsyncExitStack, url: str | None
    ) -> tuple[str, busrpc.MessageBus]:
        return "memory://cli-serve-inprocess", await stack.enter_async_context(bus)

    original = _serve._Signals.serving

    def serving(self: _serve._Signals, server: busrpc.Server) -> None:
        original(self, server)
        started.set()

    monkeypatch.setattr(_serve, "_open", open_memory)
    monkeypatch.setattr(_serve._Signals, "serving", serving)
    yield bus, started


async def test_serve_fails_when_the_bus_closes_under_it(
    serving: tuple[MemoryBus, asyncio.Event],
) -> None:
    bus, started = serving
    main = _serve.serve(svc_fixture.FixtureService, None, server_id="s1", namespace=None, topics=[])
    task = asyncio.create_task(main)
    try:
        async with asyncio.timeout(30):
            await started.wait()
            await bus.aclose()  # the broker is gone for good
            with pytest.raises(CliError) as info:
                await task
    finally:
        task.cancel()
    assert info.value.exit_code == 1
    assert info.value.message.startswith(
        "lost the bus at memory://cli-serve-inprocess (the bus closed while serving)"
    )
