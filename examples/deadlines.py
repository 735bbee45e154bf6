"""Deadlines: every call has one, it crosses the wire, and nested calls inherit it.

A caller gives ``frontend.handle`` one second. The frontend calls ``backend.lookup``
asking for 30 seconds, but a call made inside a handler never outlives the call being
served: the backend sees at most the caller's second (`busrpc.current_call()`). When the
deadline passes, the caller gets `busrpc.DeadlineExceeded` and every handler down the
chain is cancelled.

    python examples/deadlines.py [URL]
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

import busrpc


class Query(msgspec.Struct):
    key: str
    slow: bool = False


class Answer(msgspec.Struct):
    key: str
    seconds_left: float  # the deadline the backend saw


@busrpc.service("backend")
class Backend:
    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    @busrpc.rpc
    async def lookup(self, req: Query) -> Answer:
        call = busrpc.current_call()
        assert call is not None
        if req.slow:
            try:
                await asyncio.Event().wait()  # stands for work that takes too long
            except asyncio.CancelledError:
                self.cancelled.set()  # the deadline passed: the server cancelled us
                raise
        return Answer(key=req.key, seconds_left=call.deadline.remaining())


@busrpc.service("frontend")
class Frontend:
    def __init__(self, bus: busrpc.MessageBus) -> None:
        self.backend = busrpc.client(Backend, bus)

    @busrpc.rpc
    async def handle(self, req: Query) -> Answer:
        # Asks for 30 s, gets what is left of the caller's deadline.
        return await self.backend.lookup(req, timeout=30)


async def main(bus: busrpc.MessageBus) -> None:
    backend = Backend()
    async with busrpc.Server(bus, backend), busrpc.Server(bus, Frontend(bus)):
        frontend = busrpc.client(Frontend, bus)

        answer = await frontend.handle(Query(key="k"), timeout=1)
        print(f"backend saw {answer.seconds_left:.3f}s left (asked for 30)")
        assert answer.seconds_left <= 1.0

        # An absolute deadline works too, and DeadlineExceeded is a TimeoutError.
        deadline = busrpc.Deadline.after(0.2)
        try:
            await frontend.handle(Query(key="k", slow=True), deadline=deadline)
        except busrpc.DeadlineExceeded as exc:
            print(exc)
            assert isinstance(exc, TimeoutError)
        else:
            raise AssertionError("the slow lookup cannot finish in time")

        # The backend's handler was cancelled too: no work continues for a caller
        # that has given up.
        async with asyncio.timeout(5):
            await backend.cancelled.wait()
        print("backend handler cancelled")


async def _run(url: str) -> None:
    async with busrpc.connect(url) as bus:
        await main(bus)


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
