"""Errors: the exception tree and the closed set of RPC error codes.

```
BusrpcError
├── TransportError          broker unreachable, connection lost, publish refused
│   └── ConnectError
├── CodecError              payload does not encode or decode to the declared type
├── ProtocolError           peer broke the envelope contract (version, field)
├── ClosedResourceError     used after aclose()
├── WouldBlock              *_nowait() could not proceed
└── RpcError(code, message, details)    the call failed; code is an ErrorCode
    ├── DeadlineExceeded    also a builtin TimeoutError
    └── Unavailable         no server could take the call (retry elsewhere)
```

The codes are psrpc's 22, spelled as psrpc spells them on the wire. Each maps to an HTTP
status and a gRPC status code as psrpc maps them, and both map back (`ErrorCode.from_http`,
`ErrorCode.from_grpc`). The string code travels on the wire (`Busrpc-Error`), so nothing is
lost in a round trip through numbers.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Final, TypeAlias

__all__ = [
    "BusrpcError",
    "ClosedResourceError",
    "CodecError",
    "ConnectError",
    "DeadlineExceeded",
    "ErrorCode",
    "ExceptionMap",
    "JSONValue",
    "ProtocolError",
    "RpcError",
    "TransportError",
    "Unavailable",
    "WouldBlock",
    "map_exceptions",
    "rpc_error_from_exception",
]

JSONValue: TypeAlias = (
    bool | int | float | str | Sequence["JSONValue"] | Mapping[str, "JSONValue"] | None
)
"""A value JSON can carry: what `RpcError` details hold (lists and objects nest)."""


@enum.unique
class ErrorCode(enum.Enum):
    """Why a call failed. Closed set; the value is what travels on the wire.

    Example:
        >>> ErrorCode("not_found").http_status
        404
        >>> ErrorCode("something_newer")  # a newer peer's code
        <ErrorCode.UNKNOWN: 'unknown'>
    """

    CANCELED = "canceled"
    MALFORMED_REQUEST = "malformed_request"
    MALFORMED_RESULT = "malformed_result"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    UNAVAILABLE = "unavailable"
    UNKNOWN = "unknown"
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    NOT_ACCEPTABLE = "not_acceptable"
    ALREADY_EXISTS = "already_exists"
    PERMISSION_DENIED = "permission_denied"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    FAILED_PRECONDITION = "failed_precondition"
    ABORTED = "aborted"
    OUT_OF_RANGE = "out_of_range"
    UNIMPLEMENTED = "unimplemented"
    INTERNAL = "internal"
    DATA_LOSS = "data_loss"
    UNAUTHENTICATED = "unauthenticated"
    UNPROCESSABLE_ENTITY = "unprocessable_entity"
    UPSTREAM_SERVER_ERROR = "upstream_server_error"
    UPSTREAM_CLIENT_ERROR = "upstream_client_error"

    @classmethod
    def _missing_(cls, value: object) -> ErrorCode:
        return cls.UNKNOWN  # a newer peer sent a code this version doesn't know

    @property
    def http_status(self) -> int:
        """The HTTP status psrpc gives this code (`ToHTTP`)."""
        return _STATUS[self][0]

    @property
    def grpc_status(self) -> int:
        """The numeric gRPC status code psrpc gives this code (`ToGRPC`)."""
        return _STATUS[self][1]

    @classmethod
    def from_http(cls, status: int) -> ErrorCode:
        """The code for an HTTP status (for example a NATS micro `Nats-Service-Error-Code`).

        Statuses several codes share map to the most general one (500 to `internal`,
        400 to `invalid_argument`, 503 to `unavailable`); unknown 4xx and 5xx map to
        `unknown`.
        """
        return _FROM_HTTP.get(status, cls.UNKNOWN)

    @classmethod
    def from_grpc(cls, status: int) -> ErrorCode:
        """The code for a numeric gRPC status, as psrpc's `ErrorCodeFromGRPC` maps it."""
        return _FROM_GRPC.get(status, cls.UNKNOWN)


# gRPC status numbers (grpc/codes): OK 0, CANCELLED 1, UNKNOWN 2, INVALID_ARGUMENT 3,
# DEADLINE_EXCEEDED 4, NOT_FOUND 5, ALREADY_EXISTS 6, PERMISSION_DENIED 7,
# RESOURCE_EXHAUSTED 8, FAILED_PRECONDITION 9, ABORTED 10, OUT_OF_RANGE 11,
# UNIMPLEMENTED 12, INTERNAL 13, UNAVAILABLE 14, DATA_LOSS 15, UNAUTHENTICATED 16.
_STATUS: Final[Mapping[ErrorCode, tuple[int, int]]] = {  # (HTTP, gRPC), as psrpc maps them
    ErrorCode.CANCELED: (503, 1),
    ErrorCode.MALFORMED_REQUEST: (400, 3),
    ErrorCode.MALFORMED_RESULT: (500, 13),
    ErrorCode.DEADLINE_EXCEEDED: (503, 4),
    ErrorCode.UNAVAILABLE: (503, 14),
    ErrorCode.UNKNOWN: (500, 2),
    ErrorCode.INVALID_ARGUMENT: (400, 3),
    ErrorCode.NOT_FOUND: (404, 5),
    ErrorCode.NOT_ACCEPTABLE: (406, 2),
    ErrorCode.ALREADY_EXISTS: (409, 6),
    ErrorCode.PERMISSION_DENIED: (403, 7),
    ErrorCode.RESOURCE_EXHAUSTED: (429, 8),
    ErrorCode.FAILED_PRECONDITION: (412, 9),
    ErrorCode.ABORTED: (409, 10),
    ErrorCode.OUT_OF_RANGE: (416, 11),
    ErrorCode.UNIMPLEMENTED: (501, 12),
    ErrorCode.INTERNAL: (500, 13),
    ErrorCode.DATA_LOSS: (500, 15),
    ErrorCode.UNAUTHENTICATED: (401, 16),
    ErrorCode.UNPROCESSABLE_ENTITY: (422, 2),
    ErrorCode.UPSTREAM_SERVER_ERROR: (502, 13),
    ErrorCode.UPSTREAM_CLIENT_ERROR: (424, 3),
}

_FROM_HTTP: Final[Mapping[int, ErrorCode]] = {
    400: ErrorCode.INVALID_ARGUMENT,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    406: ErrorCode.NOT_ACCEPTABLE,
    408: ErrorCode.DEADLINE_EXCEEDED,
    409: ErrorCode.ALREADY_EXISTS,
    412: ErrorCode.FAILED_PRECONDITION,
    416: ErrorCode.OUT_OF_RANGE,
    422: ErrorCode.UNPROCESSABLE_ENTITY,
    424: ErrorCode.UPSTREAM_CLIENT_ERROR,
    429: ErrorCode.RESOURCE_EXHAUSTED,
    499: ErrorCode.CANCELED,
    500: ErrorCode.INTERNAL,
    501: ErrorCode.UNIMPLEMENTED,
    502: ErrorCode.UPSTREAM_SERVER_ERROR,
    503: ErrorCode.UNAVAILABLE,
    504: ErrorCode.DEADLINE_EXCEEDED,
}

_FROM_GRPC: Final[Mapping[int, ErrorCode]] = {
    1: ErrorCode.CANCELED,
    2: ErrorCode.UNKNOWN,
    3: ErrorCode.INVALID_ARGUMENT,
    4: ErrorCode.DEADLINE_EXCEEDED,
    5: ErrorCode.NOT_FOUND,
    6: ErrorCode.ALREADY_EXISTS,
    7: ErrorCode.PERMISSION_DENIED,
    8: ErrorCode.RESOURCE_EXHAUSTED,
    9: ErrorCode.FAILED_PRECONDITION,
    10: ErrorCode.ABORTED,
    11: ErrorCode.OUT_OF_RANGE,
    12: ErrorCode.UNIMPLEMENTED,
    13: ErrorCode.INTERNAL,
    14: ErrorCode.UNAVAILABLE,
    15: ErrorCode.DATA_LOSS,
    16: ErrorCode.UNAUTHENTICATED,
}


class BusrpcError(Exception):
    """Base class of every exception busrpc raises on purpose."""


class TransportError(BusrpcError):
    """The broker is unreachable, the connection dropped, or a publish was refused."""


class ConnectError(TransportError):
    """Could not connect to the broker named by the URL."""


class CodecError(BusrpcError):
    """A payload does not encode, or does not decode to the declared type."""


class ProtocolError(BusrpcError):
    """A peer broke the wire contract (version, frame, field)."""


class ClosedResourceError(BusrpcError):
    """The resource (bus, subscription, server) was used after ``aclose()``."""


class WouldBlock(BusrpcError):
    """A ``*_nowait()`` operation could not proceed without waiting."""


class RpcError(BusrpcError):
    """A call failed; ``code`` says why, and travels on the wire unchanged.

    Handlers raise it on purpose; the caller receives the same code, message and details,
    exactly (newlines, spaces and all).

    Args:
        code: an `ErrorCode` or its wire string (``"not_found"``).
        message: human-readable, safe to show to the caller (default: the code in words).
        details: data for machines (field names, retry hints): a mapping of strings to
            any JSON value (``None``, bools, numbers, strings, lists, objects), kept as
            a copy in plain JSON types (tuples become lists) so that what the caller
            receives equals ``error.details`` here.

    Raises:
        TypeError: *details* holds something JSON cannot carry exactly (a non-string
            key, bytes, a set, an object, NaN or infinity).

    Example:
        >>> raise busrpc.RpcError("not_found", "no user 42", {"user_id": 42, "tried": ["a"]})
    """

    code: ErrorCode
    message: str
    details: Mapping[str, JSONValue]

    def __init__(
        self,
        code: ErrorCode | str,
        message: str = "",
        details: Mapping[str, JSONValue] | None = None,
    ) -> None:
        self.code = code if isinstance(code, ErrorCode) else ErrorCode(code)
        self.message = message or self.code.value.replace("_", " ")
        self.details = _json_object(details, "details", 0) if details else {}
        super().__init__(self.code, self.message)

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (rpc_error, (self.code, self.message, dict(self.details)))

    @property
    def http_status(self) -> int:
        """The HTTP status of ``code``."""
        return self.code.http_status

    @property
    def grpc_status(self) -> int:
        """The numeric gRPC status of ``code``."""
        return self.code.grpc_status


_MAX_DEPTH: Final = 64  # deeper details are a bug (or a cycle), not data


def _json_object(value: object, where: str, depth: int) -> dict[str, JSONValue]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a mapping of str to JSON values, got {_kind(value)}")
    copy: dict[str, JSONValue] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{where} keys must be str, got {_kind(key)} {key!r}")
        copy[str.__str__(key)] = _json_value(item, f"{where}[{key!r}]", depth + 1)
    return copy


def _json_value(value: object, where: str, depth: int) -> JSONValue:
    """A copy of *value* in plain JSON types (subclasses become their base type)."""
    if depth > _MAX_DEPTH:
        raise TypeError(f"{where} nests deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):  # bool has no subclasses
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value!r}: JSON has no NaN or infinity")
        return float(value)
    if isinstance(value, Mapping):
        return _json_object(value, where, depth)
    if isinstance(value, list | tuple):
        return [_json_value(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise TypeError(f"{where} is {_kind(value)}, which JSON cannot carry")


def _kind(value: object) -> str:
    return type(value).__name__


class DeadlineExceeded(RpcError, TimeoutError):
    """The deadline passed. ``except TimeoutError`` catches it too."""

    def __init__(
        self, message: str = "deadline exceeded", details: Mapping[str, JSONValue] | None = None
    ) -> None:
        super().__init__(ErrorCode.DEADLINE_EXCEEDED, message, details)


class Unavailable(RpcError):
    """No server could take the call: none listening, or the server shut down."""

    def __init__(
        self, message: str = "unavailable", details: Mapping[str, JSONValue] | None = None
    ) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, message, details)


def rpc_error(
    code: ErrorCode | str, message: str = "", details: Mapping[str, JSONValue] | None = None
) -> RpcError:
    """The most specific `RpcError` for *code* (what a caller receives from the wire).

    Example:
        >>> type(rpc_error("unavailable", "draining"))
        <class 'busrpc.Unavailable'>
    """
    code = code if isinstance(code, ErrorCode) else ErrorCode(code)
    if code is ErrorCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(message or "deadline exceeded", details)
    if code is ErrorCode.UNAVAILABLE:
        return Unavailable(message or "unavailable", details)
    return RpcError(code, message, details)


def rpc_error_from_exception(exc: Exception) -> RpcError:
    """The error a caller receives when a handler raises *exc*.

    An `RpcError` is sent as raised; `NotImplementedError` becomes ``unimplemented``; any
    other exception ``internal``. Neither carries the exception's text: it may hold
    internals (paths, data, secrets), so it stays in the server's log.

    Example:
        >>> rpc_error_from_exception(NotImplementedError("v2 only")).code
        <ErrorCode.UNIMPLEMENTED: 'unimplemented'>
        >>> rpc_error_from_exception(KeyError("secret")).message
        'internal error'
    """
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, NotImplementedError):
        return RpcError(ErrorCode.UNIMPLEMENTED, "not implemented")
    return RpcError(ErrorCode.INTERNAL, "internal error")


ExceptionMap: TypeAlias = Mapping[type[BaseException], type[BusrpcError]]


@contextlib.contextmanager
def map_exceptions(mapping: ExceptionMap) -> Iterator[None]:
    """Translate foreign exceptions at an I/O boundary; the first match wins.

    `BusrpcError` and anything not in *mapping* pass through unchanged, and so does
    `asyncio.CancelledError` (a BaseException).
    """
    try:
        yield
    except BusrpcError:
        raise
    except Exception as exc:
        for source, target in mapping.items():
            if isinstance(exc, source):
                raise target(str(exc) or type(exc).__name__) from exc
        raise
