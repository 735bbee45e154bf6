"""``busrpc call service.method JSON``: one call with a raw JSON body, no Python types."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import msgspec

import busrpc
from busrpc.rpc import Method, Response, RpcClient
from busrpc.service import service_def

from ._runtime import EXIT_USAGE, CliError, open_bus
from ._serve import load_target

__all__ = [
    "DESCRIBE_TIMEOUT",
    "MultiStop",
    "RawCall",
    "call_multi",
    "call_unary",
    "check_declared",
    "parse_json",
    "parse_method",
]


class RawCall(msgspec.Struct, frozen=True, kw_only=True):
    """What ``busrpc call`` was asked to do."""

    method: Method[msgspec.Raw, msgspec.Raw]
    body: msgspec.Raw
    url: str
    timeout: float
    namespace: str | None = None
    topic: tuple[str, ...] | None = None


def parse_method(
    target: str, *, multi: bool, affinity: bool, topic: bool
) -> Method[msgspec.Raw, msgspec.Raw]:
    """The wire `Method` for ``service.method``, with JSON bodies left undecoded.

    Raises:
        CliError: not ``service.method``, or the names are invalid (exit code 2).

    Example:
        >>> parse_method("greeter.say_hello", multi=False, affinity=False, topic=False)
        <Method greeter.say_hello>
    """
    service, sep, name = target.partition(".")
    if not sep or not service or not name or "." in name:
        raise CliError(f"invalid method {target!r}: use SERVICE.METHOD", exit_code=2)
    try:
        return Method(
            service, name, msgspec.Raw, msgspec.Raw, multi=multi, affinity=affinity, topics=topic
        )
    except ValueError as exc:
        raise CliError(str(exc), exit_code=2) from exc


def check_declared(spec: str, method: Method[Any, Any]) -> None:
    """Check *method* (what the options say) against the service class *spec* names
    (``module:Class``, imported as ``busrpc serve`` does): without it the command line
    cannot know how a method was declared.

    Raises:
        CliError: the class does not import, is not that service, has no such method, or
            declares it otherwise (multi, affinity, topics) (exit code 2).

    Example:
        >>> check_declared("examples.multi:Node", parse_method("cluster.stats", multi=True,
        ...                affinity=False, topic=False))
    """
    try:
        sdef = service_def(load_target(spec))
    except TypeError as exc:
        raise CliError(f"--service-class {spec}: {exc}", exit_code=EXIT_USAGE) from exc
    if sdef.name != method.service:
        raise CliError(
            f"--service-class {spec} declares the service {sdef.name!r}, not {method.service!r}",
            exit_code=EXIT_USAGE,
        )
    decl = next((d for d in sdef if d.name == method.name), None)
    if decl is None:
        known = ", ".join(sorted(d.name for d in sdef))
        raise CliError(f"{sdef.name} has no method {method.name!r} ({known})", exit_code=EXIT_USAGE)
    full = f"{method.service}.{method.name}"
    for option, flag, declared, used in (
        ("--multi", "multi", decl.multi, method.multi),
        ("--affinity", "affinity", decl.affinity_enabled, method.affinity),
        ("--topic", "topics", decl.topics, method.topics),
    ):
        if used and not declared:
            raise CliError(f"{full} is not declared {flag}=True: drop {option}", exit_code=2)
        # An affinity method also takes plain unary calls (one server of the queue group).
        if declared and not used and option != "--affinity":
            raise CliError(f"{full} is declared {flag}=True: pass {option}", exit_code=2)


def parse_json(text: str) -> msgspec.Raw:
    """*text*, checked to be one JSON document, as the request body.

    Raises:
        CliError: not valid JSON (exit code 2).

    Example:
        >>> parse_json('{"name": "ada"}')
        <msgspec.Raw ...>
    """
    data = text.encode()
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise CliError(f"the request is not valid JSON: {exc}", exit_code=2) from exc
    return msgspec.Raw(data)


async def call_unary(call: RawCall, *, server_id: str | None) -> bytes:
    """Make the call; the JSON result.

    Raises:
        RpcError: the call failed (the server's error, `DeadlineExceeded`, `Unavailable`).
        ConnectError: the bus is unreachable.
    """
    async with contextlib.AsyncExitStack() as stack:
        bus = await open_bus(stack, call.url, retry=True)
        client = RpcClient(bus, namespace=call.namespace)
        result = await client.unary(
            call.method,
            call.body,
            deadline=busrpc.Deadline.after(call.timeout),
            topic=call.topic,
            server_id=server_id,
        )
        return bytes(result)


DESCRIBE_TIMEOUT = 1.0
"""Seconds ``busrpc call --multi`` asks the servers what kind of method it calls."""


class MultiStop(msgspec.Struct, frozen=True, kw_only=True):
    """When ``busrpc call --multi`` stops listening, besides its timeout."""

    expect: int | None = None
    first_success: bool = False
    quiet: float | None = None


async def call_multi(
    call: RawCall, stop: MultiStop, on_response: Callable[[Response[bytes]], None]
) -> int:
    """Call every server and pass each response (results as JSON) to *on_response* as it
    arrives, until *stop* says so, the timeout passed or nobody listens; the number of
    responses.

    Raises:
        CliError: the method answered as a unary one (exit code 2).
        ConnectError: the bus is unreachable.
    """
    count = 0
    async with contextlib.AsyncExitStack() as stack:
        bus = await open_bus(stack, call.url, retry=True)
        client = RpcClient(bus, namespace=call.namespace)
        deadline = busrpc.Deadline.after(min(call.timeout, DESCRIBE_TIMEOUT))
        described = await client.describe(call.method.service, deadline=deadline)
        name = call.method.name
        if described is not None and name in described.methods and name not in described.multi:
            method = f"{call.method.service}.{name}"
            raise CliError(
                f"{method} is not a multi method (its servers say so): call it without --multi",
                exit_code=EXIT_USAGE,
            )
        async for r in client.multi(
            call.method,
            call.body,
            deadline=busrpc.Deadline.after(call.timeout),
            topic=call.topic,
            expect=stop.expect,
            first_success=stop.first_success,
            quiet=stop.quiet,
        ):
            if r.error is None and not r.server_id:
                # Servers that could not describe themselves: multi replies name their
                # server, a unary method's reply has no headers.
                method = f"{call.method.service}.{call.method.name}"
                raise CliError(
                    f"{method} is not a multi method: one server of its queue group ran the "
                    "call and answered without a Busrpc-Server header; call it without --multi",
                    exit_code=EXIT_USAGE,
                )
            count += 1
            result = None if r.result is None else bytes(r.result)
            on_response(Response(server_id=r.server_id, result=result, error=r.error))
    return count
