"""The error codes (psrpc's 22, mapped as psrpc maps them) and the exception tree."""

from __future__ import annotations

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
