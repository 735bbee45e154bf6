"""``busrpc bench``: echo calls through a bus, measured as ``shared/peers/peers.py`` does.

N echo servers (``busrpc serve busrpc.cli._bench:EchoService`` processes; in this process
on a ``memory://`` bus) and C concurrent callers in this process. Each call sends
``{"data": "<payload chars>"}``, unique per call, and checks the echo. After a warm-up,
only the calls that complete inside the measuring window count. The result has the same
keys as the peers harness (``peer`` is ``"busrpc"``), plus ``url``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import time
from collections.abc import Sequence
from typing import Any, Final

import msgspec

import busrpc

from ._procs import ServeProcess
from ._runtime import open_bus, redact_url, run, running_on_uvloop

__all__ = ["CALL_TIMEOUT", "Echo", "EchoService", "arun_bench", "run_bench"]

CALL_TIMEOUT: Final = 10.0
"""Seconds one benchmark call may take before it counts as an error."""

_TARGET: Final = "busrpc.cli._bench:EchoService"


class Echo(msgspec.Struct, frozen=True, kw_only=True):
    """The benchmark payload, sent and echoed."""

    data: str


@busrpc.service("bench")
class EchoService:
    """Echoes every request: the server side of ``busrpc bench``.

    Example:
        >>> async with busrpc.Server(bus, EchoService()):
        ...     ...
    """

    @busrpc.rpc
    async def echo(self, req: Echo) -> Echo:
        """The request, decoded and encoded again."""
        return req


def run_bench(
    url: str | None = None,
    concurrency: int = 64,
    payload: int = 100,
    seconds: float = 5.0,
    warmup: float = 1.0,
    servers: int = 1,
) -> dict[str, Any]:
    """Run one benchmark point on a new event loop (uvloop when installed); its result.

    See `arun_bench`, which does the work inside a running loop.

    Example:
        >>> run_bench("nats://127.0.0.1:4222", concurrency=64, seconds=5)["calls_per_s"]
        21345.6
    """
    return run(arun_bench(url, concurrency, payload, seconds, warmup, servers))


async def arun_bench(
    url: str | None = None,
    concurrency: int = 64,
    payload: int = 100,
    seconds: float = 5.0,
    warmup: float = 1.0,
    servers: int = 1,
) -> dict[str, Any]:
    """Start *servers* echo servers on *url*, run *concurrency* callers for *warmup* and
    then *seconds* seconds, stop the servers; the measurements.

    *url* defaults to ``BUSRPC_URL``, else a private nats-server. The result has the
    peers harness's keys: ``peer``, ``transport``, ``concurrency``, ``payload``,
    ``servers``, ``calls``, ``errors``, ``seconds``, ``calls_per_s``, ``p50_ms``,
    ``p99_ms``, ``cpu_pct`` (``client``, ``servers``, ``machine``, in % of one core;
    ``servers`` is ``None`` on a memory bus, whose servers run in the client, and every
    value is ``None`` where ``/proc`` is missing), ``uvloop``; and ``url``.

    Raises:
        ValueError: a parameter is out of range.
        RuntimeError: an echo server process did not start.
        TransportError: the bus is unreachable.

    Example:
        >>> result = await arun_bench("memory://", concurrency=4, seconds=1)
    """
    _check(concurrency=concurrency, payload=payload, seconds=seconds, warmup=warmup)
    if servers < 1:
        raise ValueError("servers must be at least 1")
    namespace = f"bench-{secrets.token_hex(4)}"
    async with contextlib.AsyncExitStack() as stack:
        url = url or os.environ.get("BUSRPC_URL") or None
        if url is None:
            from ._nats_server import EmbeddedNatsServer

            url = (await stack.enter_async_context(EmbeddedNatsServer())).url
        bus = await open_bus(stack, url)  # first: an unreachable bus fails fast
        pids = await _start_servers(stack, url, namespace, servers)
        measured = await _measure(bus, namespace, concurrency, payload, seconds, warmup, pids)
    scheme = url.partition("://")[0].lower()
    head = {
        "peer": "busrpc",
        "transport": "nats" if scheme == "tls" else scheme,
        "concurrency": concurrency,
        "payload": payload,
        "servers": servers,
    }
    return {**head, **measured, "uvloop": running_on_uvloop(), "url": redact_url(url)}


def _check(**values: float) -> None:
    for name, value in values.items():
        least = 1 if name == "concurrency" else 0
        if value < least or (name == "seconds" and value <= 0):
            raise ValueError(f"{name} must be {'positive' if least else 'at least 0'}: {value}")


async def _start_servers(
    stack: contextlib.AsyncExitStack, url: str, namespace: str, count: int
) -> list[int] | None:
    """Start the echo servers; their process ids (``None``: they run in this process)."""
    if url.startswith("memory:"):
        for _ in range(count):
            bus = await open_bus(stack, url)
            await stack.enter_async_context(busrpc.Server(bus, EchoService(), namespace=namespace))
        return None
    procs = [ServeProcess(_TARGET, url, namespace=namespace) for _ in range(count)]
    for proc in procs:
        await stack.enter_async_context(proc)
    return [proc.pid for proc in procs]


class _State:
    __slots__ = ("errors", "latencies", "stop", "t0", "t1")

    def __init__(self) -> None:
        self.errors = 0
        self.latencies: list[float] = []
        self.stop = False
        self.t0: float | None = None
        self.t1: float | None = None


async def _measure(
    bus: busrpc.MessageBus,
    namespace: str,
    concurrency: int,
    payload: int,
    seconds: float,
    warmup: float,
    server_pids: Sequence[int] | None,
) -> dict[str, Any]:
    echo = busrpc.client(EchoService, bus, namespace=namespace, timeout=CALL_TIMEOUT)
    filler = "x" * payload
    await echo.echo(Echo(data=filler))  # one call before the clock: inbox, connections
    st = _State()

    async def caller(idx: int) -> None:
        for seq in itertools.count():
            if st.stop:
                return
            tag = f"{idx}:{seq}:"
            data = (tag + filler)[:payload] if payload < len(tag) else tag + filler[len(tag) :]
            started = time.perf_counter()
            try:
                ok = (await echo.echo(Echo(data=data))).data == data
            except busrpc.BusrpcError:
                ok = False
            done = time.perf_counter()
            if st.t0 is not None and st.t1 is None and done >= st.t0:
                if ok:
                    st.latencies.append(done - started)
                else:
                    st.errors += 1

    tasks = [asyncio.create_task(caller(i)) for i in range(concurrency)]
    try:
        await asyncio.sleep(warmup)  # a measuring window, not synchronisation
        cpu0 = _cpu_sample(server_pids)
        st.t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        st.t1 = time.perf_counter()
        cpu1 = _cpu_sample(server_pids)
        st.stop = True
        await asyncio.wait(tasks, timeout=CALL_TIMEOUT + 1)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return _summary(st, cpu0, cpu1, server_pids is not None)


def _summary(
    st: _State, cpu0: _CpuSample, cpu1: _CpuSample, separate_servers: bool
) -> dict[str, Any]:
    assert st.t0 is not None and st.t1 is not None
    secs = st.t1 - st.t0
    lat = sorted(st.latencies)

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3, 3) if lat else None

    return {
        "calls": len(lat),
        "errors": st.errors,
        "seconds": round(secs, 3),
        "calls_per_s": round(len(lat) / secs, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "cpu_pct": cpu0.percent(cpu1, secs, separate_servers),
    }


class _CpuSample:
    """CPU time used so far: this process (s), the servers and the machine (ticks)."""

    __slots__ = ("client", "machine", "servers")

    def __init__(self, client: float, servers: int | None, machine: int | None) -> None:
        self.client = client
        self.servers = servers
        self.machine = machine

    def percent(self, later: _CpuSample, secs: float, separate_servers: bool) -> dict[str, Any]:
        """% of one core between this sample and *later*, *secs* apart."""
        tick = _clock_ticks()

        def ticks(a: int | None, b: int | None) -> int | None:
            if a is None or b is None or tick is None:
                return None
            return round(100 * (b - a) / tick / secs)

        return {
            "client": round(100 * (later.client - self.client) / secs),
            "servers": ticks(self.servers, later.servers) if separate_servers else None,
            "machine": ticks(self.machine, later.machine),
        }


def _cpu_sample(server_pids: Sequence[int] | None) -> _CpuSample:
    servers = None
    if server_pids is not None:
        per_server = [_process_ticks(pid) for pid in server_pids]
        servers = None if None in per_server else sum(t for t in per_server if t is not None)
    return _CpuSample(time.process_time(), servers, _machine_busy_ticks())


def _clock_ticks() -> int | None:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return None


def _process_ticks(pid: int) -> int | None:
    """User + system CPU ticks of *pid* (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def _machine_busy_ticks() -> int | None:
    """CPU ticks the machine spent busy: all but idle and iowait (Linux ``/proc``)."""
    try:
        with open("/proc/stat") as f:
            values = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    return sum(values) - values[3] - values[4]
