"""Wire protocol v1 details the client and server share: deadlines and inboxes."""

from __future__ import annotations

import time

from .._core import Deadline, Headers, Message

__all__ = ["INBOX_PREFIX", "deadline_of"]

INBOX_PREFIX = "_INBOX."
"""busrpc reply subjects: ``_INBOX.{client_id}.{request_id}.d{deadline_ms}``.

The last token carries the caller's deadline, so the common path needs no header at all
(NATS headers cost ~12% per call in nats-py); ``Busrpc-Deadline`` overrides it.
"""


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
