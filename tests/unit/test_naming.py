"""One naming rule (`busrpc.rpc.validate_name`), applied where a name is declared or
configured, never at first use; and everything else `@busrpc.service` checks up front."""

from __future__ import annotations

import msgspec
import pytest

import busrpc
from busrpc.rpc import Method, RpcClient, RpcServer, validate_name
from busrpc.rpc._method import NameKind
from busrpc.service import service_def
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


# -- the rule ------------------------------------------------------------------------------

KINDS: tuple[NameKind, ...] = ("service", "method", "namespace", "topic", "server_id")

VALID: list[tuple[NameKind, str]] = [
    *((kind, name) for kind in KINDS for name in ("greeter", "say_hello", "a", "0", "A-9_b")),
    ("namespace", "eu.prod"),
    ("namespace", "a.b.c"),
    ("topic", "eu:west"),
    ("topic", "k=v+w~x"),
    ("server_id", "3f9a1c0de2b4"),
]

# Refused for every kind.
INVALID_EVERYWHERE = [
    "",
    "a b",
    "a*",
    "*",
    ">",
    "a>",
    "_cancel",  # reserved for busrpc's control subjects
    "_INBOX",
    "@node",  # reserved for server ids
    "-x",
    "greeter\n",  # "$" in a regex matches before a trailing newline: fullmatch does not
    "a\tb",
    "a\x00",
    "grüß",  # one rule on every bus: ASCII only
    "a/b",
    "a#",
    "a b ",
]


@pytest.mark.parametrize(("kind", "name"), VALID)
def test_valid_names_pass_and_are_returned(kind: NameKind, name: str) -> None:
    assert validate_name(kind, name) == name


@pytest.mark.parametrize("name", INVALID_EVERYWHERE)
@pytest.mark.parametrize("kind", KINDS)
def test_invalid_names_are_refused_for_every_kind(kind: NameKind, name: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        validate_name(kind, name)


@pytest.mark.parametrize("kind", ["service", "method", "topic", "server_id"])
def test_only_a_namespace_may_have_several_tokens(kind: NameKind) -> None:
    with pytest.raises(ValueError, match=r"a\.b"):
        validate_name(kind, "a.b")


@pytest.mark.parametrize("namespace", ["eu..prod", ".eu", "eu.", "eu._x", "eu.@x", "eu.a b"])
def test_every_token_of_a_namespace_follows_the_rule(namespace: str) -> None:
    with pytest.raises(ValueError, match="invalid namespace"):
        validate_name("namespace", namespace)


@pytest.mark.parametrize("name", ["a:b", "a=b", "a~b", "a+b"])
def test_topic_tokens_allow_a_few_more_marks_than_names(name: str) -> None:
    assert validate_name("topic", name) == name
    with pytest.raises(ValueError, match="invalid service name"):
        validate_name("service", name)


def test_none_is_no_name_and_passes() -> None:
    assert validate_name("namespace", None) is None


def test_a_name_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        validate_name("service", 5)  # type: ignore[call-overload]


def test_the_wire_level_method_follows_the_rule() -> None:
    with pytest.raises(ValueError, match="invalid method name"):
        Method("greeter", "_claim", str, str)
    with pytest.raises(ValueError, match="invalid service name"):
        Method("@greeter", "hi", str, str)


# -- service and method names: at decoration ------------------------------------------------


@pytest.mark.parametrize("name", ["bad name", "a.b", "_hidden", "@x", ""])
def test_a_bad_service_name_fails_at_decoration(name: str) -> None:
    with pytest.raises(ValueError, match="invalid service name"):
        busrpc.service(name)


def test_a_class_name_that_is_no_valid_service_name_needs_a_name() -> None:
    with pytest.raises(ValueError, match=r"@busrpc\.service\(name\)"):

        @busrpc.service()
        class _Private:
            @busrpc.rpc
            async def ping(self, req: str) -> str:
                return req


@pytest.mark.parametrize("name", ["a.b", "_cancel", "@x", "a b", "x\n"])
def test_a_bad_wire_name_fails_at_decoration(name: str) -> None:
    with pytest.raises(ValueError, match="invalid method name"):

        class Svc:
            @busrpc.rpc(name=name)
            async def ping(self, req: str) -> str:
                return req


def test_a_python_name_that_is_no_valid_wire_name_needs_a_name() -> None:
    with pytest.raises(ValueError, match=r"_ping.*@busrpc\.rpc\(name=\.\.\.\)"):

        class Svc:
            @busrpc.rpc
            async def _ping(self, req: str) -> str:
                return req


def test_a_python_name_can_be_renamed_onto_the_wire() -> None:
    @busrpc.service("svc")
    class Svc:
        @busrpc.rpc(name="ping")
        async def _ping(self, req: str) -> str:
            return req

    assert [d.name for d in service_def(Svc)] == ["ping"]


# -- namespaces, server ids, topics: at construction or when passed -------------------------


@pytest.mark.parametrize("namespace", ["a b", "_x", "a..b", "@x", "a.>", ""])
async def test_a_bad_namespace_fails_when_the_client_is_made(
    memory_bus: MemoryBus, namespace: str
) -> None:
    with pytest.raises(ValueError, match="invalid namespace"):
        RpcClient(memory_bus, namespace=namespace)
    with pytest.raises(ValueError, match="invalid namespace"):
        busrpc.client(Greeter, memory_bus, namespace=namespace)


@pytest.mark.parametrize("namespace", ["a b", "_x", "a..b", "@x", "a.>", ""])
async def test_a_bad_namespace_fails_when_the_server_is_made(
    memory_bus: MemoryBus, namespace: str
) -> None:
    with pytest.raises(ValueError, match="invalid namespace"):
        RpcServer(memory_bus, namespace=namespace)
    with pytest.raises(ValueError, match="invalid namespace"):
        busrpc.Server(memory_bus, Greeter(), namespace=namespace)


@pytest.mark.parametrize("server_id", ["a b", "_x", "@x", "a.b", "a*", "", "x\n"])
async def test_a_bad_server_id_fails_when_the_server_is_made(
    memory_bus: MemoryBus, server_id: str
) -> None:
    with pytest.raises(ValueError, match="invalid server id"):
        RpcServer(memory_bus, server_id=server_id)
    with pytest.raises(ValueError, match="invalid server id"):
        busrpc.Server(memory_bus, Greeter(), server_id=server_id)


async def test_a_namespace_of_several_tokens_is_one_prefix(memory_bus: MemoryBus) -> None:
    async with (
        busrpc.Server(memory_bus, Greeter(), namespace="eu.prod"),
        memory_bus.subscribe("replies") as replies,
    ):
        greeter = busrpc.client(Greeter, memory_bus, namespace="eu.prod")
        assert (await greeter.say_hello(Hello(name="ada"))).text == "hello ada"
        raw = busrpc.Message("eu.prod.greeter.say_hello", b'{"name":"bob"}', reply="replies")
        await memory_bus.publish(raw)
        assert (await replies.receive()).data == b'{"text":"hello bob"}'
        other = busrpc.client(Greeter, memory_bus, namespace="eu")
        with pytest.raises(busrpc.Unavailable):
            await other.say_hello(Hello(name="eve"), timeout=5)


@pytest.mark.parametrize("server_id", ["a b", "_x", "@x", "a.b", "a.>", ""])
async def test_a_bad_server_id_fails_when_a_call_names_it(
    memory_bus: MemoryBus, server_id: str
) -> None:
    async with busrpc.Server(memory_bus, Greeter()) as server:
        greeter = busrpc.client(Greeter, memory_bus)
        with pytest.raises(ValueError, match="invalid server id"):
            await greeter.say_hello(Hello(name="x"), server_id=server_id, timeout=5)
        assert server.statistics().received == 0


# -- one wire name, one method ----------------------------------------------------------------


def test_two_methods_with_one_wire_name_fail_at_decoration() -> None:
    with pytest.raises(TypeError, match=r"Dup\.one and Dup\.two have the same wire name 'x'"):

        @busrpc.service("dup")
        class Dup:
            @busrpc.rpc(name="x")
            async def one(self, req: str) -> str:
                return req

            @busrpc.rpc(name="x")
            async def two(self, req: str) -> str:
                return req


def test_a_renamed_method_may_not_take_another_methods_python_name() -> None:
    with pytest.raises(TypeError, match="same wire name 'ping'"):

        @busrpc.service("dup")
        class Dup:
            @busrpc.rpc
            async def ping(self, req: str) -> str:
                return req

            @busrpc.rpc(name="ping")
            async def other(self, req: str) -> str:
                return req


def test_a_subclass_method_may_not_take_a_base_methods_wire_name() -> None:
    with pytest.raises(TypeError, match="same wire name 'say_hello'"):

        @busrpc.service("greeter2")
        class Louder(Greeter):
            @busrpc.rpc(name="say_hello")
            async def shout(self, req: Hello) -> Greeting:
                return Greeting(text=f"HELLO {req.name}")


def test_one_method_under_two_attributes_is_refused() -> None:
    with pytest.raises(TypeError, match="same wire name 'ping'"):

        @busrpc.service("alias")
        class Alias:
            @busrpc.rpc
            async def ping(self, req: str) -> str:
                return req

            pong = ping


async def test_a_subclass_override_replaces_the_base_method(memory_bus: MemoryBus) -> None:
    @busrpc.service("greeter")
    class Louder(Greeter):
        @busrpc.rpc
        async def say_hello(self, req: Hello) -> Greeting:
            return Greeting(text=f"HELLO {req.name}")

    assert [d.attr for d in service_def(Louder)] == ["say_hello"]
    async with busrpc.Server(memory_bus, Louder()):
        greeter = busrpc.client(Louder, memory_bus)
        assert (await greeter.say_hello(Hello(name="ada"))).text == "HELLO ada"


def test_a_subclass_attribute_hides_the_base_method() -> None:
    @busrpc.service("quiet")
    class Quiet(Greeter):
        @busrpc.rpc
        async def whisper(self, req: Hello) -> Greeting:
            return Greeting(text=req.name)

        async def say_hello(self, req: Hello) -> Greeting:  # type: ignore[override]
            return Greeting(text="not on the wire")

    assert [d.name for d in service_def(Quiet)] == ["whisper"]


async def test_a_base_and_its_subclass_serve_under_their_own_names(
    memory_bus: MemoryBus,
) -> None:
    @busrpc.service("polite")
    class Polite(Greeter):
        pass

    async with busrpc.Server(memory_bus, Greeter(), Polite()):
        for cls in (Greeter, Polite):
            reply = await busrpc.client(cls, memory_bus).say_hello(Hello(name="ada"))
            assert reply.text == "hello ada"


def test_multi_and_affinity_together_fail_at_decoration() -> None:
    with pytest.raises(ValueError, match="either multi or affinity"):

        class Svc:
            @busrpc.rpc(multi=True, affinity=True)  # type: ignore[call-overload, untyped-decorator]
            async def ping(self, req: str) -> str:
                return req


# -- types: resolved at decoration -------------------------------------------------------------


class NoCodecForThis:
    """A plain class: no codec encodes or decodes it."""


def test_a_type_no_codec_supports_fails_at_decoration() -> None:
    with pytest.raises(TypeError):

        @busrpc.service("nocodec")
        class NoCodec:
            @busrpc.rpc
            async def ping(self, req: NoCodecForThis) -> str:
                return "x"


def test_an_annotation_that_is_no_type_fails_at_decoration() -> None:
    with pytest.raises(TypeError, match="bad annotation"):

        @busrpc.service("broken")
        class Broken:
            @busrpc.rpc
            async def ping(self, req: "list[int") -> str:  # type: ignore[valid-type]  # noqa: F722
                return "x"


def test_a_wrong_signature_fails_at_decoration() -> None:
    with pytest.raises(TypeError, match="exactly one request argument"):

        @busrpc.service("two")
        class Two:
            @busrpc.rpc  # type: ignore[arg-type]
            async def ping(self, a: str, b: str) -> str:
                return a + b


@busrpc.service("later")
class UsesLaterTypes:
    """Its types are defined below it: they resolve when a server or client needs them."""

    @busrpc.rpc
    async def echo(self, req: DefinedLater) -> DefinedLater:
        return DefinedLater(value=req.value * 2)


class DefinedLater(msgspec.Struct):
    value: int


async def test_forward_references_resolve_on_first_use(memory_bus: MemoryBus) -> None:
    async with busrpc.Server(memory_bus, UsesLaterTypes()):
        later = busrpc.client(UsesLaterTypes, memory_bus)
        assert await later.echo(DefinedLater(value=21)) == DefinedLater(value=42)


async def test_a_name_that_never_resolves_fails_when_first_served(
    memory_bus: MemoryBus,
) -> None:
    @busrpc.service("typo")  # not an error yet: it could be a forward reference
    class Typo:
        @busrpc.rpc
        async def ping(self, req: Nowhere) -> str:  # type: ignore[name-defined]  # noqa: F821
            return "x"

    with pytest.raises(TypeError, match="cannot resolve the annotations"):
        busrpc.Server(memory_bus, Typo())
