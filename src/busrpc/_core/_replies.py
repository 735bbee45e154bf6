"""Error replies of wire protocol v1: built by servers and by transports, read by clients.

An error reply carries the NATS micro headers (``Nats-Service-Error-Code``,
``Nats-Service-Error``), ``Busrpc-Error`` and, from a busrpc server, ``Busrpc-Server``;
its body is an `ErrorBody` in JSON, for clients that do not read headers. A transport's
own "no responders" answer is the one error reply with no ``Busrpc-Server``: nobody
served the call (`is_no_responders`).
"""

from __future__ import annotations

import msgspec

from ._errors import ErrorCode, RpcError, rpc_error
from ._message import Headers, Message

__all__ = [
    "ErrorBody",
    "error_message",
    "error_of",
    "is_error",
    "is_no_responders",
    "no_responders",
]

_NO_RESPONDERS = "no responders"


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


def no_responders(reply: str) -> Message:
    """What a transport answers to a request that reached no subscriber (as NATS does)."""
    return Message(
        reply,
        b"",
        {
            Headers.ERROR: ErrorCode.UNAVAILABLE.value,
            Headers.NATS_ERROR_CODE: "503",
            Headers.NATS_ERROR: _NO_RESPONDERS,
        },
    )


def is_error(message: Message) -> bool:
    """Whether *message* is an error reply (busrpc's or any NATS micro service's)."""
    headers = message.headers
    return bool(headers) and (Headers.ERROR in headers or Headers.NATS_ERROR_CODE in headers)


def is_no_responders(message: Message) -> bool:
    """Whether *message* is a transport's "no responders" answer, not a server's error."""
    headers = message.headers
    return (
        bool(headers)
        and Headers.SERVER not in headers
        and headers.get(Headers.NATS_ERROR) == _NO_RESPONDERS
    )


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
    if is_no_responders(message):
        text = f"{_NO_RESPONDERS} for {subject}"
    return rpc_error(code, text, details)
