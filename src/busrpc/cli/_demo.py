"""``busrpc demo``: two servers of `DemoService`, and a call of every pattern.

`DemoService` is an ordinary service; ``busrpc serve busrpc.cli._demo:DemoService`` serves
it. Its affinity score for ``transcode`` comes from the ``BUSRPC_DEMO_AFFINITY``
environment variable (default 0.5), so that two server processes can bid differently: an
affinity function sees only the request, never the call context.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
from rich.console import Console
from rich.markup import escape

import busrpc

from ._procs import ServeProcess
from ._runtime import describe_error, open_bus, redact_url

__all__ = [
    "AFFINITY_ENV",
    "DemoService",
    "Greet",
    "Greeting",
    "Job",
    "JobResult",
    "Lookup",
    "Nap",
    "RegionReply",
    "RegionRequest",
    "Stats",
    "StatsRequest",
    "run_demo",
]

AFFINITY_ENV: Final = "BUSRPC_DEMO_AFFINITY"
"""Environment variable with a `DemoService` server's ``transcode`` affinity score."""

_TARGET: Final = "busrpc.cli._demo:DemoService"
# (server id, affinity score, topic of `region`): demo-1 outbids demo-2 for transcode.
_SERVERS: Final = (("demo-1", 0.9, "eu"), ("demo-2", 0.3, "us"))
_CALL_TIMEOUT: Final = 5.0
_DEADLINE: Final = 0.5  # the deadline step's timeout; the handler sleeps longer
_READY_ROUNDS: Final = 3


class Greet(msgspec.Struct, frozen=True, kw_only=True):
    """A request to `DemoService.hello`."""

    name: str


class Greeting(msgspec.Struct, frozen=True, kw_only=True):
    """The reply of `DemoService.hello`: who answered."""

    message: str
    server_id: str


class StatsRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request to `DemoService.stats` (no fields)."""


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """One server's answer to `DemoService.stats`."""

    server_id: str
    pid: int
    calls: int
    affinity: float


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A request to `DemoService.transcode`."""

    name: str


class JobResult(msgspec.Struct, frozen=True, kw_only=True):
    """The reply of `DemoService.transcode`: the server that won the bidding."""

    job: str
    server_id: str
    affinity: float


class RegionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request to `DemoService.region` (no fields: the topic is the question)."""


class RegionReply(msgspec.Struct, frozen=True, kw_only=True):
    """The reply of `DemoService.region`: the topic served and the server."""

    region: str
    server_id: str


class Lookup(msgspec.Struct, frozen=True, kw_only=True):
    """A request to `DemoService.fail`."""

    key: str


class Nap(msgspec.Struct, frozen=True, kw_only=True):
    """A request to `DemoService.slow`: how long the handler sleeps."""

    seconds: float


@busrpc.service("demo")
class DemoService:
    """The service ``busrpc demo`` runs: one method per call pattern.

    Args:
        affinity: this server's ``transcode`` bid (default: ``BUSRPC_DEMO_AFFINITY``, else
            0.5).

    Example:
        >>> async with busrpc.Server(bus, DemoService(affinity=0.9), server_id="demo-1"):
        ...     ...
    """

    def __init__(self, affinity: float | None = None) -> None:
        if affinity is None:
            affinity = float(os.environ.get(AFFINITY_ENV, "0.5"))
        self.affinity = affinity
        self.calls = 0

    @busrpc.rpc
    async def hello(self, req: Greet) -> Greeting:
        """Unary: one server of the queue group answers."""
        self.calls += 1
        return Greeting(message=f"hello, {req.name}", server_id=_server_id())

    @busrpc.rpc(multi=True)
    async def stats(self, req: StatsRequest) -> Stats:
        """Multi: every server answers."""
        self.calls += 1
        return Stats(
            server_id=_server_id(), pid=os.getpid(), calls=self.calls, affinity=self.affinity
        )

    @busrpc.rpc(affinity=True)
    async def transcode(self, job: Job) -> JobResult:
        """Affinity: servers bid, the highest score takes the call."""
        self.calls += 1
        return JobResult(job=job.name, server_id=_server_id(), affinity=self.affinity)

    @transcode.affinity
    def transcode_affinity(self, job: Job) -> float:
        """This server's bid for *job*."""
        return self.affinity

    @busrpc.rpc(topics=True)
    async def region(self, req: RegionRequest) -> RegionReply:
        """Topics: only the servers that registered the topic answer."""
        self.calls += 1
        call = busrpc.current_call()
        topic = ".".join(call.topic) if call is not None else ""
        return RegionReply(region=topic, server_id=_server_id())

    @busrpc.rpc
    async def fail(self, req: Lookup) -> Greeting:
        """Errors: raises ``not_found``; the caller gets the same code."""
        self.calls += 1
        raise busrpc.RpcError("not_found", f"no user {req.key}", {"key": req.key})

    @busrpc.rpc
    async def slow(self, req: Nap) -> Nap:
        """Deadlines: sleeps *req.seconds*; the call is abandoned at the caller's deadline."""
        self.calls += 1
        await asyncio.sleep(req.seconds)
        return req


def _server_id() -> str:
    call = busrpc.current_call()
    return call.server_id if call is not None else "local"


class DemoFailed(Exception):
    """A demo step did not behave as the pattern promises."""


Step = Callable[[DemoService], Awaitable[tuple[str, str]]]


async def run_demo(url: str | None, console: Console) -> bool:
    """Run the demo on *url* (default: a private nats-server); whether every step passed.

    On a ``memory://`` bus the two servers run in this process (a memory bus does not
    cross processes); elsewhere each is a ``busrpc serve`` child process.

    Example:
        >>> ok = await run_demo(None, Console())
    """
    namespace = f"demo-{secrets.token_hex(3)}"
    embedded = url is None
    async with contextlib.AsyncExitStack() as stack:
        if url is None:
            from ._nats_server import EmbeddedNatsServer

            nats_server = await stack.enter_async_context(EmbeddedNatsServer())
            url = nats_server.url
            console.print(f"started nats-server on {url} (embedded, stopped at the end)")
        bus = await open_bus(stack, url)
        console.print(f"connected to {redact_url(url)}; the calls use namespace {namespace}")
        servers = await _start_servers(stack, url, namespace, console)
        demo = busrpc.client(DemoService, bus, namespace=namespace, timeout=_CALL_TIMEOUT)
        try:
            await _wait_ready(demo)
        except (DemoFailed, busrpc.BusrpcError) as exc:
            console.print(f"[red]✗[/] {escape(str(exc))}")
            ok = False
        else:
            console.print("both servers answer\n")
            ok = True
            for name, step in _STEPS:
                ok = await _run_step(console, name, step, demo) and ok
        await bus.aclose()
        ok = await _stop_servers(servers, console) and ok
    if embedded:
        console.print("stopped nats-server")
    return ok


# -- servers -----------------------------------------------------------------------------


class _LocalServer:
    """A demo server in this process, for the memory bus."""

    def __init__(self, server_id: str, bus: busrpc.MessageBus, server: busrpc.Server) -> None:
        self.server_id = server_id
        self._bus = bus
        self._server = server

    async def stop(self) -> int:
        await self._server.shutdown()
        await self._bus.aclose()
        return 0


async def _start_servers(
    stack: contextlib.AsyncExitStack, url: str, namespace: str, console: Console
) -> list[ServeProcess | _LocalServer]:
    servers: list[ServeProcess | _LocalServer] = []
    for server_id, affinity, topic in _SERVERS:
        what = f"server {server_id} (transcode affinity {affinity}, region topic {topic!r})"
        if url.startswith("memory:"):
            bus = await open_bus(stack, url)
            server = busrpc.Server(
                bus,
                DemoService(affinity=affinity),
                server_id=server_id,
                namespace=namespace,
                topics={DemoService.region: [topic]},
            )
            await stack.enter_async_context(server)
            servers.append(_LocalServer(server_id, bus, server))
            console.print(f"started {what} in this process")
        else:
            proc = ServeProcess(
                _TARGET,
                url,
                server_id=server_id,
                namespace=namespace,
                topics=[f"region={topic}"],
                env={AFFINITY_ENV: str(affinity)},
            )
            await stack.enter_async_context(proc)
            servers.append(proc)
            console.print(f"started {what} as process {proc.pid}")
    return servers


async def _wait_ready(demo: DemoService) -> None:
    # Each child printed its ready line once subscribed; one multi call proves both answer.
    # Each round waits for answers (never a sleep); a few rounds absorb a slow start.
    expected = {server_id for server_id, _, _ in _SERVERS}
    seen: set[str] = set()
    for _ in range(_READY_ROUNDS):
        async for r in demo.stats(StatsRequest(), expect=len(expected), timeout=_CALL_TIMEOUT):
            if r.ok:
                seen.add(r.server_id)
        if seen >= expected:
            return
    raise DemoFailed(f"servers did not answer: {', '.join(sorted(expected - seen))}")


async def _stop_servers(servers: list[ServeProcess | _LocalServer], console: Console) -> bool:
    ok = True
    for server in servers:
        code = await server.stop()
        if code == 0:
            console.print(f"stopped server {server.server_id} (graceful shutdown, exit 0)")
        else:
            ok = False
            console.print(f"[red]✗[/] server {server.server_id} exited with code {code}")
            if isinstance(server, ServeProcess) and server.stderr_tail:
                console.print(escape(server.stderr_tail), style="dim")
    return ok


# -- steps -------------------------------------------------------------------------------


async def _run_step(console: Console, name: str, step: Step, demo: DemoService) -> bool:
    try:
        result, explanation = await step(demo)
    except (DemoFailed, busrpc.BusrpcError) as exc:
        console.print(f"[red]✗ {name:<9}[/] {escape(str(exc))}")
        return False
    console.print(f"[green]✓[/] [bold]{name:<9}[/] {escape(result)}")
    console.print(f"  {'':<9} [dim]{escape(explanation)}[/]")
    return True


async def _unary(demo: DemoService) -> tuple[str, str]:
    reply = await demo.hello(Greet(name="ada"))
    return (
        f"demo.hello → {reply.message!r} from {reply.server_id}",
        "one call, one answer: the servers share the 'demo' queue group and one takes it",
    )


async def _direct(demo: DemoService) -> tuple[str, str]:
    reply = await demo.hello(Greet(name="bob"), server_id="demo-2")
    if reply.server_id != "demo-2":
        raise DemoFailed(f"direct call to demo-2 answered by {reply.server_id}")
    return (
        f"demo.hello(server_id='demo-2') → answered by {reply.server_id}",
        "server_id= addresses one server instance by name",
    )


async def _multi(demo: DemoService) -> tuple[str, str]:
    answers = [r async for r in demo.stats(StatsRequest(), expect=2)]
    ids = sorted(r.server_id for r in answers if r.ok)
    if ids != ["demo-1", "demo-2"]:
        raise DemoFailed(f"expected answers from demo-1 and demo-2, got {ids or 'none'}")
    parts = [f"{r.server_id} (pid {r.unwrap().pid})" for r in answers]
    return (
        f"demo.stats → {len(answers)} responses: {', '.join(parts)}",
        "a multi call goes to every server; the client gathers responses until expect=2",
    )


async def _affinity(demo: DemoService) -> tuple[str, str]:
    result = await demo.transcode(Job(name="movie.mp4"))
    bids = ", ".join(f"{server_id} {score}" for server_id, score, _ in _SERVERS)
    winner = max(_SERVERS, key=lambda s: s[1])[0]
    if result.server_id != winner:
        raise DemoFailed(f"transcode went to {result.server_id}, not the best bidder {winner}")
    return (
        f"demo.transcode → {result.server_id} won (bids: {bids})",
        "servers bid with an affinity score; the client sends the call to the best one",
    )


async def _topic(demo: DemoService) -> tuple[str, str]:
    found = []
    for server_id, _, topic in _SERVERS:
        reply = await demo.region(RegionRequest(), topic=topic)
        if reply.server_id != server_id or reply.region != topic:
            raise DemoFailed(f"topic {topic!r} answered by {reply.server_id}, not {server_id}")
        found.append(f"topic {topic!r} → {reply.server_id}")
    return (
        f"demo.region: {', '.join(found)}",
        "a server registers topics; a call with topic= reaches only the servers of that topic",
    )


async def _error(demo: DemoService) -> tuple[str, str]:
    try:
        await demo.fail(Lookup(key="42"))
    except busrpc.RpcError as exc:
        if exc.code is not busrpc.ErrorCode.NOT_FOUND:
            raise DemoFailed(f"expected not_found, got {exc}") from exc
        return (
            f"demo.fail → {describe_error(exc)}",
            "the handler raised RpcError('not_found', ...); the caller gets the same code",
        )
    raise DemoFailed("demo.fail returned instead of raising not_found")


async def _deadline(demo: DemoService) -> tuple[str, str]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await demo.slow(Nap(seconds=_DEADLINE * 6), timeout=_DEADLINE)
    except busrpc.DeadlineExceeded as exc:
        return (
            f"demo.slow(timeout={_DEADLINE}) → {exc.code.value} after "
            f"{loop.time() - started:.2f} s",
            "the handler sleeps 3 s; the deadline travels with the call and both sides give up",
        )
    raise DemoFailed("demo.slow returned before its deadline")


_STEPS: Final[tuple[tuple[str, Step], ...]] = (
    ("unary", _unary),
    ("direct", _direct),
    ("multi", _multi),
    ("affinity", _affinity),
    ("topic", _topic),
    ("error", _error),
    ("deadline", _deadline),
)
