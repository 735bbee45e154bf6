"""A service for the CLI tests: ``busrpc serve svc_fixture:FixtureService`` (cwd tests/cli)."""

from __future__ import annotations

import asyncio

import msgspec

import busrpc


class Greet(msgspec.Struct, frozen=True, kw_only=True):
    name: str


class Greeting(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    server_id: str


class Key(msgspec.Struct, frozen=True, kw_only=True):
    key: str


class Nap(msgspec.Struct, frozen=True, kw_only=True):
    seconds: float


class Empty(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Where(msgspec.Struct, frozen=True, kw_only=True):
    topic: str
    server_id: str


def _server_id() -> str:
    call = busrpc.current_call()
    return call.server_id if call is not None else "local"


@busrpc.service("clitest")
class FixtureService:
    @busrpc.rpc
    async def greet(self, req: Greet) -> Greeting:
        return Greeting(text=f"hello, {req.name}", server_id=_server_id())

    @busrpc.rpc
    async def missing(self, req: Key) -> Greeting:
        raise busrpc.RpcError("not_found", f"no thing {req.key}", {"key": req.key})

    @busrpc.rpc
    async def slow(self, req: Nap) -> Nap:
        # The test waits for this line to know the call is running (never a sleep).
        print(f"slow started on {_server_id()}", flush=True)
        await asyncio.sleep(req.seconds)
        return req

    @busrpc.rpc(multi=True)
    async def ping(self, req: Empty) -> Where:
        return Where(topic="", server_id=_server_id())

    @busrpc.rpc(topics=True)
    async def region(self, req: Empty) -> Where:
        call = busrpc.current_call()
        topic = ".".join(call.topic) if call is not None else ""
        return Where(topic=topic, server_id=_server_id())


def make_service() -> FixtureService:
    """A factory function: ``busrpc serve svc_fixture:make_service``."""
    return FixtureService()


async def make_service_async() -> FixtureService:
    """An async factory."""
    return FixtureService()


INSTANCE = FixtureService()

NOT_A_SERVICE = 42


class Plain:
    """A class that is not a service."""


@busrpc.service("needsargs")
class NeedsArgs:
    """A service whose constructor needs an argument: serve cannot instantiate it."""

    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    @busrpc.rpc
    async def greet(self, req: Greet) -> Greeting:
        return Greeting(text=f"{self.greeting}, {req.name}", server_id=_server_id())


def make_with(greeting: str) -> NeedsArgs:
    """A factory that needs an argument."""
    return NeedsArgs(greeting)
