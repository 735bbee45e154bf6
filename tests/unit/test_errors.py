"""The error codes (psrpc's 22, mapped as psrpc maps them) and the exception tree."""

from __future__ import annotations

import copy
import enum
import math

import pytest

import busrpc
from busrpc import (
    BusrpcError,
    ClosedResourceError,
    CodecError,
    ConnectError,
    DeadlineExceeded,
    ErrorCode,
    ProtocolError,
    RpcError,
    TransportError,
    Unavailable,
    WouldBlock,
)
from busrpc._core import (
    Headers,
    JSONValue,
    Message,
    error_message,
    error_of,
    rpc_error_from_exception,
)
from busrpc._core._replies import header_text

# code -> (HTTP status, gRPC status), as psrpc's ToHTTP and ToGRPC have them.
PSRPC: dict[str, tuple[int, int]] = {
    "canceled": (503, 1),
    "malformed_request": (400, 3),
    "malformed_result": (500, 13),
    "deadline_exceeded": (503, 4),
    "unavailable": (503, 14),
    "unknown": (500, 2),
    "invalid_argument": (400, 3),
    "not_found": (404, 5),
    "not_acceptable": (406, 2),
    "already_exists": (409, 6),
    "permission_denied": (403, 7),
    "resource_exhausted": (429, 8),
    "failed_precondition": (412, 9),
    "aborted": (409, 10),
    "out_of_range": (416, 11),
    "unimplemented": (501, 12),
    "internal": (500, 13),
    "data_loss": (500, 15),
    "unauthenticated": (401, 16),
    "unprocessable_entity": (422, 2),
    "upstream_server_error": (502, 13),
    "upstream_client_error": (424, 3),
}

# gRPC status -> code, as psrpc's ErrorCodeFromGRPC has it (OK, 0, is no error code).
FROM_GRPC: dict[int, ErrorCode] = {
    0: ErrorCode.UNKNOWN,
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

FROM_HTTP: dict[int, ErrorCode] = {
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


def test_the_codes_are_psrpcs_22() -> None:
    assert [code.value for code in ErrorCode] == list(PSRPC)
    assert len(ErrorCode) == 22


@pytest.mark.parametrize("name", list(PSRPC))
def test_http_and_grpc_status_as_psrpc(name: str) -> None:
    code = ErrorCode(name)
    assert (code.http_status, code.grpc_status) == PSRPC[name]
    error = RpcError(name)
    assert (error.http_status, error.grpc_status) == PSRPC[name]


@pytest.mark.parametrize("status", list(FROM_GRPC))
def test_from_grpc(status: int) -> None:
    assert ErrorCode.from_grpc(status) is FROM_GRPC[status]


@pytest.mark.parametrize("status", [-1, 17, 99])
def test_from_grpc_unknown_status_is_unknown(status: int) -> None:
    assert ErrorCode.from_grpc(status) is ErrorCode.UNKNOWN


def test_grpc_status_maps_back_to_a_code_with_that_status() -> None:
    for code in ErrorCode:
        assert ErrorCode.from_grpc(code.grpc_status).grpc_status == code.grpc_status


@pytest.mark.parametrize("status", list(FROM_HTTP))
def test_from_http(status: int) -> None:
    assert ErrorCode.from_http(status) is FROM_HTTP[status]


@pytest.mark.parametrize("status", [200, 418, 451, 505, 599])
def test_from_http_unknown_status_is_unknown(status: int) -> None:
    assert ErrorCode.from_http(status) is ErrorCode.UNKNOWN


def test_http_status_maps_back_to_a_code_with_that_status() -> None:
    for code in ErrorCode:
        assert ErrorCode.from_http(code.http_status).http_status == code.http_status


def test_unknown_code_string_is_unknown() -> None:
    assert ErrorCode("something_newer") is ErrorCode.UNKNOWN
    assert RpcError("something_newer").code is ErrorCode.UNKNOWN


def test_exception_tree() -> None:
    assert issubclass(TransportError, BusrpcError)
    assert issubclass(ConnectError, TransportError)
    for cls in (CodecError, ProtocolError, ClosedResourceError, WouldBlock, RpcError):
        assert issubclass(cls, BusrpcError)
        assert not issubclass(cls, TransportError)
    assert issubclass(DeadlineExceeded, RpcError)
    assert issubclass(DeadlineExceeded, TimeoutError)
    assert issubclass(Unavailable, RpcError)
    assert not issubclass(Unavailable, TimeoutError)


def test_rpc_error_fields() -> None:
    error = RpcError(ErrorCode.NOT_FOUND, "no user 42", {"user_id": "42"})
    assert error.code is ErrorCode.NOT_FOUND
    assert error.message == "no user 42"
    assert dict(error.details) == {"user_id": "42"}
    assert str(error) == "not_found: no user 42"
    assert RpcError("not_found", "no user 42").code is ErrorCode.NOT_FOUND


def test_rpc_error_default_message_is_the_code_in_words() -> None:
    assert RpcError("permission_denied").message == "permission denied"
    assert dict(RpcError("internal").details) == {}


def test_details_are_copied() -> None:
    details = {"a": "1"}
    error = RpcError("aborted", "x", details)
    details["b"] = "2"
    assert dict(error.details) == {"a": "1"}


def test_subclasses_carry_their_code() -> None:
    assert DeadlineExceeded().code is ErrorCode.DEADLINE_EXCEEDED
    assert Unavailable("gone").code is ErrorCode.UNAVAILABLE
    assert Unavailable("gone").message == "gone"
    with pytest.raises(TimeoutError):
        raise DeadlineExceeded("too slow")


def test_error_code_is_public_and_callable() -> None:
    assert busrpc.ErrorCode("not_found") is ErrorCode.NOT_FOUND
    assert ErrorCode("not_found").http_status == 404


# -- details: any JSON value, refused loudly otherwise (issue 02) ----------------------------


class Color(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def test_details_take_any_json_value() -> None:
    details: dict[str, JSONValue] = {
        "s": "x",
        "i": 1,
        "big": 2**80,
        "f": 0.5,
        "b": False,
        "n": None,
        "l": [1, [2, {"three": None}]],
        "o": {"p": {"q": []}},
    }
    assert RpcError("aborted", "x", details).details == details


def test_details_are_a_deep_copy_in_plain_json_types() -> None:
    inner = {"ids": [1, 2]}
    error = RpcError("aborted", "x", {"inner": inner, "pair": (1, 2), "color": Color.RED})
    inner["ids"].append(3)
    assert error.details == {"inner": {"ids": [1, 2]}, "pair": [1, 2], "color": "red"}
    assert type(error.details["color"]) is str
    level = RpcError("aborted", "x", {"level": Level.HIGH}).details["level"]
    assert (level, type(level)) == (3, int)


@pytest.mark.parametrize(
    "details",
    [
        {"b": b"bytes"},
        {"s": {1, 2}},
        {"o": object()},
        {"nested": {"deep": [1, {"bad": b"x"}]}},
        {"nan": math.nan},
        {"inf": [math.inf]},
        {1: "non-string key"},
        {"k": {2: "nested non-string key"}},
    ],
    ids=["bytes", "set", "object", "nested", "nan", "inf", "key", "nested-key"],
)
def test_details_json_cannot_carry_are_refused_at_construction(details: object) -> None:
    with pytest.raises(TypeError, match="details"):
        RpcError("aborted", "x", details)  # type: ignore[arg-type]


def test_details_nested_without_end_are_refused() -> None:
    cycle: dict[str, JSONValue] = {}
    cycle["self"] = cycle
    with pytest.raises(TypeError, match="deeper"):
        RpcError("aborted", "x", cycle)


def test_details_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="mapping"):
        RpcError("aborted", "x", ["not", "a", "mapping"])  # type: ignore[arg-type]


def test_subclasses_take_json_details() -> None:
    assert DeadlineExceeded("slow", {"waited_ms": 1500}).details == {"waited_ms": 1500}
    assert Unavailable("gone", {"retry": [1, 2]}).details == {"retry": [1, 2]}


def test_an_error_copies_with_its_details() -> None:
    error = RpcError("aborted", "line\nnext", {"l": [1, {"x": None}]})
    again = copy.deepcopy(error)  # through __reduce__, as pickle would
    assert (again.code, again.message, again.details) == (error.code, error.message, error.details)


# -- the error reply on the wire ------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    ["plain", "two\nlines", "crlf\r\nX-Injected: 1", "  spaces  ", "\n", "é ✓", "x" * 5000],
)
def test_an_error_reply_carries_the_exact_message_in_its_body(message: str) -> None:
    error = RpcError("not_found", message, {"n": [1, None]})
    reply = error_message("_INBOX.x.1", error, "server-1")
    header = reply.headers[Headers.NATS_ERROR]
    assert header and "\r" not in header and "\n" not in header and len(header) <= 1024
    back = error_of(reply, "svc.m")
    assert (back.code, back.message, back.details) == (error.code, message, {"n": [1, None]})


def test_the_header_copy_is_one_line() -> None:
    assert header_text("a\r\nb") == "a b"
    assert header_text("a\n\n\nb\tc\x00d") == "a b c d"
    assert header_text("  padded \n") == "padded"
    assert header_text("x" * 2000) == "x" * 1021 + "..."


def test_an_empty_header_copy_falls_back_to_the_code() -> None:
    reply = error_message("r", RpcError("aborted", "\r\n"), "s")
    assert reply.headers[Headers.NATS_ERROR] == "aborted"
    assert error_of(reply, "svc.m").message == "\r\n"


def test_the_header_is_read_when_the_body_says_nothing() -> None:
    headers = {Headers.NATS_ERROR_CODE: "404", Headers.NATS_ERROR: "from the header"}
    for data in (b"", b"not json", b'{"code": "not_found"}', b'{"message": "no code"}'):
        error = error_of(Message("r", data, headers), "svc.m")
        assert (error.code, error.message) == (ErrorCode.NOT_FOUND, "from the header")


# -- exceptions raised by handlers ----------------------------------------------------------


def test_an_rpc_error_is_sent_as_raised() -> None:
    error = RpcError("not_found", "no user", {"id": 1})
    assert rpc_error_from_exception(error) is error


def test_not_implemented_is_unimplemented_without_its_text() -> None:
    error = rpc_error_from_exception(NotImplementedError("secret roadmap"))
    assert error.code is ErrorCode.UNIMPLEMENTED
    assert "secret" not in error.message


@pytest.mark.parametrize("exc", [ValueError("secret"), KeyError("secret"), TimeoutError()])
def test_any_other_exception_is_internal_without_its_text(exc: Exception) -> None:
    error = rpc_error_from_exception(exc)
    assert (error.code, error.message, dict(error.details)) == (
        ErrorCode.INTERNAL,
        "internal error",
        {},
    )
