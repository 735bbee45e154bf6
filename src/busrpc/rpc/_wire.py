"""Wire protocol v1 details the client and server share: errors, deadlines, inboxes."""

from __future__ import annotations

import time

import msgspec

from .._core import Deadline, ErrorCode, Headers, Message, RpcError, rpc_error

__all__ = [
    "INBOX_PREFIX",
    "ErrorBody",
    "deadline_of",
    "error_message",
    "error_of",
    "is_error",
]

INBOX_PREFIX = "_INBOX."
"""busrpc reply subjects: ``_INBOX.{client_id}.{request_id}.d{deadline_ms}``.

The last token carries the caller's deadline, so the common path needs no header at all
(NATS headers cost ~12% per call in nats-py); ``Busrpc-Deadline`` overrides it.
"""


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The ``data`` of an error reply (JSON), for clients that do not read headers."""

    code: str
    message: str = ""
    details: dict[str, str] = {}


_error_encoder = msgspec.json.Encoder()
_error_decoder = msgspec.json.Decoder(ErrorBody)


def error_message(reply: str, error: RpcError, server_id: str) -> Message:
    """The reply message for *error*: NATS micro headers plus ``Busrpc-Error``."""
    body = ErrorBody(code=error.code.value, message=error.message, details=dict(error.details))
    return Message(
        reply,
        _error_encoder.encode(body),
        {
            Headers.NATS_ERROR_CODE: str(error.code.http_status),
            Headers.NATS_ERROR: error.message,
            Headers.ERROR: error.code.value,
            Headers.SERVER: server_id,
        },
    )


def is_error(message: Message) -> bool:
    """Whether *message* is an error reply (busrpc's or any NATS micro service's)."""
    headers = message.headers
    return bool(headers) and (Headers.ERROR in headers or Headers.NATS_ERROR_CODE in headers)


def error_of(message: Message, subject: str) -> RpcError:
    """The `RpcError` an error reply carries; *subject* names what was called."""
    headers = message.headers
    name = headers.get(Headers.ERROR)
    if name is not None:
        code = ErrorCode(name)
    else:
        try:
            code = ErrorCode.from_http(int(headers.get(Headers.NATS_ERROR_CODE, "500")))
        except ValueError:
            code = ErrorCode.UNKNOWN
    text = headers.get(Headers.NATS_ERROR, "")
    details: dict[str, str] = {}
    if message.data:
        try:
            body = _error_decoder.decode(message.data)
        except msgspec.DecodeError:
            pass  # a foreign service's error body: the headers said it all
        else:
            text = text or body.message
            details = body.details
    if code is ErrorCode.UNAVAILABLE and text == "no responders":
        text = f"no responders for {subject}"
    return rpc_error(code, text, details)


def deadline_of(message: Message, default: float, now: float) -> Deadline:
    """The caller's deadline: ``Busrpc-Deadline``, else the reply token, else *default* s.

    *now* is the loop's time (``loop.time()``).
    """
    headers = message.headers
    if headers:
        wire = headers.get(Headers.DEADLINE)
        if wire is not None:
            try:
                return Deadline(now + int(wire) / 1000 - time.time())
            except ValueError:
                pass
    reply = message.reply
    # Only busrpc's own inbox shape, _INBOX.<client>.<id>.d<ms> with a 13-digit (post-2001)
    # millisecond stamp: another client's random reply token must never read as a deadline.
    if reply and reply.startswith(INBOX_PREFIX) and reply.count(".") == 3:
        token = reply[reply.rfind(".") + 1 :]
        if token[:1] == "d" and len(token) >= 14 and token[1:].isdigit():
            return Deadline(now + int(token[1:]) / 1000 - time.time())
    return Deadline(now + default)
