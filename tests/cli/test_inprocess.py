"""The demo and the bench on the memory bus, inside the test's event loop."""

from __future__ import annotations

import io

import pytest
from expected import BENCH_KEYS
from rich.console import Console

from busrpc.cli._bench import arun_bench
from busrpc.cli._demo import run_demo


async def test_demo_on_the_memory_bus_passes_every_step() -> None:
    buffer = io.StringIO()
    ok = await run_demo("memory://", Console(file=buffer, width=200))
    output = buffer.getvalue()
    assert ok, output
    for pattern in ("unary", "direct", "multi", "affinity", "topic", "error", "deadline"):
        assert f"✓ {pattern}" in output
    assert "✗" not in output
    assert "demo-1 won" in output
    assert "not_found (404)" in output
    assert "deadline_exceeded" in output


async def test_bench_on_the_memory_bus_reports_the_peers_keys() -> None:
    result = await arun_bench("memory://", concurrency=4, payload=64, seconds=0.3, warmup=0.1)
    assert set(result) == BENCH_KEYS
    assert set(result["cpu_pct"]) == {"client", "servers", "machine"}
    assert result["peer"] == "busrpc"
    assert result["transport"] == "memory"
    assert result["calls"] > 0
    assert result["errors"] == 0
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["cpu_pct"]["servers"] is None  # in-process servers count as the client


async def test_bench_with_a_tiny_payload_still_echoes() -> None:
    # Shorter than the "idx:seq:" tag: the data is cut to the payload size, as in peers.py.
    result = await arun_bench("memory://", concurrency=2, payload=2, seconds=0.2, warmup=0.0)
    assert result["calls"] > 0
    assert result["errors"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"concurrency": 0}, {"payload": -1}, {"seconds": 0}, {"warmup": -1}, {"servers": 0}],
)
async def test_bench_rejects_parameters_out_of_range(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        await arun_bench("memory://", **kwargs)  # type: ignore[arg-type]
