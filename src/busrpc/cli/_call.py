"""``busrpc call service.method JSON``: one call with a raw JSON body, no Python types."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import msgspec

import busrpc
from busrpc.rpc import Method, Response, RpcClient

from ._runtime import CliError, open_bus

__all__ = ["RawCall", "call_multi", "call_unary", "parse_json", "parse_method"]


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
        TransportError: the bus is unreachable.
    """
    async with contextlib.AsyncExitStack() as stack:
        bus = await open_bus(stack, call.url)
        client = RpcClient(bus, namespace=call.namespace)
        result = await client.unary(
            call.method,
            call.body,
            deadline=busrpc.Deadline.after(call.timeout),
            topic=call.topic,
            server_id=server_id,
        )
        return bytes(result)


async def call_multi(
    call: RawCall, *, expect: int | None, on_response: Callable[[Response[bytes]], None]
) -> int:
    """Call every server and pass each response (results as JSON) to *on_response* as it
    arrives, until *expect* answered or the timeout passed; the number of responses.

    Raises:
        TransportError: the bus is unreachable.
    """
    count = 0
    async with contextlib.AsyncExitStack() as stack:
        bus = await open_bus(stack, call.url)
        client = RpcClient(bus, namespace=call.namespace)
        async for r in client.multi(
            call.method,
            call.body,
            deadline=busrpc.Deadline.after(call.timeout),
            topic=call.topic,
            expect=expect,
        ):
            count += 1
            result = None if r.result is None else bytes(r.result)
            on_response(Response(server_id=r.server_id, result=result, error=r.error))
    return count
