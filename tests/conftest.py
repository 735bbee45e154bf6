"""Fixtures every suite shares. Bus fixtures live next to the suites that use them."""

from __future__ import annotations

import uuid

import pytest

pytest_plugins = ["busrpc.testing.pytest_plugin"]


@pytest.fixture
def ns() -> str:
    """A namespace (subject prefix) no other test uses, so tests sharing a broker with
    other tests, and other test runs, never reach each other's servers."""
    return f"t{uuid.uuid4().hex[:8]}"
