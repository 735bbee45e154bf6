"""The ``busrpc`` command as users run it: child processes on a real NATS server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from expected import BENCH_KEYS

from busrpc.cli._nats_server import EmbeddedNatsServer
from busrpc.cli._procs import ServeProcess

pytestmark = pytest.mark.slow  # spawns processes and uses the NATS broker

CLI_DIR = Path(__file__).parent
NATS_URL = "nats://127.0.0.1:4222"
DEAD = "nats://127.0.0.1:1"  # nothing listens on port 1
READY_TIMEOUT = 30.0
RUN_TIMEOUT = 60.0
PATTERNS = ("unary", "multi", "affinity", "topic", "error", "deadline")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BUSRPC_URL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLI_DIR), env.get("PYTHONPATH")]))
    return env


def busrpc_cli(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "busrpc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=CLI_DIR,
        stdin=subprocess.DEVNULL,
    )


class LineReader:
    """The lines of a child's pipe on a queue, read by a thread: waits are bounded."""

    def __init__(self, pipe: IO[str] | None) -> None:
        assert pipe is not None
        self.pipe = pipe
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.pipe:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_line(
        self, text: str, *, contains: bool = False, timeout: float = READY_TIMEOUT
    ) -> str:
        """The next line starting with (or containing) *text*, within *timeout* seconds."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {text!r} line within {timeout} s; saw {self.seen}")
            if line is None:
                pytest.fail(f"the pipe closed before a {text!r} line; saw {self.seen}")
            self.seen.append(line)
            if (text in line) if contains else line.startswith(text):
                return line

    def close(self, timeout: float) -> None:
        self._thread.join(timeout)
        self.pipe.close()


class Served:
    """A ``busrpc serve`` child; stderr goes to a file, stdout lines to a `LineReader`."""

    def __init__(self, stderr: IO[str], *args: str, namespace: str = "") -> None:
        self.stderr = stderr
        self.namespace = namespace
        self.ready = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "busrpc", "serve", "svc_fixture:FixtureService", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_env(),
            cwd=CLI_DIR,
        )
        self.stdout = LineReader(self.proc.stdout)

    @classmethod
    def on_nats(cls, stderr: IO[str], namespace: str, server_id: str, *extra: str) -> Served:
        args = ["--url", NATS_URL, "--namespace", namespace, "--server-id", server_id, *extra]
        return cls(stderr, *args, namespace=namespace)

    def wait_line(self, prefix: str) -> str:
        """The next stdout line starting with *prefix*."""
        try:
            return self.stdout.wait_line(prefix)
        except BaseException:
            self.stderr.flush()
            print(Path(self.stderr.name).read_text(), file=sys.stderr)  # for the report
            raise

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=timeout)
        self.stdout.close(timeout)
        return code


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with open(tmp_path / "serve.stderr", "w+") as stderr:
        srv = Served.on_nats(stderr, f"t{secrets.token_hex(4)}", "s1", "--topic", "region=eu")
        try:
            srv.ready = srv.wait_line("serving ")
            yield srv
        finally:
            srv.terminate()


def call(srv: Served, *args: str) -> subprocess.CompletedProcess[str]:
    return busrpc_cli("call", *args, "--url", NATS_URL, "--namespace", srv.namespace)


# -- serve + call ------------------------------------------------------------------------


def test_serve_prints_a_ready_line(served: Served) -> None:
    assert (
        served.ready
        == f"serving clitest on {NATS_URL} in namespace {served.namespace} as server s1"
    )


def test_call_prints_the_json_result_and_exits_0(served: Served) -> None:
    result = call(served, "clitest.greet", '{"name": "ada"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"text": "hello, ada", "server_id": "s1"}


def test_call_direct_to_a_server_id(served: Served) -> None:
    result = call(served, "clitest.greet", '{"name": "bob"}', "--server-id", "s1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["server_id"] == "s1"


def test_call_with_a_topic(served: Served) -> None:
    result = call(served, "clitest.region", "{}", "--topic", "eu")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"topic": "eu", "server_id": "s1"}


def test_call_an_error_exits_1_with_the_code_on_stderr(served: Served) -> None:
    result = call(served, "clitest.missing", '{"key": "7"}')
    assert result.returncode == 1
    assert result.stdout == ""
    assert 'error: not_found (404): no thing 7 {"key": "7"}' in result.stderr


def test_call_a_request_of_the_wrong_shape_exits_1(served: Served) -> None:
    result = call(served, "clitest.greet", '{"nom": "ada"}')
    assert result.returncode == 1
    assert "error: malformed_request (400)" in result.stderr


def test_call_past_its_timeout_exits_1_with_deadline_exceeded(served: Served) -> None:
    result = call(served, "clitest.slow", '{"seconds": 5}', "--timeout", "300ms")
    assert result.returncode == 1
    assert "error: deadline_exceeded (503)" in result.stderr


def test_call_nobody_serves_exits_1_unavailable(served: Served) -> None:
    result = call(served, "nobody.nothing_here", "{}")
    assert result.returncode == 1
    assert "error: unavailable (503): no responders" in result.stderr


def test_issue_6_call_to_a_missing_method_of_a_live_service_is_unimplemented(
    served: Served,
) -> None:
    result = call(served, "clitest.nothing_here", "{}")
    assert result.returncode == 1
    assert "error: unimplemented (501)" in result.stderr
    assert "nothing_here" in result.stderr


def test_call_multi_prints_one_line_per_server(served: Served, tmp_path: Path) -> None:
    with open(tmp_path / "second.stderr", "w+") as stderr:
        second = Served.on_nats(stderr, served.namespace, "s2")
        try:
            second.wait_line("serving ")
            result = call(served, "clitest.ping", "{}", "--multi", "--expect", "2", "-t", "10s")
        finally:
            assert second.terminate() == 0
    assert result.returncode == 0, result.stderr
    lines = sorted(result.stdout.splitlines())
    assert lines == [
        's1: {"topic":"","server_id":"s1"}',
        's2: {"topic":"","server_id":"s2"}',
    ]


def test_call_multi_ends_at_the_timeout(served: Served) -> None:
    result = call(served, "clitest.ping", "{}", "--multi", "--timeout", "0.5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['s1: {"topic":"","server_id":"s1"}']


def start_call(srv: Served, *args: str) -> subprocess.Popen[str]:
    """``busrpc call`` against *srv*, running in the background."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "busrpc", "call", *args),
            *("--url", NATS_URL, "--namespace", srv.namespace),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )


def finish(caller: subprocess.Popen[str]) -> tuple[str, str]:
    """The output of a background call, once it has ended (killed after RUN_TIMEOUT)."""
    try:
        return caller.communicate(timeout=RUN_TIMEOUT)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.communicate(timeout=RUN_TIMEOUT)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_one_signal_finishes_running_calls_then_exits_0(
    served: Served, sig: signal.Signals
) -> None:
    caller = start_call(served, "clitest.slow", '{"seconds": 1}')
    try:
        assert served.wait_line("slow started") == "slow started on s1"
        served.proc.send_signal(sig)
        assert served.wait_line("draining") == (
            "draining: finishing 1 call, up to 10 s; Ctrl-C again to stop now"
        )
    finally:
        out, err = finish(caller)
    assert caller.returncode == 0, err
    assert json.loads(out) == {"seconds": 1}
    assert served.wait_line("stopped") == "stopped server s1"
    assert served.proc.wait(timeout=RUN_TIMEOUT) == 0


def test_serve_second_signal_stops_at_once(tmp_path: Path) -> None:
    # A grace far longer than the test's hang guards: only the second signal ends the call.
    with open(tmp_path / "serve.stderr", "w+") as stderr:
        srv = Served.on_nats(stderr, f"t{secrets.token_hex(4)}", "s1", "--grace", "3600")
        try:
            srv.wait_line("serving ")
            caller = start_call(srv, "clitest.slow", '{"seconds": 3600}', "--timeout", "60m")
            try:
                srv.wait_line("slow started")
                srv.proc.send_signal(signal.SIGINT)  # graceful: would wait for the call...
                assert srv.wait_line("draining") == (
                    "draining: finishing 1 call, up to 3600 s; Ctrl-C again to stop now"
                )
                srv.proc.send_signal(signal.SIGINT)  # ...but a second signal stops now
            finally:
                out, err = finish(caller)
            assert srv.wait_line("stopping now").startswith("stopping now")
            assert srv.wait_line("stopped") == "stopped server s1"
            assert srv.proc.wait(timeout=RUN_TIMEOUT) == 0
        finally:
            srv.terminate()
    assert caller.returncode == 1
    assert out == ""
    assert "error: unavailable (503): server is shutting down" in err


def test_serve_grace_bounds_the_drain(tmp_path: Path) -> None:
    with open(tmp_path / "serve.stderr", "w+") as stderr:
        srv = Served.on_nats(stderr, f"t{secrets.token_hex(4)}", "s1", "--grace", "0")
        try:
            srv.wait_line("serving ")
            caller = start_call(srv, "clitest.slow", '{"seconds": 3600}', "--timeout", "60m")
            try:
                srv.wait_line("slow started")
                srv.proc.send_signal(signal.SIGTERM)
                assert srv.wait_line("draining") == (
                    "draining: finishing 1 call, up to 0 s; Ctrl-C again to stop now"
                )
            finally:
                out, err = finish(caller)
            assert srv.proc.wait(timeout=RUN_TIMEOUT) == 0
        finally:
            srv.terminate()
    assert caller.returncode == 1
    assert out == ""
    assert "error: unavailable (503): server is shutting down" in err


@pytest.mark.parametrize(
    "stop", [["--expect", "1"], ["--first"], ["--quiet", "200ms"]], ids=lambda s: s[0]
)
def test_call_multi_stops_before_its_timeout(served: Served, stop: list[str]) -> None:
    # Without the stop, the call would listen for an hour: the run's hang guard fails it.
    result = call(served, "clitest.ping", "{}", "--multi", "--timeout", "60m", *stop)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['s1: {"topic":"","server_id":"s1"}']


def test_call_multi_on_a_unary_method_is_refused(served: Served) -> None:
    result = call(served, "clitest.greet", '{"name": "ada"}', "--multi", "--timeout", "60m")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: clitest.greet is not a multi method")
    assert "its servers say so" in result.stderr  # refused before any server ran it


def test_call_on_an_unreachable_bus_prints_unavailable() -> None:
    result = busrpc_cli("call", "clitest.greet", "{}", "--url", "nats://ada:s3cret@127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr.startswith("error: unavailable (503): nats://ada:***@127.0.0.1:1: ")
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("svc_fixture:NeedsArgs", "error: class NeedsArgs needs arguments"),
        ("svc_fixture:make_with", "error: make_with needs arguments"),
        ("svc_fixture:Plain", "error: Plain is not a busrpc service"),
        ("svc_fixture:NOT_A_SERVICE", "error: 42 is neither a service class nor a factory"),
    ],
)
def test_serve_a_target_it_cannot_serve_exits_2_with_one_line(target: str, message: str) -> None:
    result = busrpc_cli("serve", target, "--url", NATS_URL)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1, result.stderr  # no traceback


def test_call_multi_nobody_serves_exits_1(served: Served) -> None:
    result = call(served, "clitest.nothing_here", "{}", "--multi")
    assert result.returncode == 1
    assert "error: unavailable (503): no server answered clitest.nothing_here" in result.stderr


def test_serve_without_a_url_starts_its_own_nats_server(tmp_path: Path) -> None:
    with open(tmp_path / "serve.stderr", "w+") as stderr:
        srv = Served(stderr)  # no --url, and no BUSRPC_URL in its environment
        try:
            started = srv.wait_line("started nats-server on ")
            ready = srv.wait_line("serving ")
        finally:
            code = srv.terminate()
    url = started.split()[3]
    assert url.startswith("nats://127.0.0.1:")
    assert ready.startswith(f"serving clitest on {url} as server ")
    assert code == 0


def test_serve_waits_for_its_broker_names_the_url_and_exits_1_if_interrupted() -> None:
    url = "nats://ada:s3cret@127.0.0.1:1"  # nothing listens on port 1
    proc = subprocess.Popen(
        [*(sys.executable, "-m", "busrpc", "serve"), "svc_fixture:FixtureService", "--url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
        cwd=CLI_DIR,
    )
    stderr = LineReader(proc.stderr)
    try:
        waiting = stderr.wait_line("waiting for the broker")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=RUN_TIMEOUT)
        last = stderr.wait_line("error:")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=RUN_TIMEOUT)
        stderr.close(RUN_TIMEOUT)
    assert waiting.startswith("waiting for the broker at nats://ada:***@127.0.0.1:1, retrying")
    assert all("s3cret" not in line for line in stderr.seen)
    assert code == 1
    assert last == "error: interrupted before serving"


async def test_serve_exits_1_when_its_broker_is_gone_for_good() -> None:
    async with contextlib.AsyncExitStack() as stack:
        broker = await stack.enter_async_context(EmbeddedNatsServer())
        url = f"{broker.url}?max_reconnect_attempts=1&reconnect_time_wait=0.1"
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "busrpc", "serve", "svc_fixture:FixtureService"),
            *("--url", url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env=_env(),
            cwd=CLI_DIR,
        )
        stack.push_async_callback(_reap, proc)
        assert proc.stdout is not None and proc.stderr is not None
        async with asyncio.timeout(READY_TIMEOUT):
            ready = (await proc.stdout.readline()).decode()
        assert ready.startswith("serving clitest on "), ready
        await broker.aclose()  # for good: serve's client gives up after one reconnect
        async with asyncio.timeout(READY_TIMEOUT):
            err = (await proc.stderr.read()).decode()
            code = await proc.wait()
    assert code == 1, err
    assert f"error: lost the bus at {broker.url}" in err.splitlines()[-1]


async def _reap(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


# -- ServeProcess ------------------------------------------------------------------------


async def test_serve_process_reports_a_child_that_cannot_start() -> None:
    proc = ServeProcess("svc_fixture:Nope", NATS_URL, env={"PYTHONPATH": str(CLI_DIR)})
    with pytest.raises(RuntimeError, match="exited with code 2 before serving") as info:
        await proc.__aenter__()
    assert "has no 'Nope'" in str(info.value)
    assert proc.returncode == 2


# -- demo --------------------------------------------------------------------------------


def _assert_demo_passed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    for pattern in PATTERNS:
        assert f"✓ {pattern}" in result.stdout
    assert "✗" not in result.stdout
    assert "not_found (404)" in result.stdout
    assert "deadline_exceeded" in result.stdout
    assert "stopped server demo-1 (graceful shutdown, exit 0)" in result.stdout
    assert "stopped server demo-2 (graceful shutdown, exit 0)" in result.stdout


def test_demo_with_no_arguments_runs_its_own_nats_server() -> None:
    result = busrpc_cli("demo", timeout=120)
    _assert_demo_passed(result)
    assert "started nats-server on nats://127.0.0.1:" in result.stdout
    assert "stopped nats-server" in result.stdout


def test_demo_on_a_given_nats_server() -> None:
    result = busrpc_cli("demo", "--url", NATS_URL, timeout=120)
    _assert_demo_passed(result)
    assert "started nats-server" not in result.stdout


def test_demo_on_the_memory_bus() -> None:
    result = busrpc_cli("demo", "--url", "memory://", timeout=120)
    _assert_demo_passed(result)
    assert "in this process" in result.stdout


# -- bench -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["memory://", NATS_URL])
def test_bench_prints_one_json_line_with_the_peers_keys(url: str) -> None:
    result = busrpc_cli(
        "bench", "--url", url, "--seconds", "1", "--json", "--concurrency", "4", timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert set(report) == BENCH_KEYS
    assert set(report["cpu_pct"]) == {"client", "servers", "machine"}
    assert report["url"] == url
    assert report["concurrency"] == 4
    assert report["calls"] > 0
    assert report["errors"] == 0


def test_bench_prints_a_table_without_json() -> None:
    result = busrpc_cli("bench", "--url", "memory://", "--seconds", "0.5", "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    assert "calls/s" in result.stdout
    assert "p99" in result.stdout
