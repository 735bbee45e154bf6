"""Interceptors, hooks and metadata: composed in order, seeing every call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

import busrpc
from busrpc import Call, MessageBus, Response, ServerCall
from busrpc.rpc import (
    ClientInterceptor,
    MultiInterceptor,
    MultiNext,
    Next,
    ServerInterceptor,
    ServerNext,
)

from .services import ContextReporter, Failer, Failure, Greeter, Hello


def client_interceptor(name: str, log: list[str]) -> ClientInterceptor:
    async def intercept(call: Call, next_: Next) -> object:
        log.append(f"{name} before")
        try:
            return await next_(call)
        finally:
            log.append(f"{name} after")

    return intercept


def server_interceptor(name: str, log: list[str]) -> ServerInterceptor:
    async def intercept(call: ServerCall, next_: ServerNext) -> object:
        log.append(f"{name} before {call.subject}")
        try:
            return await next_(call)
        finally:
            log.append(f"{name} after")

    return intercept


async def test_interceptors_run_in_order_first_is_outermost(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    client_log: list[str] = []
    server_log: list[str] = []
    server_ics = [server_interceptor(n, server_log) for n in ("s1", "s2")]
    async with busrpc.Server(peer_bus, Greeter(), namespace=ns, interceptors=server_ics):
        greeter = busrpc.client(
            Greeter,
            bus,
            namespace=ns,
            interceptors=[client_interceptor(n, client_log) for n in ("c1", "c2")],
        )
        assert (await greeter.say_hello(Hello(name="x"))).text == "hello x"
    assert client_log == ["c1 before", "c2 before", "c2 after", "c1 after"]
    subject = f"{ns}.greeter.say_hello"
    assert server_log == [f"s1 before {subject}", f"s2 before {subject}", "s2 after", "s1 after"]


async def test_interceptors_see_errors_and_may_replace_results(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    seen: list[busrpc.ErrorCode] = []

    async def recover(call: Call, next_: Next) -> object:
        try:
            return await next_(call)
        except busrpc.RpcError as exc:
            seen.append(exc.code)
            return busrpc.RpcError  # what the caller gets instead

    async with busrpc.Server(peer_bus, Failer(), namespace=ns):
        failer = busrpc.client(Failer, bus, namespace=ns, interceptors=[recover])
        result: Any = await failer.fail(Failure(code="not_found"))
    assert result is busrpc.RpcError
    assert seen == [busrpc.ErrorCode.NOT_FOUND]


async def test_client_interceptor_can_add_headers(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async def add_user(call: Call, next_: Next) -> object:
        headers = {**call.headers, "Busrpc-Meta-user": "ada"}
        return await next_(msgspec.structs.replace(call, headers=headers))

    async with busrpc.Server(peer_bus, ContextReporter(), namespace=ns, server_id="srv"):
        reporter = busrpc.client(ContextReporter, bus, namespace=ns, interceptors=[add_user])
        context = await reporter.show(Hello(name="x"))
    assert context.metadata == {"user": "ada"}


async def test_metadata_headers_reach_the_handler(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    async with busrpc.Server(peer_bus, ContextReporter(), namespace=ns, server_id="srv"):
        reporter = busrpc.client(
            ContextReporter, bus, namespace=ns, headers={"Busrpc-Meta-tenant": "acme"}
        )
        context = await reporter.show(
            Hello(name="x"), headers={"Busrpc-Meta-user": "ada", "X-Other": "not metadata"}
        )
        plain = await reporter.show(Hello(name="y"))
    assert context.metadata == {"tenant": "acme", "user": "ada"}
    assert context.server == "srv"
    assert context.subject == f"{ns}.context.show"
    assert plain.metadata == {"tenant": "acme"}


async def test_request_and_response_hooks_see_calls_results_and_errors(
    bus: MessageBus, peer_bus: MessageBus, ns: str
) -> None:
    requests: list[tuple[str, object]] = []
    responses: list[tuple[str, object, busrpc.ErrorCode | None]] = []

    async def on_request(call: Call) -> None:
        requests.append((call.subject, call.request))

    async def on_response(call: Call, result: object, error: Exception | None) -> None:
        code = error.code if isinstance(error, busrpc.RpcError) else None
        responses.append((call.subject, result, code))

    async with busrpc.Server(peer_bus, Greeter(), Failer(), namespace=ns):
        kwargs: dict[str, Any] = {
            "namespace": ns,
            "request_hooks": [on_request],
            "response_hooks": [on_response],
        }
        greeter = busrpc.client(Greeter, bus, **kwargs)
        failer = busrpc.client(Failer, bus, **kwargs)
        greeting = await greeter.say_hello(Hello(name="x"))
        with pytest.raises(busrpc.RpcError):
            await failer.fail(Failure(code="permission_denied"))

    hello, fail = f"{ns}.greeter.say_hello", f"{ns}.failer.fail"
    assert requests == [(hello, Hello(name="x")), (fail, Failure(code="permission_denied"))]
    assert responses == [(hello, greeting, None), (fail, None, busrpc.ErrorCode.PERMISSION_DENIED)]


async def test_multi_interceptors_and_hooks(bus: MessageBus, peer_bus: MessageBus, ns: str) -> None:
    log: list[str] = []
    hooked: list[str] = []

    def multi_interceptor(name: str) -> MultiInterceptor:
        async def intercept(call: Call, next_: MultiNext) -> AsyncIterator[Response[Any]]:
            log.append(f"{name} before")
            async for response in next_(call):
                log.append(f"{name} {response.server_id}")
                yield response
            log.append(f"{name} after")

        return intercept

    async def on_response(call: Call, result: object, error: Exception | None) -> None:
        hooked.append(f"{call.subject} {result is not None} {error is None}")

    async with busrpc.Server(peer_bus, Greeter(), namespace=ns, server_id="only"):
        greeter = busrpc.client(
            Greeter,
            bus,
            namespace=ns,
            multi_interceptors=[multi_interceptor("m1"), multi_interceptor("m2")],
            response_hooks=[on_response],
        )
        async with asyncio.timeout(5):
            responses = [r async for r in greeter.stats(Hello(name="x"), expect=1, timeout=30)]
    assert [r.server_id for r in responses] == ["only"]
    assert log == ["m1 before", "m2 before", "m2 only", "m1 only", "m2 after", "m1 after"]
    assert hooked == [f"{ns}.greeter.stats True True"]
