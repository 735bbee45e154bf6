"""The server runtime: subscriptions, a bounded pool of handlers, replies, shutdown."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import msgspec

from .._core import (
    DEFAULT_TIMEOUT,
    ClosedResourceError,
    Codec,
    CodecError,
    ErrorCode,
    Headers,
    Message,
    RpcError,
    TransportError,
    codec_for_content_type,
    error_message,
)
from ..bus import MessageBus, Overflow, Subscription, SupportsListen
from ._call import ServerCall, ServerInterceptor, ServerNext, _current
from ._method import Claim, Method, Topic, base_subject, claim_subject, direct_subject, topic_tokens
from ._pool import WorkerPool
from ._timers import TimerWheel
from ._wire import deadline_of

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "RpcServer", "ServerStatistics"]

logger = logging.getLogger("busrpc.rpc")

DEFAULT_MAX_MESSAGE_SIZE: Final = 1024 * 1024
"""Largest request body a server accepts (larger ones get ``resource_exhausted``)."""

Handler = Callable[[Any], Awaitable[Any]]
AffinityFn = Callable[[Any], float | Awaitable[float]]

_claim_encoder = msgspec.json.Encoder()
_Subscribed = tuple[Subscription, "asyncio.Task[None]", "_Route"]


class ServerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a server's counters."""

    received: int
    """Requests taken from the bus (claims included)."""
    succeeded: int
    """Calls answered with a result."""
    failed: int
    """Calls answered with an error (malformed request, handler error, ...)."""
    expired: int
    """Calls dropped because the caller's deadline passed (before or during the handler)."""
    in_flight: int
    """Handlers running now (a call leaves this count before its reply is sent)."""


class _Route:
    """How one subscription's messages are handled."""

    __slots__ = (
        "affinity",
        "call",
        "claim",
        "codec",
        "direct",
        "method",
        "reply_headers",
        "topic",
    )

    def __init__(
        self,
        method: Method[Any, Any],
        call: ServerNext,
        direct: Handler | None,
        topic: tuple[str, ...],
        *,
        claim: bool,
        affinity: AffinityFn | None,
        server_id: str,
    ) -> None:
        self.method = method
        self.call = call
        self.direct = direct  # the handler itself when no interceptor wraps it
        self.topic = topic
        self.claim = claim
        self.affinity = affinity
        self.codec = method.request_codec
        # Unary replies carry no header at all (the fast path); multi replies name the
        # server, because the caller tells the answers apart by it.
        self.reply_headers = {Headers.SERVER: server_id} if method.multi else None


class RpcServer:
    """Serves methods on any `MessageBus` until closed.

    Entering subscribes every method (returning once the subscriptions are live);
    leaving shuts down gracefully. At most *max_concurrency* handlers run at once; further
    requests wait in the subscription buffers (bounded: *max_pending* each, pushing back
    on the transport).

    Example:
        >>> server = RpcServer(bus)
        >>> server.add(SAY_HELLO, say_hello)
        >>> async with server:
        ...     await stop.wait()
    """

    def __init__(
        self,
        bus: MessageBus,
        *,
        server_id: str | None = None,
        namespace: str | None = None,
        max_concurrency: int | None = None,
        max_pending: int = 4096,
        interceptors: Sequence[ServerInterceptor] = (),
        default_timeout: float = DEFAULT_TIMEOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        shutdown_grace: float = 10.0,
    ) -> None:
        self.bus = bus
        self.server_id: str = server_id or secrets.token_hex(6)
        if "." in self.server_id or "*" in self.server_id or ">" in self.server_id:
            raise ValueError(f"invalid server id {self.server_id!r}")
        self.namespace: str | None = namespace or None
        self.max_concurrency: int = max_concurrency or 64 * (os.cpu_count() or 1)
        self.max_pending = max_pending
        self.default_timeout = default_timeout
        self.max_message_size = max_message_size
        self.shutdown_grace = shutdown_grace
        self._interceptors = list(interceptors)
        self._methods: dict[
            Method[Any, Any], tuple[ServerNext, Handler | None, AffinityFn | None]
        ] = {}
        self._topics: dict[tuple[Method[Any, Any], tuple[str, ...]], list[Subscription]] = {}
        self._subs: list[_Subscribed] = []
        self._pool: WorkerPool[tuple[Message, _Route]] = WorkerPool(
            self._handle, self.max_concurrency, self.max_concurrency
        )
        self._timers: TimerWheel[_Expiry] = TimerWheel(_Expiry.fire)
        self._state = "new"  # new -> serving -> closing -> closed
        self._killing = False
        self._lost: TransportError | None = None
        self._stopped = asyncio.Event()
        self._received = self._succeeded = self._failed = self._expired = 0
        self._in_flight = 0
        self._background: set[asyncio.Task[None]] = set()

    # -- configuration -------------------------------------------------------------------

    def add(
        self, method: Method[Any, Any], handler: Handler, *, affinity: AffinityFn | None = None
    ) -> None:
        """Serve *method* with *handler* (an async function of the decoded request).

        Affinity methods need *affinity*: a function of the request returning a score
        (higher is better; below 0 the server does not bid).
        """
        if self._state != "new":
            raise RuntimeError("add methods before the server starts")
        if method.affinity and affinity is None:
            raise TypeError(f"{method.service}.{method.name} is an affinity method: pass affinity=")
        direct = None if self._interceptors else handler
        self._methods[method] = (_chain(self._interceptors, handler), direct, affinity)

    async def register_topic(self, method: Method[Any, Any], topic: Topic) -> None:
        """Start serving *method* on *topic* (methods declared with ``topics=True``)."""
        tokens = topic_tokens(topic)
        if not method.topics:
            raise ValueError(f"{method.service}.{method.name} does not use topics")
        if method not in self._methods:
            raise KeyError(f"{method.service}.{method.name} is not served here")
        if (method, tokens) in self._topics:
            return
        self._topics[(method, tokens)] = []
        if self._state == "serving":
            await self._subscribe_method(method, tokens)

    async def deregister_topic(self, method: Method[Any, Any], topic: Topic) -> None:
        """Stop serving *method* on *topic*."""
        subs = self._topics.pop((method, topic_tokens(topic)), [])
        for sub in subs:
            await self._unsubscribe(sub)

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> RpcServer:
        if self._state != "new":
            raise RuntimeError("a server can be started only once")
        self._state = "serving"
        try:
            for method in self._methods:
                if method.topics:
                    for m, tokens in list(self._topics):
                        if m is method:
                            await self._subscribe_method(method, tokens)
                else:
                    await self._subscribe_method(method, ())
        except BaseException:
            await self.kill()
            raise
        logger.info(
            "serving",
            extra={"server_id": self.server_id, "methods": [m.name for m in self._methods]},
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop taking calls, let the running ones finish for *grace* seconds, then `kill`.

        Idempotent; safe to call on a server that never started.
        """
        if self._state in ("closing", "closed") or self._state == "new":
            self._state = "closed" if self._state == "new" else self._state
            return
        self._state = "closing"
        logger.info("draining", extra={"server_id": self.server_id, "in_flight": self._in_flight})
        await self._unsubscribe_all()
        grace = self.shutdown_grace if grace is None else grace
        try:
            async with asyncio.timeout(grace):
                await self._pool.wait_drained()
        except TimeoutError:
            logger.warning("grace period over", extra={"server_id": self.server_id})
        await self.kill()

    async def kill(self) -> None:
        """Stop now: unsubscribe, and answer every running or queued call ``unavailable``."""
        if self._state == "closed":
            return
        self._state = "closing"
        await self._unsubscribe_all()
        self._killing = True
        for message, route in self._pool.take_queued():
            await self._refuse(message, route)
        await self._pool.cancel_running()
        self._state = "closed"
        self._timers.close()
        self._stopped.set()
        logger.info("stopped", extra={"server_id": self.server_id})

    async def wait_closed(self) -> None:
        """Wait until the server has stopped (`shutdown`, `kill`, or its bus closed).

        Raises:
            TransportError: the server stopped because its bus closed under it (the
                broker went away for good): a supervisor should restart the process.
        """
        await self._stopped.wait()
        if self._lost is not None:
            raise self._lost

    def _bus_lost(self) -> None:
        """A subscription ended while serving: the bus closed under us."""
        if self._state != "serving":
            return
        self._lost = TransportError("the bus closed while serving")
        logger.error("bus lost", extra={"server_id": self.server_id})
        task = asyncio.get_running_loop().create_task(self.kill())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def statistics(self) -> ServerStatistics:
        """Counters of this server."""
        return ServerStatistics(
            received=self._received,
            succeeded=self._succeeded,
            failed=self._failed,
            expired=self._expired,
            in_flight=self._in_flight,
        )

    def __del__(self) -> None:
        if getattr(self, "_state", "closed") == "serving":
            warnings.warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=1)

    def __repr__(self) -> str:
        return f"<RpcServer {self.server_id!r} {self._state}>"

    # -- subscriptions -------------------------------------------------------------------

    async def _subscribe_method(self, method: Method[Any, Any], topic: tuple[str, ...]) -> None:
        call, direct, affinity = self._methods[method]
        base = base_subject(self.namespace, method, topic)
        route = _Route(
            method, call, direct, topic, claim=False, affinity=None, server_id=self.server_id
        )
        queue = None if method.multi else method.service
        subs = [
            await self._subscribe(base, queue, route),
            await self._subscribe(direct_subject(base, self.server_id), None, route),
        ]
        if method.affinity:
            claim = _Route(
                method, call, direct, topic, claim=True, affinity=affinity, server_id=self.server_id
            )
            subs.append(await self._subscribe(claim_subject(base), None, claim))
        if method.topics:
            self._topics.setdefault((method, topic), []).extend(subs)

    async def _subscribe(self, subject: str, queue: str | None, route: _Route) -> Subscription:
        sub = self.bus.subscribe(
            subject, queue=queue, max_pending=self.max_pending, overflow=Overflow.BLOCK
        )
        await sub.__aenter__()
        reader = asyncio.get_running_loop().create_task(
            self._read(sub, route), name=f"busrpc-server-{subject}"
        )
        self._subs.append((sub, reader, route))
        return sub

    async def _unsubscribe(self, sub: Subscription) -> None:
        for entry in list(self._subs):
            if entry[0] is sub:
                self._subs.remove(entry)
                await self._close_subscriptions([entry])

    async def _unsubscribe_all(self) -> None:
        subs, self._subs = self._subs, []
        await self._close_subscriptions(subs)

    async def _close_subscriptions(self, subs: list[_Subscribed]) -> None:
        readers = [reader for _, reader, _ in subs]
        for reader in readers:
            # A reader may be waiting for room in a full pool whose handlers never end:
            # it is ours, so stop it (it answers the request it holds).
            reader.cancel()
        if readers:
            await asyncio.wait(readers)
        for sub, _, route in subs:
            try:
                # Requests that reached this server but no worker: answer them now, so
                # their callers can go elsewhere instead of waiting for their deadline.
                while sub.statistics().pending:
                    await self._refuse(await sub.receive(), route)
                await sub.aclose()
            except (TransportError, ClosedResourceError):
                logger.warning("unsubscribe failed", exc_info=True)

    async def _refuse(self, message: Message, route: _Route) -> None:
        if message.reply and not route.claim:
            self._failed += 1
            error = RpcError(ErrorCode.UNAVAILABLE, "server is shutting down")
            await self._publish(error_message(message.reply, error, self.server_id))

    async def _read(self, sub: Subscription, route: _Route) -> None:
        if not isinstance(sub, SupportsListen):
            async for message in sub:
                await self._submit(message, route)
            self._bus_lost()
            return
        # Push mode: the transport hands each request straight to a worker. When the
        # pool is full the subscription buffers instead (pushing back on the transport),
        # and this task drains that buffer at the pool's pace, then pushes again.
        loop = asyncio.get_running_loop()
        pool = self._pool
        while True:
            try:  # what arrived before push mode (or while the pool was full), in order
                while sub.statistics().pending:
                    await self._submit(await sub.receive(), route)
            except ClosedResourceError:
                self._bus_lost()
                return
            refused: asyncio.Future[bool] = loop.create_future()

            def on_message(
                message: Message | None, refused: asyncio.Future[bool] = refused
            ) -> bool:
                if message is None:  # closed
                    if not refused.done():
                        refused.set_result(False)
                    return True
                if pool.submit_nowait((message, route)):
                    self._received += 1
                    return True
                if not refused.done():
                    refused.set_result(True)
                return False

            sub.listen(on_message)
            if not await refused:
                self._bus_lost()
                return

    async def _submit(self, message: Message, route: _Route) -> None:
        self._received += 1
        if not self._pool.submit_nowait((message, route)):
            try:
                await self._pool.submit((message, route))  # bounded: the rest waits in `sub`
            except asyncio.CancelledError:
                await self._refuse(message, route)  # stopping: answer the one we hold
                raise

    # -- calls ---------------------------------------------------------------------------

    async def _handle(self, item: tuple[Message, _Route]) -> None:
        message, route = item
        if route.claim:
            await self._claim(message, route)
            return
        loop = asyncio.get_running_loop()
        deadline = deadline_of(message, self.default_timeout, loop.time())
        if deadline.when <= loop.time():
            self._expired += 1  # the caller has given up already
            return
        reply = message.reply
        try:
            request, codec = self._decode(message, route)
            call = ServerCall(
                method=route.method,
                request=request,
                subject=message.subject,
                headers=message.headers,
                deadline=deadline,
                server_id=self.server_id,
                topic=route.topic,
            )
            token = _current.set(call)
            # Cancel the handler at the deadline (a timer wheel entry: far cheaper than
            # asyncio.timeout_at); the flag tells our cancel from kill()'s or the loop's.
            expiry = _Expiry()
            slot = self._timers.add(deadline.when, expiry)
            self._in_flight += 1
            try:
                direct = route.direct
                result = await (route.call(call) if direct is None else direct(request))
            except asyncio.CancelledError:
                if not expiry.fired:
                    raise
                expiry.consumed()
                self._expired += 1  # the caller gets DeadlineExceeded on its side
                return
            finally:
                # Done before the reply goes out: a caller that has its answer never sees
                # its own call still counted in flight.
                self._in_flight -= 1
                self._timers.remove(slot, expiry)
                _current.reset(token)
            data = codec.encode(result)
        except RpcError as exc:
            self._failed += 1
            if reply:
                await self._publish(error_message(reply, exc, self.server_id))
            return
        except CodecError as exc:
            self._failed += 1
            if reply:
                error = RpcError(ErrorCode.MALFORMED_RESULT, f"cannot encode result: {exc}")
                await self._publish(error_message(reply, error, self.server_id))
            return
        except asyncio.CancelledError:
            if not self._killing:
                raise
            self._failed += 1
            if reply:
                error = RpcError(ErrorCode.UNAVAILABLE, "server is shutting down")
                await self._publish(error_message(reply, error, self.server_id))
            return  # we cancelled this task ourselves (kill): the reply is the outcome
        except Exception:
            self._failed += 1
            logger.exception(
                "handler failed",
                extra={"method": f"{route.method.service}.{route.method.name}"},
            )
            if reply:
                error = RpcError(ErrorCode.INTERNAL, "internal error")
                await self._publish(error_message(reply, error, self.server_id))
            return
        self._succeeded += 1
        if not reply or deadline.when <= loop.time():
            return  # a plain publish, or the caller has given up: nobody reads a reply
        headers = route.reply_headers
        if codec is not route.method.response_codec:
            headers = {**(headers or {}), Headers.CONTENT_TYPE: codec.content_type}
        try:
            if headers is None:
                await self.bus.publish(Message(reply, data))
            else:
                await self.bus.publish(Message(reply, data, headers))
        except (TransportError, ClosedResourceError):
            logger.warning("reply not sent", extra={"subject": reply}, exc_info=True)

    def _decode(self, message: Message, route: _Route) -> tuple[object, Codec]:
        """Decode the request; the reply uses the request's codec."""
        if len(message.data) > self.max_message_size:
            raise RpcError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"request of {len(message.data)} bytes exceeds the limit of "
                f"{self.max_message_size}",
            )
        method = route.method
        codec = route.codec
        headers = message.headers
        if headers:
            content_type = headers.get(Headers.CONTENT_TYPE)
            if content_type is not None and content_type != codec.content_type:
                try:
                    codec = codec_for_content_type(content_type)
                except CodecError as exc:
                    raise RpcError(ErrorCode.NOT_ACCEPTABLE, str(exc)) from exc
        try:
            request = codec.decode(message.data, method.request_type)
        except CodecError as exc:
            raise RpcError(ErrorCode.MALFORMED_REQUEST, str(exc)) from exc
        response_codec = codec if codec is not route.codec else method.response_codec
        return request, response_codec

    async def _claim(self, message: Message, route: _Route) -> None:
        """Answer an affinity bid: our score for this request, or silence below 0."""
        reply = message.reply
        if not reply:
            return
        try:
            request, _ = self._decode(message, route)
            assert route.affinity is not None
            score = route.affinity(request)
            if inspect.isawaitable(score):
                score = await score
        except RpcError as exc:
            await self._publish(error_message(reply, exc, self.server_id))
            return
        except Exception:
            logger.exception("affinity function failed", extra={"method": route.method.name})
            return
        if score < 0:
            return
        claim = Claim(server_id=self.server_id, affinity=float(score))
        await self._publish(Message(reply, _claim_encoder.encode(claim)))

    async def _publish(self, message: Message) -> None:
        try:
            await self.bus.publish(message)
        except (TransportError, ClosedResourceError):
            logger.warning("reply not sent", extra={"subject": message.subject}, exc_info=True)


class _Expiry:
    """Cancels its handler task when the call's deadline passes."""

    __slots__ = ("fired", "task")

    def __init__(self) -> None:
        self.task = asyncio.current_task()  # the worker running the call
        self.fired = False

    def fire(self) -> None:
        if self.task is not None and not self.task.done():
            self.fired = True
            self.task.cancel()

    def consumed(self) -> None:
        """The handler ended with our cancellation: the worker lives on, uncancelled."""
        if self.task is not None:
            self.task.uncancel()


def _chain(interceptors: list[ServerInterceptor], handler: Handler) -> ServerNext:
    async def terminal(call: ServerCall) -> object:
        return await handler(call.request)

    async def terminal_after_interceptors(call: ServerCall) -> object:
        if _current.get() is call:
            return await handler(call.request)
        # An interceptor passed on a changed call (headers, metadata): the handler's
        # current_call() must show that one.
        token = _current.set(call)
        try:
            return await handler(call.request)
        finally:
            _current.reset(token)

    next_: ServerNext = terminal_after_interceptors if interceptors else terminal
    for interceptor in reversed(interceptors):
        next_ = _bind(interceptor, next_)
    return next_


def _bind(interceptor: ServerInterceptor, next_: ServerNext) -> ServerNext:
    async def call(c: ServerCall) -> object:
        return await interceptor(c, next_)

    return call
