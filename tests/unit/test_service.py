"""Declaring services: what the decorators accept, refuse, and put on the wire."""

from __future__ import annotations

import msgspec
import pytest

import busrpc
from busrpc import Message
from busrpc.testing import MemoryBus


class Hello(msgspec.Struct):
    name: str


class Greeting(msgspec.Struct):
    text: str


@busrpc.service("greeter")
class Greeter:
    @busrpc.rpc
    async def say_hello(self, req: Hello) -> Greeting:
        return Greeting(text=f"hello {req.name}")

    @busrpc.rpc(name="hi")
    async def renamed(self, req: Hello) -> Greeting:
        return Greeting(text=f"hi {req.name}")


@busrpc.service()
class DefaultName:
    @busrpc.rpc
    async def ping(self, req: str) -> str:
        return req


class NotAService:
    pass


async def test_a_service_object_can_be_called_locally() -> None:
    assert await Greeter().say_hello(Hello(name="local")) == Greeting(text="hello local")


async def test_the_wire_name_can_differ_from_the_python_name(memory_bus: MemoryBus) -> None:
    async with (
        busrpc.Server(memory_bus, Greeter(), namespace="ns"),
        memory_bus.subscribe("replies") as replies,
    ):
        await memory_bus.publish(Message("ns.greeter.hi", b'{"name":"x"}', reply="replies"))
        assert (await replies.receive()).data == b'{"text":"hi x"}'
        client = busrpc.client(Greeter, memory_bus, namespace="ns")
        assert (await client.renamed(Hello(name="y"))).text == "hi y"


async def test_the_default_service_name_is_the_class_name_lowercased(
    memory_bus: MemoryBus,
) -> None:
    async with busrpc.Server(memory_bus, DefaultName()) as server:
        assert server.services == ["defaultname"]
        assert await busrpc.client(DefaultName, memory_bus).ping("x") == "x"


def test_rpc_needs_an_async_function() -> None:
    with pytest.raises(TypeError, match="async def"):

        class Sync:
            @busrpc.rpc  # type: ignore[arg-type]
            def ping(self, req: str) -> str:
                return req


def test_a_service_needs_methods() -> None:
    with pytest.raises(TypeError, match=r"no @busrpc\.rpc methods"):

        @busrpc.service("empty")
        class Empty:
            pass


def test_an_affinity_method_needs_a_scoring_function() -> None:
    with pytest.raises(TypeError, match="work_affinity"):

        @busrpc.service("worker")
        class Worker:
            @busrpc.rpc(affinity=True)
            async def work(self, req: str) -> str:
                return req


def test_affinity_scorer_by_decorator() -> None:
    @busrpc.service("worker")
    class Worker:
        @busrpc.rpc(affinity=True)
        async def work(self, req: str) -> str:
            return req

        @work.affinity
        def score(self, req: str) -> float:
            return 1.0

    assert Worker().score("x") == 1.0


def test_annotations_are_required_when_the_service_is_declared() -> None:
    with pytest.raises(TypeError, match="annotate"):

        @busrpc.service("bare")
        class Unannotated:
            @busrpc.rpc
            async def ping(self, req):  # type: ignore[no-untyped-def]
                return req


def test_invalid_names_are_refused_when_declared() -> None:
    with pytest.raises(ValueError, match=r"bad\.name"):

        @busrpc.service("bad.name")
        class Dotted:
            @busrpc.rpc
            async def ping(self, req: str) -> str:
                return req


async def test_client_and_server_need_services(memory_bus: MemoryBus) -> None:
    with pytest.raises(TypeError, match="not a busrpc service"):
        busrpc.client(NotAService, memory_bus)
    with pytest.raises(TypeError, match="not a busrpc service"):
        busrpc.Server(memory_bus, object())
    with pytest.raises(TypeError, match="at least one"):
        busrpc.Server(memory_bus)


async def test_server_id_is_used_and_checked(memory_bus: MemoryBus) -> None:
    assert busrpc.Server(memory_bus, Greeter(), server_id="s-1").server_id == "s-1"
    assert busrpc.Server(memory_bus, Greeter()).server_id  # a random one
    with pytest.raises(ValueError):
        busrpc.Server(memory_bus, Greeter(), server_id="a.b")


async def test_topics_only_for_methods_served_here(memory_bus: MemoryBus) -> None:
    async with busrpc.Server(memory_bus, Greeter()) as server:
        with pytest.raises(KeyError):
            await server.register_topic(DefaultName.ping, "eu")
        with pytest.raises(ValueError, match="does not use topics"):
            await server.register_topic(Greeter.say_hello, "eu")


async def test_a_server_starts_once(memory_bus: MemoryBus) -> None:
    server = busrpc.Server(memory_bus, Greeter())
    async with server:
        with pytest.raises(RuntimeError):
            await server.__aenter__()


async def test_current_call_is_none_outside_a_handler() -> None:
    assert busrpc.current_call() is None
