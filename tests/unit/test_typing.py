"""The typed client is really type-checked: mypy rejects wrong calls.

tests/typing/check_client.py pins the inferred types (`assert_type`) in the main mypy
run; this test shows the other half: a wrong call is a mypy error, not an `Any`.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs mypy in a subprocess

SERVICE = """
from __future__ import annotations

import msgspec

import busrpc


class Hello(msgspec.Struct):
    name: str


class Greeting(msgspec.Struct):
    text: str


@busrpc.service("greeter")
class Greeter:
    @busrpc.rpc
    async def say_hello(self, req: Hello) -> Greeting:
        return Greeting(text=req.name)

    @busrpc.rpc(multi=True)
    async def stats(self, req: Hello) -> Greeting:
        return Greeting(text=req.name)
"""

GOOD = """
import busrpc
from busrpc import MessageBus
from service import Greeter, Hello


async def calls(bus: MessageBus) -> str:
    greeter = busrpc.client(Greeter, bus)
    reply = await greeter.say_hello(Hello(name="x"), timeout=2)
    async for r in greeter.stats(Hello(name="y"), expect=1):
        if r.result is not None:
            return r.result.text
    return reply.text
"""

# Every line marked "# E" must be a mypy error, and no other line.
BAD = """
import busrpc
from busrpc import MessageBus
from service import Greeter, Hello


async def calls(bus: MessageBus) -> None:
    greeter = busrpc.client(Greeter, bus)
    await greeter.say_hello(42)  # E: an int is not a Hello
    text: int = (await greeter.say_hello(Hello(name="x"))).text  # E: text is a str
    await greeter.say_hello(Hello(name="x"), timeout="soon")  # E: timeout is a float
    await greeter.say_hello(Hello(name="x"), expect=2)  # E: unary calls take no expect=
    greeter.stats(Hello(name=1))  # E: name is a str
    await greeter.stats(Hello(name="x"))  # E: a multi call is iterated, not awaited
    await greeter.no_such_method(Hello(name="x"))  # E: not a method of Greeter
"""


def test_mypy_reports_wrong_calls_on_a_typed_client(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(SERVICE)
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file=",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--no-error-summary",
            "--hide-error-context",
            "service.py",
            "good.py",
            "bad.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    errors = [m.groups() for m in re.finditer(r"^(\w+)\.py:(\d+): error: (.*)$", output, re.M)]
    assert done.returncode == 1, output
    assert {file for file, _, _ in errors} == {"bad"}, output
    marked = {i for i, line in enumerate(BAD.splitlines(), 1) if "# E" in line}
    assert {int(line) for _, line, _ in errors} == marked, textwrap.indent(output, "  ")
    assert any('"int"' in text and '"Hello"' in text for _, _, text in errors), output
