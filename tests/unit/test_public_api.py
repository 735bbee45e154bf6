"""The public surface: what `import busrpc` gives, and what it costs."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types

import pytest

import busrpc
import busrpc.testing

BROKER_AND_CLI_LIBRARIES = {"nats", "redis", "aio_pika", "aiomqtt", "typer", "rich"}


def imported_top_level_modules(statement: str) -> set[str]:
    """Top-level modules a fresh interpreter has loaded after *statement*."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


def test_import_busrpc_pulls_in_no_broker() -> None:
    loaded = imported_top_level_modules("import busrpc")
    assert "busrpc" in loaded
    assert not loaded & BROKER_AND_CLI_LIBRARIES, sorted(loaded & BROKER_AND_CLI_LIBRARIES)


def test_import_busrpc_testing_pulls_in_no_broker_and_no_pytest() -> None:
    loaded = imported_top_level_modules("import busrpc.testing")
    unwanted = BROKER_AND_CLI_LIBRARIES | {"pytest", "_pytest", "pytest_asyncio"}
    assert "busrpc" in loaded
    assert not loaded & unwanted, sorted(loaded & unwanted)


def public_names(module: types.ModuleType) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    )


def test_all_lists_every_public_name() -> None:
    assert busrpc.__all__ == public_names(busrpc)


# The packages whose names are public API; pyright --verifytypes (CI) checks what their
# __all__ lists is fully typed, so a name missing from __all__ escapes that check.
PUBLIC_PACKAGES = ["busrpc.bus", "busrpc.rpc", "busrpc.service", "busrpc.testing"]


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_package_all_lists_every_public_name_once(name: str) -> None:
    package = importlib.import_module(name)
    assert len(set(package.__all__)) == len(package.__all__), "a name is listed twice"
    assert sorted(package.__all__) == public_names(package)


def test_every_public_name_has_a_docstring() -> None:
    for name in busrpc.__all__:
        obj = getattr(busrpc, name)
        assert (getattr(obj, "__doc__", None) or "").strip(), f"busrpc.{name} has no docstring"


def test_version() -> None:
    assert isinstance(busrpc.__version__, str) and busrpc.__version__
