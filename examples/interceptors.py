"""Interceptors, hooks and metadata.

- A client interceptor adds an auth token as metadata (a ``Busrpc-Meta-*`` header).
- A server interceptor checks it before any handler runs, and records every call.
- Request and response hooks observe calls without changing them.
- A multi interceptor (an async generator) sees each response of a multi call.
- Handlers read metadata with `busrpc.current_call()`.

Interceptors are plain async functions ``(call, next)``; the first in the list is the
outermost.

    python examples/interceptors.py [URL]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import msgspec

import busrpc
from busrpc.rpc import ClientInterceptor, MultiNext, Next, ServerNext


class Note(msgspec.Struct):
    text: str


class Receipt(msgspec.Struct):
    text: str
    tenant: str


@busrpc.service("notes")
class Notes:
    @busrpc.rpc
    async def add(self, req: Note) -> Receipt:
        call = busrpc.current_call()
        assert call is not None
        tenant = call.metadata.get("tenant", "-")  # Busrpc-Meta-* headers, prefix removed
        return Receipt(text=req.text, tenant=tenant)

    @busrpc.rpc(multi=True)
    async def count(self, req: Note) -> int:
        return len(req.text)


def with_token(token: str) -> ClientInterceptor:
    """Client side: add the caller's token to every call."""

    async def interceptor(call: busrpc.Call, next: Next) -> object:
        headers = {**call.headers, "Busrpc-Meta-token": token}
        return await next(msgspec.structs.replace(call, headers=headers))

    return interceptor


TOKENS = {"s3cret": "ada"}


async def authenticate(call: busrpc.ServerCall, next: ServerNext) -> object:
    """Server side: refuse calls without a known token, before any handler runs."""
    if call.metadata.get("token") not in TOKENS:
        raise busrpc.RpcError("unauthenticated", "bad or missing token")
    return await next(call)


async def main(bus: busrpc.MessageBus) -> None:
    served: list[str] = []

    async def record(call: busrpc.ServerCall, next: ServerNext) -> object:
        user = TOKENS.get(call.metadata.get("token", ""), "anonymous")
        served.append(f"{call.method.name} by {user}")
        return await next(call)

    events: list[str] = []

    async def on_request(call: busrpc.Call) -> None:
        events.append(f"request {call.subject}")

    async def on_response(call: busrpc.Call, result: object, error: Exception | None) -> None:
        events.append(f"response {call.subject} {'ok' if error is None else 'error'}")

    async def multi_with_token(
        call: busrpc.Call, next: MultiNext
    ) -> AsyncIterator[busrpc.Response[Any]]:
        # Unary interceptors do not wrap multi calls: this one adds the token for them.
        headers = {**call.headers, "Busrpc-Meta-token": "s3cret"}
        async for response in next(msgspec.structs.replace(call, headers=headers)):
            events.append(f"multi response from {response.server_id}")
            yield response

    async with busrpc.Server(bus, Notes(), server_id="n1", interceptors=[record, authenticate]):
        notes = busrpc.client(
            Notes,
            bus,
            headers={"Busrpc-Meta-tenant": "acme"},  # sent with every call
            interceptors=[with_token("s3cret")],
            multi_interceptors=[multi_with_token],
            request_hooks=[on_request],
            response_hooks=[on_response],
        )
        receipt = await notes.add(Note(text="buy milk"), timeout=5)
        print(receipt)
        assert receipt == Receipt(text="buy milk", tenant="acme")

        # Per-call headers override the client's.
        receipt = await notes.add(
            Note(text="x"), timeout=5, headers={"Busrpc-Meta-tenant": "globex"}
        )
        assert receipt.tenant == "globex"

        counts = [r.unwrap() async for r in notes.count(Note(text="four"), expect=1, timeout=5)]
        assert counts == [4]

        anonymous = busrpc.client(Notes, bus)
        try:
            await anonymous.add(Note(text="spam"), timeout=5)
        except busrpc.RpcError as exc:
            print("anonymous:", exc)
            assert exc.code is busrpc.ErrorCode.UNAUTHENTICATED
        else:
            raise AssertionError("the server interceptor should refuse it")

    print(*events, sep="\n")
    assert events == [
        "request notes.add",
        "response notes.add ok",
        "request notes.add",
        "response notes.add ok",
        "request notes.count",
        "response notes.count ok",
        "multi response from n1",
    ]
    assert served == ["add by ada", "add by ada", "count by ada", "add by anonymous"]


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
