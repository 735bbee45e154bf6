"""Services the conformance suite serves: small, and each records what it was asked.

Request and response types live at module level (busrpc resolves annotations there).
Every instance keeps its own record, so a test counts the calls each server handled.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import TypedDict

import msgspec
from google.protobuf.wrappers_pb2 import StringValue

import busrpc


def served_by() -> str:
    """The id of the server running the current handler."""
    call = busrpc.current_call()
    assert call is not None, "current_call() must be set inside a handler"
    return call.server_id


class Hello(msgspec.Struct):
    name: str


class Greeting(msgspec.Struct):
    text: str
    server: str = ""


@busrpc.service("greeter")
class Greeter:
    """Greets. With ``hang=True`` its handlers wait for `release` (tests never set it
    unless they say so), and `exited` is set when a handler leaves, however it leaves."""

    def __init__(self, *, hang: bool = False, error: busrpc.RpcError | None = None) -> None:
        self.hang = hang
        self.error = error
        self.calls: list[str] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.exited = asyncio.Event()

    async def _serve(self, what: str, req: Hello) -> Greeting:
        self.calls.append(req.name)
        self.entered.set()
        try:
            if self.hang:
                await self.release.wait()
            if self.error is not None:
                raise self.error
            return Greeting(text=f"{what} {req.name}", server=served_by())
        finally:
            self.exited.set()

    @busrpc.rpc
    async def say_hello(self, req: Hello) -> Greeting:
        return await self._serve("hello", req)

    @busrpc.rpc(multi=True)
    async def stats(self, req: Hello) -> Greeting:
        return await self._serve("stats", req)


class Failure(msgspec.Struct):
    code: str
    message: str = ""
    details: dict[str, str] = {}


@busrpc.service("failer")
class Failer:
    """Fails on purpose: with the error the request describes, or with a plain bug."""

    @busrpc.rpc
    async def fail(self, req: Failure) -> Greeting:
        raise busrpc.RpcError(req.code, req.message, req.details)

    @busrpc.rpc
    async def crash(self, req: Hello) -> Greeting:
        raise ValueError(f"secret internals of {req.name}")


class Job(msgspec.Struct):
    id: int


class Done(msgspec.Struct):
    id: int
    server: str


@busrpc.service("worker")
class Worker:
    """An affinity service: bids `score` for every job (below 0: no bid). With a
    `bid_gate`, it bids only once the gate is set."""

    def __init__(self, score: float, *, bid_gate: asyncio.Event | None = None) -> None:
        self.score = score
        self.bid_gate = bid_gate
        self.jobs: list[int] = []

    @busrpc.rpc(affinity=True)
    async def work(self, req: Job) -> Done:
        self.jobs.append(req.id)
        return Done(id=req.id, server=served_by())

    async def work_affinity(self, req: Job) -> float:
        if self.bid_gate is not None:
            await self.bid_gate.wait()
        return self.score


@busrpc.service("regions")
class Regions:
    """Topic-scoped methods: servers choose the topics they serve."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.calls: list[str] = []

    @busrpc.rpc(topics=True)
    async def region_stats(self, req: Hello) -> Greeting:
        self.calls.append(req.name)
        return Greeting(text=f"{self.label} {req.name}", server=served_by())

    @busrpc.rpc(multi=True, topics=True)
    async def region_ping(self, req: Hello) -> Greeting:
        return Greeting(text=f"{self.label} {req.name}", server=served_by())


@busrpc.service("inner")
class Inner:
    """Reports the deadline it was called with."""

    @busrpc.rpc
    async def remaining(self, req: Hello) -> float:
        call = busrpc.current_call()
        assert call is not None
        return call.deadline.remaining()


class Remaining(msgspec.Struct):
    outer: float
    inner: float


@busrpc.service("outer")
class Outer:
    """Calls `Inner` from its handler, with no timeout of its own."""

    def __init__(self, inner: Inner) -> None:
        self.inner = inner

    @busrpc.rpc
    async def measure(self, req: Hello) -> Remaining:
        call = busrpc.current_call()
        assert call is not None
        outer = call.deadline.remaining()
        inner = await self.inner.remaining(req)
        return Remaining(outer=outer, inner=inner)


class Context(msgspec.Struct):
    metadata: dict[str, str]
    server: str
    subject: str


@busrpc.service("context")
class ContextReporter:
    """Reports what `busrpc.current_call()` shows the handler."""

    @busrpc.rpc
    async def show(self, req: Hello) -> Context:
        call = busrpc.current_call()
        assert call is not None
        return Context(metadata=call.metadata, server=call.server_id, subject=call.subject)


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Labels(TypedDict):
    name: str
    tags: list[str]


@busrpc.service("types")
class Types:
    """One method per kind of request and response type busrpc supports."""

    @busrpc.rpc
    async def swap(self, req: Point) -> Point:
        return Point(x=req.y, y=req.x)

    @busrpc.rpc
    async def tag(self, req: Labels) -> Labels:
        return Labels(name=req["name"].upper(), tags=[*req["tags"], "seen"])

    @busrpc.rpc
    async def count(self, req: dict[str, int]) -> dict[str, int]:
        return {key: value + 1 for key, value in req.items()}

    @busrpc.rpc
    async def upper(self, req: str) -> str:
        return req.upper()

    @busrpc.rpc
    async def double(self, req: int) -> int:
        return req * 2

    @busrpc.rpc
    async def reverse(self, req: bytes) -> bytes:
        return req[::-1]

    @busrpc.rpc
    async def shout(self, req: StringValue) -> StringValue:
        return StringValue(value=req.value.upper() + "!")


@busrpc.service("sleeper")
class Sleeper:
    """Every call waits for `release` (tests set it when they say so) and records how it
    ended: `started`, `finished` (returned), `cancelled` (saw `CancelledError`), by name.

    `wait_started(n)` and `wait_cancelled(n)` return once that many calls got that far."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self._changed = asyncio.Event()

    async def _sleep(self, what: str, req: Hello) -> Greeting:
        self.started.append(req.name)
        self._changed.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(req.name)
            self._changed.set()
            raise
        self.finished.append(req.name)
        self._changed.set()
        return Greeting(text=f"{what} {req.name}", server=served_by())

    @busrpc.rpc
    async def nap(self, req: Hello) -> Greeting:
        return await self._sleep("nap", req)

    @busrpc.rpc(multi=True)
    async def naps(self, req: Hello) -> Greeting:
        return await self._sleep("naps", req)

    async def wait_started(self, n: int) -> None:
        await self._wait(lambda: len(self.started) >= n)

    async def wait_cancelled(self, n: int) -> None:
        await self._wait(lambda: len(self.cancelled) >= n)

    async def _wait(self, done: Callable[[], bool]) -> None:
        while not done():
            self._changed.clear()
            await self._changed.wait()
