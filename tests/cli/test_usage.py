"""Usage errors: caught before any bus is touched, exit code 2 (in-process, no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import busrpc
from busrpc.cli._app import app

CLI_DIR = Path(__file__).parent
URL = "nats://127.0.0.1:4222"

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUSRPC_URL", raising=False)


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "serve", "call", "bench"):
        assert command in result.stdout


@pytest.mark.parametrize("body", ['{"name":', "{'name': 'ada'}", "nope", ""])
def test_call_with_invalid_json_exits_2(body: str) -> None:
    result = runner.invoke(app, ["call", "svc.method", body, "--url", URL])
    assert result.exit_code == 2
    assert "error: the request is not valid JSON" in result.stderr


def test_call_reads_the_request_from_stdin() -> None:
    result = runner.invoke(app, ["call", "svc.method", "-", "--url", URL], input="[1,")
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr


@pytest.mark.parametrize("timeout", ["soon", "-1s", "0", "2h"])
def test_call_with_a_bad_timeout_exits_2(timeout: str) -> None:
    result = runner.invoke(app, ["call", "svc.method", "{}", "--url", URL, "--timeout", timeout])
    assert result.exit_code == 2
    assert "invalid duration" in result.stderr


@pytest.mark.parametrize("target", ["nodot", "a.b.c", ".method", "svc.", "s p.m"])
def test_call_with_a_bad_method_name_exits_2(target: str) -> None:
    result = runner.invoke(app, ["call", target, "{}", "--url", URL])
    assert result.exit_code == 2
    assert "error:" in result.stderr


def test_call_without_a_url_exits_2() -> None:
    result = runner.invoke(app, ["call", "svc.method", "{}"])
    assert result.exit_code == 2
    assert "pass --url or set BUSRPC_URL" in result.stderr


def test_call_with_an_unknown_scheme_exits_2() -> None:
    result = runner.invoke(app, ["call", "svc.method", "{}", "--url", "carrier-pigeon://x"])
    assert result.exit_code == 2
    assert "unknown bus scheme" in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--expect", "2"], "--expect needs --multi"),
        (["--first"], "--first needs --multi"),
        (["--quiet", "1s"], "--quiet needs --multi"),
        (["--multi", "--server-id", "s1"], "--multi cannot be combined"),
        (["--multi", "--affinity"], "--multi cannot be combined"),
    ],
)
def test_call_with_conflicting_options_exits_2(extra: list[str], message: str) -> None:
    result = runner.invoke(app, ["call", "svc.method", "{}", "--url", URL, *extra])
    assert result.exit_code == 2
    assert message in result.stderr


def test_version_prints_the_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"busrpc {busrpc.__version__}\n"


@pytest.mark.parametrize(
    ("target", "extra", "message"),
    [
        ("clitest.greet", ["--multi"], "clitest.greet is not declared multi=True: drop --multi"),
        ("clitest.ping", [], "clitest.ping is declared multi=True: pass --multi"),
        ("clitest.region", [], "clitest.region is declared topics=True: pass --topic"),
        ("clitest.greet", ["--topic", "eu"], "is not declared topics=True: drop --topic"),
        ("clitest.greet", ["--affinity"], "is not declared affinity=True: drop --affinity"),
        ("clitest.nope", [], "clitest has no method 'nope'"),
        ("other.greet", [], "declares the service 'clitest', not 'other'"),
    ],
)
def test_call_checks_the_options_against_a_service_class(
    target: str, extra: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CLI_DIR)
    args = ["call", target, "{}", "--url", URL, "--service-class", "svc_fixture:FixtureService"]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 2
    assert message in result.stderr


def test_call_with_a_service_class_that_is_not_a_service_exits_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(CLI_DIR)
    args = ["call", "clitest.greet", "{}", "--url", URL, "--service-class", "svc_fixture:Plain"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "not a busrpc service" in result.stderr


def test_call_with_a_bad_topic_exits_2() -> None:
    result = runner.invoke(app, ["call", "svc.method", "{}", "--url", URL, "--topic", "a b"])
    assert result.exit_code == 2
    assert "invalid topic token" in result.stderr


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("svc_fixture:Nope", "has no 'Nope'"),
        ("no_such_module_xyz:Svc", "cannot import"),
        ("svc_fixture:Plain", "not a busrpc service"),
        ("svc_fixture:NeedsArgs", "class NeedsArgs needs arguments"),
        ("svc_fixture:make_with", "make_with needs arguments"),
        ("svc_fixture", "use module:Class"),
    ],
)
def test_serve_with_a_bad_target_exits_2(
    target: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CLI_DIR)
    result = runner.invoke(app, ["serve", target, "--url", "memory://"])
    assert result.exit_code == 2
    assert message in result.stderr


def test_serve_with_a_bad_topic_option_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CLI_DIR)
    result = runner.invoke(
        app, ["serve", "svc_fixture:FixtureService", "--url", "memory://", "--topic", "greet=eu"]
    )
    assert result.exit_code == 2
    assert "not declared topics=True" in result.stderr


def test_bench_rejects_zero_concurrency() -> None:
    result = runner.invoke(app, ["bench", "--url", "memory://", "--concurrency", "0"])
    assert result.exit_code == 2
