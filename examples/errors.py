"""Errors: what a caller sees when a call fails, and why.

- a handler raising `busrpc.RpcError` reaches the caller with the same code, message and
  details (and the code's HTTP and gRPC status);
- any other exception reaches it as ``internal`` with no traceback (the server logs it);
- a handler that does not answer in time is `busrpc.DeadlineExceeded` (a `TimeoutError`);
- no server at all is `busrpc.Unavailable`, at once, naming the subject.

    python examples/errors.py [URL]
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

import busrpc


class UserQuery(msgspec.Struct):
    user_id: int


class User(msgspec.Struct):
    user_id: int
    name: str


@busrpc.service("users")
class Users:
    @busrpc.rpc
    async def get(self, req: UserQuery) -> User:
        if req.user_id == 1:
            return User(user_id=1, name="ada")
        if req.user_id < 0:
            raise ValueError("negative id")  # a bug: the caller sees only "internal"
        raise busrpc.RpcError("not_found", f"no user {req.user_id}", {"user_id": str(req.user_id)})

    @busrpc.rpc
    async def slow(self, req: UserQuery) -> User:
        await asyncio.Event().wait()  # never answers; cancelled at the caller's deadline
        raise AssertionError("unreachable")


@busrpc.service("nobody")
class Nobody:
    @busrpc.rpc
    async def home(self, req: UserQuery) -> User:
        raise AssertionError("never served")


async def main(bus: busrpc.MessageBus) -> None:
    async with busrpc.Server(bus, Users()) as server:
        users = busrpc.client(Users, bus)
        assert (await users.get(UserQuery(user_id=1), timeout=5)).name == "ada"

        try:
            await users.get(UserQuery(user_id=42), timeout=5)
        except busrpc.RpcError as exc:
            print(f"{exc} (HTTP {exc.http_status}, gRPC {exc.grpc_status}) {exc.details}")
            assert exc.code is busrpc.ErrorCode.NOT_FOUND
            assert (exc.message, exc.details) == ("no user 42", {"user_id": "42"})
            assert (exc.http_status, exc.grpc_status) == (404, 5)
        else:
            raise AssertionError("expected not_found")

        try:
            await users.get(UserQuery(user_id=-1), timeout=5)
        except busrpc.RpcError as bug:
            print(bug)
            assert bug.code is busrpc.ErrorCode.INTERNAL and bug.message == "internal error"
        else:
            raise AssertionError("expected internal")

        try:
            await users.slow(UserQuery(user_id=1), timeout=0.2)
        except TimeoutError as timeout:  # DeadlineExceeded is also a TimeoutError
            print(timeout)
            assert isinstance(timeout, busrpc.DeadlineExceeded)
            assert timeout.code is busrpc.ErrorCode.DEADLINE_EXCEEDED
        else:
            raise AssertionError("expected deadline_exceeded")

        try:
            await busrpc.client(Nobody, bus).home(UserQuery(user_id=1), timeout=5)
        except busrpc.Unavailable as nobody:
            print(nobody)
            assert nobody.message == "no responders for nobody.home"
        else:
            raise AssertionError("expected unavailable")

    # The server has finished every call by now: its counters are final.
    stats = server.statistics()
    print(stats)
    assert (stats.succeeded, stats.failed, stats.expired) == (1, 2, 1)

    # Codes travel as strings; numbers map back for foreign peers.
    assert busrpc.ErrorCode.from_http(404) is busrpc.ErrorCode.NOT_FOUND
    assert busrpc.ErrorCode.from_grpc(14) is busrpc.ErrorCode.UNAVAILABLE
    assert busrpc.ErrorCode("a_code_from_a_newer_peer") is busrpc.ErrorCode.UNKNOWN


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
