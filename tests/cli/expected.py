"""What the CLI tests expect, shared by the in-process and the process tests."""

from __future__ import annotations

# The keys of ../shared/peers/peers.py results, plus the bus URL busrpc bench adds.
BENCH_KEYS = {
    "peer",
    "transport",
    "concurrency",
    "payload",
    "servers",
    "calls",
    "errors",
    "seconds",
    "calls_per_s",
    "p50_ms",
    "p99_ms",
    "cpu_pct",
    "uvloop",
    "url",
}
