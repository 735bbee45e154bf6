"""A busrpc server in its own process, for the fault tests (and the service they call).

Run as ``python tests/faults/_server_proc.py --url nats://... --namespace ns --server-id s1``.
It prints ``READY <server_id>`` on stdout once the server's subscriptions are live, and
``CALL <name>`` when the ``hang`` or ``slow_then_reply`` handler starts, so a test can wait
for the thing itself instead of sleeping. SIGTERM shuts the server down gracefully
(``Server.shutdown(grace)``) and the process exits 0. Logging goes to stderr.

The test module imports `FaultService`, `Echo` and `Delay` from here to build its client.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable

import msgspec

import busrpc


class Echo(msgspec.Struct, frozen=True, kw_only=True):
    text: str


class Delay(msgspec.Struct, frozen=True, kw_only=True):
    seconds: float


@busrpc.service("faults")
class FaultService:
    """echo, a handler that never returns, one that raises, and one that takes its time."""

    def __init__(self, announce: Callable[[str], None]) -> None:
        self._announce = announce
        self._never = asyncio.Event()  # nothing sets it: `hang` waits until cancelled

    @busrpc.rpc
    async def echo(self, req: Echo) -> Echo:
        return req

    @busrpc.rpc
    async def hang(self, req: Echo) -> Echo:
        self._announce("hang")
        await self._never.wait()
        raise AssertionError("unreachable: the event is never set")

    @busrpc.rpc
    async def boom(self, req: Echo) -> Echo:
        raise ValueError("secret detail")

    @busrpc.rpc
    async def slow_then_reply(self, req: Delay) -> Echo:
        self._announce("slow")
        # The handler's own work (the system under test), not test synchronisation.
        await asyncio.sleep(req.seconds)
        return Echo(text="done")


def _print_call(name: str) -> None:
    print(f"CALL {name}", flush=True)


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with (
        busrpc.connect(args.url) as bus,
        busrpc.Server(
            bus,
            FaultService(_print_call),
            server_id=args.server_id,
            namespace=args.namespace,
            max_message_size=args.max_message_size,
        ) as server,
    ):
        print(f"READY {server.server_id}", flush=True)
        await stop.wait()
        await server.shutdown(args.grace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--server-id", required=True)
    parser.add_argument("--max-message-size", type=int, default=1024 * 1024)
    parser.add_argument("--grace", type=float, default=5.0)
    args = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s %(message)s"
    )
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
