"""Per-call work on the server: decode, run the handler in its own context, reply.

`_server.py` owns the lifecycle (subscriptions, shutdown, kill); this module owns what
happens to one request: its deadline, its context, its cancellation, and the one reply it
gets. Every error reply goes out through `Dispatcher.reply_error`.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import inspect
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import msgspec

from .._core import (
    ClosedResourceError,
    Codec,
    CodecError,
    Deadline,
    ErrorCode,
    Headers,
    Message,
    RpcError,
    TransportError,
    codec_for_content_type,
    error_message,
    rpc_error_from_exception,
)
from ..bus import MessageBus
from ._call import ServerCall, ServerInterceptor, ServerNext, _current, compose
from ._method import Claim, Method
from ._timers import TimerWheel
from ._wire import deadline_of

__all__ = ["Dispatcher", "Route"]

logger = logging.getLogger("busrpc.rpc")

Handler = Callable[[Any], Awaitable[Any]]
AffinityFn = Callable[[Any], float | Awaitable[float]]

_claim_encoder = msgspec.json.Encoder()
_EARLY_CANCELS: Final = 4096  # cancels for calls not started yet, remembered (oldest go first)
_OUTBOX_LIMIT: Final = 65_536  # replies waiting to be sent from the delivery path


class Route:
    """How one subscription's requests are handled."""

    __slots__ = ("affinity", "call", "claim", "codec", "direct", "method", "reply_headers", "topic")

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
        # The handler itself when no interceptor wraps it: calling it saves the chain's
        # coroutine per call (measured with callgrind in 01: ~4% of an in-memory call).
        self.direct = direct
        self.topic = topic
        self.claim = claim
        self.affinity = affinity
        self.codec = method.request_codec
        # Unary replies carry no header at all (the fast path); multi replies name the
        # server, because the caller tells the answers apart by it.
        self.reply_headers = {Headers.SERVER: server_id} if method.multi else None


class _Why(enum.Enum):
    DEADLINE = "deadline"
    CALLER = "caller"


class _Running:
    """One handler run: cancelled by its deadline or by its caller's cancel message."""

    __slots__ = ("replying", "task", "why")

    def __init__(self) -> None:
        self.task = asyncio.current_task()  # the worker running the call
        self.why: _Why | None = None
        self.replying = False  # the handler is done; its reply is going out

    def fire(self) -> None:
        """The deadline passed (a timer wheel callback)."""
        self.stop(_Why.DEADLINE)

    def stop(self, why: _Why) -> None:
        if self.why is None and self.task is not None and not self.task.done():
            self.why = why
            self.task.cancel()

    def consume(self) -> None:
        """Our own cancel reached the handler: take it back, so the worker lives on."""
        assert self.task is not None
        self.task.uncancel()


class Dispatcher:
    """Handles requests for one server: the pool's handler, and the replies it sends."""

    def __init__(
        self,
        bus: MessageBus,
        server_id: str,
        *,
        default_timeout: float,
        max_message_size: int,
        context: contextvars.Context,
    ) -> None:
        self.bus = bus
        self.server_id = server_id
        self.default_timeout = default_timeout
        self.max_message_size = max_message_size
        self.context = context  # what the outbox task starts from
        self.killing = False
        self.received = self.succeeded = self.failed = self.expired = 0
        self.rejected = self.cancelled = self.in_flight = 0
        self._timers: TimerWheel[_Running] = TimerWheel(_Running.fire)
        self._running: dict[str, _Running] = {}  # by reply address: what a cancel names
        self._early: OrderedDict[str, None] = OrderedDict()
        self._outbox: deque[tuple[Message, float | None]] = deque()
        self._sender: asyncio.Task[None] | None = None

    # -- one call ------------------------------------------------------------------------

    async def handle(self, item: tuple[Message, Route]) -> None:
        """Serve one request (the worker pool's handler; never raises)."""
        message, route = item
        if route.claim:
            await self._claim(message, route)
            return
        loop = asyncio.get_running_loop()
        reply = message.reply
        try:
            deadline = deadline_of(message, self.default_timeout, loop.time())
        except RpcError as exc:
            self.failed += 1
            await self.reply_error(reply, exc)
            return
        if deadline.when <= loop.time():
            self.expired += 1  # the caller has given up already
            return
        early = self._early
        if early and reply is not None and reply in early:
            del early[reply]
            self.cancelled += 1  # its caller cancelled it while it waited for a worker
            return
        try:
            request, codec = self._decode(message, route)
        except RpcError as exc:
            self.failed += 1
            await self.reply_error(reply, exc)
            return
        call = self._server_call(message, route, request, deadline)
        # This runs in a copy of the server's context: a task of its own (EagerPool, 3.12+)
        # or a worker retired once a call leaves anything set in it (WorkerPool, 3.11), so
        # nothing the caller's task or an earlier call set is ever seen here.
        current = _current.set(call)
        running = _Running()
        # The timer stays until the reply is out: a reply publish that blocks (a full
        # in-process buffer) must give up at the deadline too, and free the worker.
        slot = self._timers.add(deadline.when, running)
        try:
            if reply is not None:
                self._running[reply] = running
            self.in_flight += 1
            error: RpcError | None = None
            try:
                direct = route.direct
                result = await (route.call(call) if direct is None else direct(request))
                data = codec.encode(result)
            except asyncio.CancelledError:
                why = running.why
                if why is None:
                    if not self.killing:
                        raise  # not ours: the loop or the task is going away
                    error = RpcError(ErrorCode.UNAVAILABLE, "server is shutting down")
                else:
                    running.consume()
                    if why is _Why.DEADLINE:
                        self.expired += 1  # the caller gets DeadlineExceeded on its side
                    else:
                        self.cancelled += 1  # the caller left: nobody reads a reply
                    return
            except RpcError as exc:
                error = exc
            except CodecError as exc:
                error = RpcError(ErrorCode.MALFORMED_RESULT, f"cannot encode result: {exc}")
            except Exception as exc:
                if not isinstance(exc, NotImplementedError):
                    logger.exception("handler failed", extra={"method": _name(route.method)})
                error = rpc_error_from_exception(exc)
            finally:
                # Done before the reply goes out: a caller that has its answer never sees
                # its own call still counted in flight, and no cancel can reach a later call.
                self.in_flight -= 1
                _current.reset(current)
                if reply is not None:
                    self._running.pop(reply, None)
            running.replying = True
            if error is not None:
                self.failed += 1
                await self.reply_error(reply, error)
                return
            self.succeeded += 1
            if reply is None or deadline.when <= loop.time():
                return  # a plain publish, or the caller has given up: nobody reads a reply
            headers = route.reply_headers
            if codec is not route.method.response_codec:
                headers = {**(headers or {}), Headers.CONTENT_TYPE: codec.content_type}
            await self._publish(
                Message(reply, data) if headers is None else Message(reply, data, headers)
            )
        except asyncio.CancelledError:
            if running.why is not _Why.DEADLINE or not running.replying:
                raise
            running.consume()  # the caller has given up on the reply: nothing more to do
        finally:
            self._timers.remove(slot, running)

    async def reply_error(self, reply: str | None, error: RpcError) -> None:
        """Send *error* to *reply* (nothing for a plain publish): the one way out for errors."""
        if reply:
            await self._publish(error_message(reply, error, self.server_id))

    def reject(self, message: Message, route: Route, error: RpcError) -> None:
        """Answer *message* with *error* at once, from the transport's delivery path."""
        if route.claim:
            return  # an affinity bid: silence is a refusal
        self.rejected += 1
        if message.reply:
            self.send_nowait(error_message(message.reply, error, self.server_id), message)

    def _server_call(
        self, message: Message, route: Route, request: object, deadline: Deadline
    ) -> ServerCall:
        return ServerCall(
            method=route.method,
            request=request,
            subject=message.subject,
            headers=message.headers,
            deadline=deadline,
            server_id=self.server_id,
            topic=route.topic,
            reply=message.reply,
        )

    def _decode(self, message: Message, route: Route) -> tuple[object, Codec]:
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

    async def _claim(self, message: Message, route: Route) -> None:
        """Answer an affinity bid: our score for this request, or silence below 0.

        The scorer runs as a handler does: in its own context, with `current_call()` set
        (psrpc's AffinityFunc gets the incoming context). A scorer that raises is no bid.
        """
        reply = message.reply
        if not reply:
            return
        loop = asyncio.get_running_loop()
        try:
            deadline = deadline_of(message, self.default_timeout, loop.time())
            request, _ = self._decode(message, route)
        except RpcError as exc:
            await self.reply_error(reply, exc)
            return
        call = self._server_call(message, route, request, deadline)
        current = _current.set(call)
        assert route.affinity is not None
        try:
            bid = route.affinity(request)
            score = float(await bid if inspect.isawaitable(bid) else bid)
        except Exception:
            logger.exception("affinity function failed", extra={"method": _name(route.method)})
            return
        finally:
            _current.reset(current)
        if not score >= 0:  # below 0 (or NaN): no bid
            return
        claim = Claim(server_id=self.server_id, affinity=score)
        await self._publish(Message(reply, _claim_encoder.encode(claim)))

    # -- cancellation --------------------------------------------------------------------

    def cancel(self, reply: str) -> None:
        """The caller of the call answering to *reply* has gone: stop its handler."""
        running = self._running.get(reply)
        if running is not None:
            running.stop(_Why.CALLER)
            return
        early = self._early  # not started yet (or not ours): remember it for a while
        early[reply] = None
        if len(early) > _EARLY_CANCELS:
            early.popitem(last=False)

    # -- sending -------------------------------------------------------------------------

    def send_nowait(self, message: Message, answering: Message | None = None) -> None:
        """Send *message* soon, from synchronous code (the transport's delivery path).

        When it answers the request *answering*, it is dropped once that request's
        deadline has passed: a send that blocks (a full in-process buffer) never holds
        up the answers queued behind it for longer than that.
        """
        if len(self._outbox) >= _OUTBOX_LIMIT:
            logger.warning("outbox full: reply dropped", extra={"subject": message.subject})
            return
        when: float | None = None
        if answering is not None:
            loop = asyncio.get_running_loop()
            try:
                when = deadline_of(answering, self.default_timeout, loop.time()).when
            except RpcError:
                when = loop.time() + self.default_timeout
        self._outbox.append((message, when))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(
                self._send_outbox(), context=self.context.copy()
            )

    async def wait_sent(self) -> None:
        """Wait until every message of `send_nowait` has been handed to the bus."""
        while self._sender is not None:
            await asyncio.wait([self._sender])

    def close(self) -> None:
        """Forget every deadline timer (the server has stopped)."""
        self._timers.close()

    async def _send_outbox(self) -> None:
        outbox = self._outbox
        try:
            while outbox:
                message, when = outbox.popleft()
                if when is None:
                    await self._publish(message)
                    continue
                try:
                    async with asyncio.timeout_at(when):
                        await self._publish(message)
                except TimeoutError:
                    logger.debug(
                        "answer dropped at its deadline", extra={"subject": message.subject}
                    )
        finally:
            self._sender = None

    async def _publish(self, message: Message) -> None:
        try:
            await self.bus.publish(message)
        except (TransportError, ClosedResourceError):
            logger.warning("reply not sent", extra={"subject": message.subject}, exc_info=True)


def _name(method: Method[Any, Any]) -> str:
    return f"{method.service}.{method.name}"


def chain(interceptors: Sequence[ServerInterceptor], handler: Handler) -> ServerNext:
    """*handler* wrapped by *interceptors* (the first is outermost).

    The handler sees the `ServerCall` the innermost interceptor passed on as
    `current_call()`: an interceptor may pass on a changed call (headers, metadata).
    """

    async def terminal(call: ServerCall) -> object:
        if _current.get() is call:
            return await handler(call.request)
        current = _current.set(call)
        try:
            return await handler(call.request)
        finally:
            _current.reset(current)

    return compose(interceptors, terminal)
