"""Wire protocol v1 details the client and server share: deadlines and inboxes."""

from __future__ import annotations

import time
from typing import Final

from .._core import Deadline, ErrorCode, Headers, Message, RpcError

__all__ = ["INBOX_PREFIX", "MAX_WIRE_DEADLINE", "deadline_of"]

INBOX_PREFIX = "_INBOX."
"""busrpc reply subjects: ``_INBOX.{client_id}.{request_id}.d{deadline_ms}``, where the
request id is ``{sequence:x}t{sent_ms:x}`` (hex), so a server knows who called and when.

The last token carries the caller's deadline, so the common path needs no header at all
(NATS headers cost ~12% per call in nats-py); ``Busrpc-Deadline`` overrides it.
"""


def deadline_of(message: Message, default: float, now: float) -> Deadline:
    """The caller's deadline: ``Busrpc-Deadline``, else the reply token, else *default* s.

    *now* is the loop's time (``loop.time()``). A deadline further away than
    `MAX_WIRE_DEADLINE` is held to it.

    Raises:
        RpcError: ``malformed_request``: ``Busrpc-Deadline`` is not 1 to 16 ASCII digits.
    """
    headers = message.headers
    if headers:
        wire = headers.get(Headers.DEADLINE)
        if wire is not None:
            if not (0 < len(wire) <= 16 and wire.isascii() and wire.isdigit()):
                raise RpcError(
                    ErrorCode.MALFORMED_REQUEST,
                    f"{Headers.DEADLINE} must be Unix epoch milliseconds, got {wire[:32]!r}",
                )
            return _deadline(now, int(wire))
    reply = message.reply
    # Only busrpc's own inbox shape, _INBOX.<client>.<id>.d<ms> with a 13- to 16-digit
    # millisecond stamp: another client's random reply token must never read as a deadline.
    if reply and reply.startswith(INBOX_PREFIX) and reply.count(".") == 3:
        token = reply[reply.rfind(".") + 1 :]
        if token[:1] == "d" and 14 <= len(token) <= 17 and token.isascii() and token[1:].isdigit():
            return _deadline(now, int(token[1:]))
    return Deadline(now + default)


MAX_WIRE_DEADLINE: Final = 7 * 24 * 3600.0
"""Seconds: the furthest deadline a server accepts from the wire (later ones are held to it)."""


def _deadline(now: float, unix_ms: int) -> Deadline:
    return Deadline(now + min(unix_ms / 1000 - time.time(), MAX_WIRE_DEADLINE))
