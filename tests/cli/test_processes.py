"""The ``busrpc`` command as users run it: child processes on a real NATS server."""

from __future__ import annotations

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
    assert 'error: not_found (HTTP 404): no thing 7 {"key": "7"}' in result.stderr


def test_call_a_request_of_the_wrong_shape_exits_1(served: Served) -> None:
    result = call(served, "clitest.greet", '{"nom": "ada"}')
    assert result.returncode == 1
    assert "error: malformed_request (HTTP 400)" in result.stderr


def test_call_past_its_timeout_exits_1_with_deadline_exceeded(served: Served) -> None:
    result = call(served, "clitest.slow", '{"seconds": 5}', "--timeout", "300ms")
    assert result.returncode == 1
    assert "error: deadline_exceeded (HTTP 503)" in result.stderr


def test_call_nobody_serves_exits_1_unavailable(served: Served) -> None:
    result = call(served, "nobody.nothing_here", "{}")
    assert result.returncode == 1
    assert "error: unavailable (HTTP 503): no responders" in result.stderr


def test_issue_6_call_to_a_missing_method_of_a_live_service_is_unimplemented(
    served: Served,
) -> None:
    result = call(served, "clitest.nothing_here", "{}")
    assert result.returncode == 1
    assert "error: unimplemented (HTTP 501)" in result.stderr
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


def test_serve_sigterm_finishes_running_calls_then_exits_0(served: Served) -> None:
    caller = subprocess.Popen(
        [
            *(sys.executable, "-m", "busrpc", "call", "clitest.slow", '{"seconds": 1}'),
            *("--url", NATS_URL, "--namespace", served.namespace),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    try:
        assert served.wait_line("slow started") == "slow started on s1"
        served.proc.send_signal(signal.SIGTERM)
        out, err = caller.communicate(timeout=RUN_TIMEOUT)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.communicate(timeout=RUN_TIMEOUT)
    assert caller.returncode == 0, err
    assert json.loads(out) == {"seconds": 1}
    assert served.wait_line("stopped") == "stopped server s1"
    assert served.proc.wait(timeout=RUN_TIMEOUT) == 0


def test_serve_second_signal_stops_at_once(served: Served) -> None:
    caller = subprocess.Popen(
        [
            *(sys.executable, "-m", "busrpc", "call", "clitest.slow", '{"seconds": 60}'),
            *("--url", NATS_URL, "--namespace", served.namespace, "--timeout", "90s"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    try:
        served.wait_line("slow started")
        served.proc.send_signal(signal.SIGINT)  # graceful: would wait for the call...
        served.proc.send_signal(signal.SIGINT)  # ...but a second signal stops now
        out, err = caller.communicate(timeout=RUN_TIMEOUT)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.communicate(timeout=RUN_TIMEOUT)
    assert caller.returncode == 1
    assert out == ""
    assert "error: unavailable (HTTP 503): server is shutting down" in err
    assert served.wait_line("stopped") == "stopped server s1"
    assert served.proc.wait(timeout=RUN_TIMEOUT) == 0


def test_call_multi_nobody_serves_exits_1(served: Served) -> None:
    result = call(served, "clitest.nothing_here", "{}", "--multi")
    assert result.returncode == 1
    assert "error: no server answered" in result.stderr


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


def test_serve_interrupted_while_connecting_exits_1() -> None:
    proc = subprocess.Popen(
        [*(sys.executable, "-m", "busrpc", "serve"), "svc_fixture:FixtureService", "--url", DEAD],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=_env(),
        cwd=CLI_DIR,
    )
    stderr = LineReader(proc.stderr)
    try:
        # nats-py retries a refused connection for minutes; the first refusal is logged.
        stderr.wait_line("connection error", contains=True)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=RUN_TIMEOUT)
        last = stderr.wait_line("error:")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=RUN_TIMEOUT)
        stderr.close(RUN_TIMEOUT)
    assert code == 1
    assert last == "error: interrupted before serving"


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
    assert "not_found (HTTP 404)" in result.stdout
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
