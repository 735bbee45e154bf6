"""The client runtime: unary (queue or direct), affinity and multi calls on any bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final, TypeVar, cast

import msgspec

from .._core import (
    DEFAULT_TIMEOUT,
    Codec,
    CodecError,
    Deadline,
    DeadlineExceeded,
    ErrorCode,
    Headers,
    Message,
    RpcError,
    Unavailable,
    error_of,
    is_error,
    is_no_responders,
)
from ..bus import MessageBus
from ._call import (
    Call,
    ClientInterceptor,
    MultiInterceptor,
    Next,
    RequestHook,
    ResponseHook,
    _current,
    compose,
)
from ._inbox import Inbox, ReplyStream
from ._method import (
    Claim,
    Method,
    Response,
    SelectionOpts,
    Topic,
    base_subject,
    cancel_subject,
    claim_subject,
    describe_subject,
    direct_subject,
    topic_tokens,
    validate_name,
)
from ._server import ServiceDescription

__all__ = ["RpcClient"]

Req = TypeVar("Req")
Resp = TypeVar("Resp")

_claim_decoder = msgspec.json.Decoder(Claim)
_description_decoder = msgspec.json.Decoder(ServiceDescription)
_DESCRIBE_TIMEOUT: Final = 1.0  # seconds to learn why nobody answered
_DEFAULT_SELECTION = SelectionOpts()


class RpcClient:
    """Calls methods on any `MessageBus`; the typed service clients are built on it.

    Args:
        bus: an entered bus.
        namespace: subject prefix shared with the servers (``prod.greeter.say_hello``).
        timeout: default seconds per call (10).
        codec: request codec when not the method's default (sends ``Content-Type``).
        headers: headers added to every call (metadata such as ``Busrpc-Meta-tenant``).
        interceptors, multi_interceptors: wrap unary and multi calls; the first is outermost.
        request_hooks, response_hooks: observe calls and results.

    Example:
        >>> client = RpcClient(bus)
        >>> reply = await client.unary(SAY_HELLO, Hello(name="ada"), deadline=Deadline.after(2))
    """

    def __init__(
        self,
        bus: MessageBus,
        *,
        namespace: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        codec: Codec | None = None,
        headers: dict[str, str] | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
        multi_interceptors: Sequence[MultiInterceptor] = (),
        request_hooks: Sequence[RequestHook] = (),
        response_hooks: Sequence[ResponseHook] = (),
    ) -> None:
        validate_name("namespace", namespace)
        self.bus = bus
        self.namespace: str | None = namespace or None
        self.timeout = timeout
        self.codec = codec
        self.headers: dict[str, str] = dict(headers or {})
        self._request_hooks = tuple(request_hooks)
        self._response_hooks = tuple(response_hooks)
        self._unary_chain: Next | None = compose(list(interceptors), self._send_unary)
        if not interceptors and not request_hooks and not response_hooks:
            self._unary_chain = None  # the fast path: no Call object at all
        self._multi_interceptors = list(multi_interceptors)
        self._subjects: dict[tuple[Method[Any, Any], tuple[str, ...]], tuple[str, str]] = {}
        self._inbox: Inbox | None = None

    @property
    def client_id(self) -> str:
        """This connection's client id (the ``_INBOX.{client_id}`` of its replies)."""
        return Inbox.for_bus(self.bus).client_id

    def deadline(self, timeout: float | None, deadline: Deadline | None) -> Deadline:
        """The call's deadline: explicit, else *timeout* or the client default, never
        later than the deadline of the call being served (nested calls inherit it)."""
        if deadline is None:
            deadline = Deadline.after(self.timeout if timeout is None else timeout)
        served = _current.get()
        return deadline if served is None else deadline.earliest(served.deadline)

    # -- unary ---------------------------------------------------------------------------

    async def unary(
        self,
        method: Method[Req, Resp],
        request: Req,
        *,
        deadline: Deadline,
        topic: Topic | None = None,
        server_id: str | None = None,
        selection: SelectionOpts | None = None,
        headers: dict[str, str] | None = None,
    ) -> Resp:
        """Call *method* once: the first free server (queue group) answers, or the server
        named by *server_id*, or, for affinity methods, the one *selection* picks.

        Raises:
            RpcError: the server answered with an error (same code as raised there).
            DeadlineExceeded: no answer before *deadline*.
            Unavailable: no server is listening (at once where the bus can tell).
        """
        tokens = topic_tokens(topic) if topic is not None else ()
        if method.topics and not tokens:
            raise ValueError(f"{method.service}.{method.name} needs a topic")
        key = (method, tokens)
        subjects = self._subjects.get(key)
        if subjects is None:
            subjects = self._subjects[key] = (
                base_subject(self.namespace, method, tokens),
                cancel_subject(self.namespace, method.service),
            )
        base, cancel_to = subjects
        subject = base if server_id is None else direct_subject(base, server_id)
        merged = {**self.headers, **headers} if headers else self.headers
        if self._unary_chain is None and not method.affinity:
            # The fast path, inlined: no Call object, no extra coroutine. Calling
            # `_request` instead costs 2.6k of 132k instructions per in-memory call
            # (benchmarks/instructions.py under callgrind); `_request` is the same steps
            # in general form, and tests/conformance run both (with and without
            # interceptors, a non-default codec).
            if self.codec is None:
                data = method.request_codec.encode(request)
                inbox = self._inbox
                if inbox is not None and inbox.started and not inbox.closed:
                    reply = await inbox.request(subject, data, merged, deadline, cancel_to)
                    try:
                        return _decode_reply(method, reply, subject)
                    except _NoResponders as exc:
                        raise await self._unserved(method, exc, deadline) from None
            return await self._request(method, request, subject, merged, deadline, cancel_to)
        call = Call(
            method=method,
            request=request,
            subject=subject,
            headers=dict(merged),
            deadline=deadline,
            topic=tokens,
            server_id=server_id,
        )
        if method.affinity and server_id is None:
            call = await self._select(call, selection or _DEFAULT_SELECTION)
        if self._unary_chain is None:
            return await self._request(
                method, request, call.subject, call.headers, deadline, cancel_to
            )
        return cast(Resp, await self._unary_chain(call))

    async def _send_unary(self, call: Call) -> object:
        for hook in self._request_hooks:
            await hook(call)
        try:
            cancel_to = cancel_subject(self.namespace, call.method.service)
            result = await self._request(
                call.method, call.request, call.subject, call.headers, call.deadline, cancel_to
            )
        except Exception as exc:
            for response_hook in self._response_hooks:
                await response_hook(call, None, exc)
            raise
        for response_hook in self._response_hooks:
            await response_hook(call, result, None)
        return result

    async def _request(
        self,
        method: Method[Any, Resp],
        request: object,
        subject: str,
        headers: dict[str, str],
        deadline: Deadline,
        cancel_to: str,
    ) -> Resp:
        codec = self.codec
        if codec is None or codec is method.request_codec:
            data = method.request_codec.encode(request)
        else:
            data = codec.encode(request)
            headers = {**headers, Headers.CONTENT_TYPE: codec.content_type}
        inbox = self._inbox
        if inbox is None or inbox.closed:
            inbox = self._inbox = Inbox.for_bus(self.bus)
        if not inbox.started:
            await inbox.wait_started(deadline)
        reply = await inbox.request(subject, data, headers, deadline, cancel_to)
        try:
            return _decode_reply(method, reply, subject)
        except _NoResponders as exc:
            raise await self._unserved(method, exc, deadline) from None

    async def describe(self, service: str, *, deadline: Deadline) -> ServiceDescription | None:
        """What one server of *service* serves (its ``_describe`` answer), or ``None`` if
        no busrpc server of it answers before *deadline*.

        Example:
            >>> d = await client.describe("greeter", deadline=Deadline.after(1))
            >>> d.methods if d else "nobody serves greeter"
        """
        inbox = Inbox.for_bus(self.bus)  # the live one, as multi and affinity calls take it
        try:
            if not inbox.started:
                await inbox.wait_started(deadline)
            reply = await inbox.request(
                describe_subject(self.namespace, service), b"", {}, deadline, None
            )
            if is_error(reply):
                return None
            return _description_decoder.decode(reply.data)
        except (RpcError, msgspec.DecodeError):
            return None

    async def _unserved(
        self, method: Method[Any, Any], no_responders: RpcError, deadline: Deadline
    ) -> RpcError:
        """Why nobody answered: ask one server of the service what it serves.

        Only on the error path: no server of the service at all is `Unavailable` (the
        transport's own answer, *no_responders*); a live service without the method is
        ``unimplemented``, naming it.
        """
        loop = asyncio.get_running_loop()
        probe = deadline.earliest(Deadline(loop.time() + _DESCRIBE_TIMEOUT))
        description = await self.describe(method.service, deadline=probe)
        if description is None:
            return no_responders  # nobody serves the service (or it is not a busrpc one)
        if method.name in description.methods:
            return no_responders  # served, but not here: a topic or a server id nobody has
        return RpcError(
            ErrorCode.UNIMPLEMENTED,
            f"service {method.service!r} has no method {method.name!r} "
            f"(it has {', '.join(description.methods) or 'none'})",
        )

    # -- affinity ------------------------------------------------------------------------

    async def _select(self, call: Call, opts: SelectionOpts) -> Call:
        """Ask every server for a claim, pick one, and address the winner directly.

        psrpc's ``selectServer`` (livekit/psrpc ``pkg/client/rpc.go``), with these
        differences: a bid of exactly 0 is valid (a server opts out with a negative
        score); an answer that the request is malformed fails the call at once (every
        server decodes it alike); ``select`` is never called without a valid claim; a
        claim whose server id is not a valid name is ignored. When collection ends with
        no valid claim the call fails then, not at its deadline.
        """
        inbox = Inbox.for_bus(self.bus)
        await inbox.wait_started(call.deadline)
        loop = asyncio.get_running_loop()
        subject = call.subject
        method = call.method
        data = (self.codec or method.request_codec).encode(call.request)
        headers = dict(call.headers)
        if self.codec is not None and self.codec is not method.request_codec:
            headers[Headers.CONTENT_TYPE] = self.codec.content_type
        stop_at = call.deadline.when
        if opts.affinity_timeout is not None:
            stop_at = min(stop_at, loop.time() + opts.affinity_timeout)
        valid: list[Claim] = []
        count = 0
        answer_error: RpcError | None = None
        with ReplyStream(inbox, call.deadline) as stream:
            claims = Message(claim_subject(subject), data, headers, stream.reply_to)
            async with call.deadline.scope():
                await self.bus.publish(claims)
                await asyncio.sleep(0)  # as in `_send_multi`: never starve the loop
            while await stream.wait_until(stop_at):
                while (reply := stream.pop()) is not None:
                    if is_error(reply):
                        error = error_of(reply, subject)
                        if is_no_responders(reply) or error.code is ErrorCode.MALFORMED_REQUEST:
                            raise error  # nobody will bid, or nobody can read the request
                        answer_error = error
                        continue
                    try:  # Claim checks its server id: a bad one is no claim either
                        claim = _claim_decoder.decode(reply.data)
                    except msgspec.DecodeError:
                        continue  # not a claim: ignore it, as psrpc does
                    count += 1
                    if not opts.accepts(claim):
                        continue
                    if opts.accept_first_available or (
                        opts.maximum_affinity > 0 and claim.affinity >= opts.maximum_affinity
                    ):
                        return _direct(call, claim.server_id)
                    if not valid and opts.short_circuit_timeout is not None:
                        stop_at = min(stop_at, loop.time() + opts.short_circuit_timeout)
                    valid.append(claim)
        if valid:
            if opts.select is not None:
                return _direct(call, opts.select(valid))
            best = max(valid, key=lambda claim: claim.affinity)  # first of the highest
            return _direct(call, best.server_id)
        if answer_error is not None:
            raise answer_error
        if count:
            raise Unavailable(f"no servers available for {subject} (received {count} claims)")
        raise Unavailable(f"no response from servers for {subject}")

    # -- multi ---------------------------------------------------------------------------

    def multi(
        self,
        method: Method[Req, Resp],
        request: Req,
        *,
        deadline: Deadline,
        topic: Topic | None = None,
        expect: int | None = None,
        first_success: bool = False,
        quiet: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[Response[Resp]]:
        """Call *method* on every server; yield each `Response` as it arrives.

        Iteration ends normally at *deadline*, after *expect* responses, after the first
        success (*first_success*), after *quiet* seconds without a response, or at once
        when no server listens. It never raises for a server's error: that is in the
        `Response`.
        """
        tokens = topic_tokens(topic) if topic is not None else ()
        if method.topics and not tokens:
            raise ValueError(f"{method.service}.{method.name} needs a topic")
        merged = {**self.headers, **headers} if headers else dict(self.headers)
        call = Call(
            method=method,
            request=request,
            subject=base_subject(self.namespace, method, tokens),
            headers=merged,
            deadline=deadline,
            topic=tokens,
        )
        stop = _MultiStop(expect, first_success, quiet)

        def terminal(c: Call) -> AsyncIterator[Response[Any]]:
            return self._send_multi(c, stop)

        chain = compose(self._multi_interceptors, terminal)
        return cast(AsyncIterator[Response[Resp]], chain(call))

    async def _send_multi(self, call: Call, stop: _MultiStop) -> AsyncIterator[Response[Any]]:
        for hook in self._request_hooks:
            await hook(call)
        inbox = Inbox.for_bus(self.bus)
        try:
            await inbox.wait_started(call.deadline)
        except DeadlineExceeded:
            return  # the gathering window closed before the request could go out
        loop = asyncio.get_running_loop()
        method = call.method
        headers = call.headers
        codec = self.codec or method.request_codec
        if codec is not method.request_codec:
            headers = {**headers, Headers.CONTENT_TYPE: codec.content_type}
        count = 0
        with ReplyStream(inbox, call.deadline) as stream:
            data = codec.encode(call.request)
            try:
                try:
                    async with call.deadline.scope():
                        message = Message(call.subject, data, headers, stream.reply_to)
                        await self.bus.publish(message)
                        # In-process servers may have answered inside publish: yield once,
                        # as a broker's round trip would, so a loop of calls cannot starve
                        # the event loop.
                        await asyncio.sleep(0)
                except DeadlineExceeded:
                    return  # the gathering window closed before the request went out
                last = loop.time()
                while True:
                    while (reply := stream.pop()) is not None:
                        response = _multi_response(method, reply, call.subject)
                        if response is None:
                            return  # no responders: nobody will answer
                        count += 1
                        last = loop.time()
                        for response_hook in self._response_hooks:
                            await response_hook(call, response.result, response.error)
                        yield response
                        if stop.expect is not None and count >= stop.expect:
                            return
                        if stop.first_success and response.error is None:
                            return
                    stop_at = call.deadline.when
                    if stop.quiet is not None:
                        stop_at = min(stop_at, last + stop.quiet)
                    if not await stream.wait_until(stop_at):
                        return
            except asyncio.CancelledError:
                # The caller gave up: tell the servers still working on it.
                inbox.send_cancel(cancel_subject(self.namespace, method.service), stream.reply_to)
                raise


class _MultiStop:
    __slots__ = ("expect", "first_success", "quiet")

    def __init__(self, expect: int | None, first_success: bool, quiet: float | None) -> None:
        if expect is not None and expect < 1:
            raise ValueError("expect must be at least 1")
        self.expect = expect
        self.first_success = first_success
        self.quiet = quiet


def _direct(call: Call, server_id: str) -> Call:
    return msgspec.structs.replace(
        call, subject=direct_subject(call.subject, server_id), server_id=server_id
    )


class _NoResponders(Unavailable):
    """The transport's own answer: no subscriber took the request."""


def _decode_reply(method: Method[Any, Resp], reply: Message, subject: str) -> Resp:
    headers = reply.headers
    codec = method.response_codec
    if headers:
        if Headers.ERROR in headers or Headers.NATS_ERROR_CODE in headers:
            error = error_of(reply, subject)
            if is_no_responders(reply):
                raise _NoResponders(error.message)
            raise error
        content_type = headers.get(Headers.CONTENT_TYPE)
        if content_type is not None and content_type != codec.content_type:
            from .._core import codec_for_content_type

            try:
                codec = codec_for_content_type(content_type)
            except CodecError as exc:
                raise RpcError(ErrorCode.MALFORMED_RESULT, str(exc)) from exc
    try:
        return codec.decode(reply.data, method.response_type)
    except CodecError as exc:
        raise RpcError(ErrorCode.MALFORMED_RESULT, f"{subject}: {exc}") from exc


def _multi_response(method: Method[Any, Any], reply: Message, subject: str) -> Response[Any] | None:
    server_id = reply.headers.get(Headers.SERVER, "") if reply.headers else ""
    try:
        return Response(server_id=server_id, result=_decode_reply(method, reply, subject))
    except RpcError as exc:
        if is_no_responders(reply):
            return None  # the transport's answer: nobody serves it (a server's error is an item)
        return Response(server_id=server_id, error=exc)
