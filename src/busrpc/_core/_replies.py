"""Error replies of wire protocol v1: built by servers and by transports, read by clients.

An error reply carries the NATS micro headers (``Nats-Service-Error-Code``,
``Nats-Service-Error``), ``Busrpc-Error`` and, from a busrpc server, ``Busrpc-Server``;
its body is an `ErrorBody` in JSON. The body carries the message and details exactly;
the ``Nats-Service-Error`` header only a single-line copy of the message (a header value
cannot hold CR or LF: they would end it, and could inject headers), so a client reads
the message from the body when there is one ("the JSON body wins"). A transport's own
"no responders" answer is the one error reply with no ``Busrpc-Server``: nobody served
the call (`is_no_responders`).
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from ._errors import ErrorCode, RpcError, rpc_error
from ._message import Headers, Message

__all__ = [
    "ErrorBody",
    "error_message",
    "error_of",
    "header_text",
    "is_error",
    "is_no_responders",
    "no_responders",
]

_NO_RESPONDERS = "no responders"
_HEADER_TEXT_MAX: Final = 1024  # the body has it all; the header is for tools and logs
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The ``data`` of an error reply (JSON): the code, and the message and details
    exactly as raised (``details`` holds any JSON values)."""

    code: str
    message: str = ""
    details: dict[str, object] = {}


_error_encoder = msgspec.json.Encoder()
_error_decoder = msgspec.json.Decoder(ErrorBody)


def error_message(reply: str, error: RpcError, server_id: str) -> Message:
    """The reply message for *error*: NATS micro headers plus ``Busrpc-Error``, and the
    exact message and details in the JSON body."""
    body = ErrorBody(code=error.code.value, message=error.message, details=dict(error.details))
    return Message(
        reply,
        _error_encoder.encode(body),
        {
            Headers.NATS_ERROR_CODE: str(error.code.http_status),
            Headers.NATS_ERROR: header_text(error.message) or error.code.value,
            Headers.ERROR: error.code.value,
            Headers.SERVER: server_id,
        },
    )


def header_text(text: str) -> str:
    """*text* made safe for a header value: one line, at most 1024 characters.

    Each run of control characters (CR and LF above all: they would end the header, or
    start a forged one) becomes one space; the ends are stripped, as header parsers do.

    Example:
        >>> header_text("no user 42\\r\\nBusrpc-Error: ok")
        'no user 42 Busrpc-Error: ok'
    """
    line = _CONTROL.sub(" ", text).strip()
    if len(line) > _HEADER_TEXT_MAX:
        line = line[: _HEADER_TEXT_MAX - 3] + "..."
    return line


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
    body = _error_body(message.data)
    if body is not None and body.message:
        text = body.message  # exact: the header holds a one-line copy
    if is_no_responders(message):
        text = f"{_NO_RESPONDERS} for {subject}"
    if body is None or not body.details:
        return rpc_error(code, text)
    try:
        return rpc_error(code, text, body.details)  # type: ignore[arg-type]  # JSON values
    except TypeError:
        return rpc_error(code, text)  # nested too deeply to trust: keep code and message


def _error_body(data: bytes) -> ErrorBody | None:
    if not data:
        return None
    try:
        return _error_decoder.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None  # a foreign service's error body (or a hostile one): use the headers
