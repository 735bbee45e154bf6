"""Every example in examples/ runs, and its assertions hold, on every bus.

Each example is a module with ``async def main(bus)`` that asserts what it shows; here
it runs against a fresh in-process bus and against every other bus in ``TEST_BUSES``
(``BUSRPC_TEST_BUSES``; a missing broker fails these tests). The README's quick start runs
too, as a script.

The examples use fixed service names. On a shared broker each run moves every subject
under a private prefix (`PrefixedBus`), so concurrent test runs, or anything else serving
``greeter``, cannot answer another run's calls.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import inspect
import re
import secrets
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import busrpc
from busrpc import Message, MessageBus, Subscription
from busrpc.bus import DEFAULT_MAX_PENDING, BusStatistics, Overflow, SubscriptionStatistics
from busrpc.testing import TEST_BUSES, MemoryBus, open_test_bus

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))

_loaded: dict[Path, ModuleType] = {}


def load(path: Path) -> ModuleType:
    """Import an example by file (examples/ is not a package), once per session."""
    module = _loaded.get(path)
    if module is None:
        name = f"busrpc_example_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # msgspec resolves the Structs' annotations through it
        spec.loader.exec_module(module)
        _loaded[path] = module
    return module


class PrefixedBus:
    """A view of *bus* with every subject, reply subjects included, under *prefix*.

    Handlers and clients see the unprefixed subjects, so reply-subject deadlines and
    no-responders replies work as without it.
    """

    def __init__(self, bus: MessageBus, prefix: str) -> None:
        self._bus = bus
        self._prefix = prefix

    async def __aenter__(self) -> PrefixedBus:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass  # the underlying bus belongs to the caller

    async def publish(self, message: Message) -> None:
        p = self._prefix
        reply = p + message.reply if message.reply else None
        await self._bus.publish(Message(p + message.subject, message.data, message.headers, reply))

    def subscribe(
        self,
        subject: str,
        *,
        queue: str | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> Subscription:
        inner = self._bus.subscribe(
            self._prefix + subject, queue=queue, max_pending=max_pending, overflow=overflow
        )
        return PrefixedSubscription(inner, subject, self._prefix)

    def statistics(self) -> BusStatistics:
        return self._bus.statistics()

    async def aclose(self) -> None:
        pass


class PrefixedSubscription:
    def __init__(self, inner: Subscription, subject: str, prefix: str) -> None:
        self._inner = inner
        self._prefix = prefix
        self.subject = subject

    async def __aenter__(self) -> PrefixedSubscription:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._inner.aclose()

    async def receive(self) -> Message:
        message = await self._inner.receive()
        n = len(self._prefix)
        reply = message.reply
        if reply is not None and reply.startswith(self._prefix):
            reply = reply[n:]
        return Message(message.subject[n:], message.data, message.headers, reply)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.receive()
        except busrpc.ClosedResourceError:
            raise StopAsyncIteration from None

    def statistics(self) -> SubscriptionStatistics:
        return self._inner.statistics()

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_examples_are_found() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"quickstart", "multi", "affinity", "topics", "errors", "deadlines"} <= names
    assert {"interceptors", "direct", "namespaces", "lifecycle", "wire"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_has_main_taking_a_bus(path: Path) -> None:
    main = getattr(load(path), "main", None)
    assert main is not None and inspect.iscoroutinefunction(main)
    assert list(inspect.signature(main).parameters) == ["bus"]


@pytest.mark.parametrize("kind", TEST_BUSES)
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
async def test_example_runs(path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = load(path)
    if kind == "memory":
        async with MemoryBus(f"example-{path.stem}-{secrets.token_hex(4)}") as bus:  # fresh
            await module.main(bus)
            stats = bus.statistics()
    else:
        async with open_test_bus(kind) as bus:
            await module.main(PrefixedBus(bus, f"t{secrets.token_hex(4)}."))
            stats = bus.statistics()
    assert stats.published > 0  # the example really went over the bus
    assert capsys.readouterr().out  # and printed what it shows


@pytest.mark.slow  # spawns interpreters
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_as_a_script(path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


@pytest.mark.slow  # spawns an interpreter
def test_readme_quick_start_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- quick start -->\s*```python\n(.*?)```", readme, re.DOTALL)
    assert match is not None, "README.md lost its quick start block"
    script = tmp_path / "quick_start.py"
    script.write_text(match.group(1))
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "hello ada" in out.stdout


def test_readme_try_it_installs_what_every_example_imports() -> None:
    readme = (ROOT / "README.md").read_text()
    try_it = re.search(r"\*\*Try it\*\*.*?```sh\n(.*?)```", readme, re.DOTALL)
    assert try_it is not None, "README.md lost its Try it block"
    extras = re.search(r"pip install -e '\.\[([a-z,]+)\]'", try_it.group(1))
    assert extras is not None, try_it.group(1)
    installed = _distributions(extras.group(1).split(","))
    by_module = importlib.metadata.packages_distributions()
    for path in EXAMPLES:
        for module in _imported_top_level_modules(path):
            if module in sys.stdlib_module_names or module == "busrpc":
                continue
            dists = {canonicalize_name(d) for d in by_module.get(module, [module])}
            assert dists & installed, f"{path.name} imports {module}: not in {extras.group(0)}"


def _distributions(extras: list[str]) -> set[str]:
    """What installing busrpc with *extras* installs directly (extras resolved)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names: set[str] = set()
    todo = [Requirement(r) for r in project["dependencies"]]
    todo += [Requirement(f"busrpc[{','.join(extras)}]")]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        if canonicalize_name(req.name) != "busrpc":
            names.add(canonicalize_name(req.name))
            continue
        for extra in req.extras - seen:
            seen.add(extra)
            todo += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return names


def _imported_top_level_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    return modules
