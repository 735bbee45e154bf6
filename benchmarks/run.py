"""Put busrpc next to the raw broker clients of ../shared/peers in one run.

    python benchmarks/run.py [--seconds 5] [--repeat 2] [--out benchmarks/results.jsonl]
                             [--points nats-c64-100,...] [--table]

Each point runs `busrpc bench --json` and the peer harness (`peers.py --peer raw`) back to
back, alternating which goes first, so both see the same machine. The machine is noisy
(up to 25% between runs), so compare ratios measured in the same run, not absolute
numbers across runs. `--table` prints the markdown table for docs/performance.md from the
results file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(os.environ.get("BUSRPC_PEERS", ROOT.parent / "shared" / "peers" / "peers.py"))
NATS_URL = "nats://127.0.0.1:4222"

# (name, url, concurrency, payload, peer transport or None)
POINTS: list[tuple[str, str, int, int, str | None]] = [
    ("nats-c1-100", NATS_URL, 1, 100, "nats"),
    ("nats-c1-64k", NATS_URL, 1, 65536, "nats"),
    ("nats-c64-100", NATS_URL, 64, 100, "nats"),
    ("nats-c64-64k", NATS_URL, 64, 65536, "nats"),
    ("memory-c64-100", "memory://", 64, 100, None),
    ("memory-c1-100", "memory://", 1, 100, None),
]


def run_busrpc(url: str, concurrency: int, payload: int, seconds: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "busrpc",
        "bench",
        "--url",
        url,
        "--concurrency",
        str(concurrency),
        "--payload",
        str(payload),
        "--seconds",
        str(seconds),
        "--json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_peer(transport: str, concurrency: int, payload: int, seconds: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(PEERS),
        "--peer",
        "raw",
        "--transport",
        transport,
        "--concurrency",
        str(concurrency),
        "--payload",
        str(payload),
        "--seconds",
        str(seconds),
        "--uvloop",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(seconds: float, repeat: int, names: set[str] | None, out: Path) -> None:
    for run_no in range(repeat):
        for name, url, c, p, transport in POINTS:
            if names and name not in names:
                continue
            pair: list[dict[str, Any]] = []
            order = ["busrpc", "peer"] if run_no % 2 == 0 else ["peer", "busrpc"]
            for who in order:
                if who == "busrpc":
                    pair.append({"point": name, "run": run_no, **run_busrpc(url, c, p, seconds)})
                elif transport is not None:
                    pair.append(
                        {"point": name, "run": run_no, **run_peer(transport, c, p, seconds)}
                    )
            with out.open("a") as f:
                for row in pair:
                    print(json.dumps(row), flush=True)
                    f.write(json.dumps(row) + "\n")


def table(path: Path) -> str:
    rows: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows[r["point"]][r["peer"]].append(r)
    lines = [
        "| point | C | payload | busrpc calls/s | raw calls/s | ratio | busrpc p50 ms | raw p50 ms "
        "| p50 ratio | busrpc p99 ms | raw p99 ms | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, _, c, p, _ in POINTS:
        if name not in rows:
            continue
        ours, raw = rows[name]["busrpc"], rows[name].get("raw", [])
        size = "64 KiB" if p == 65536 else f"{p} B"

        errors = sum(r.get("errors", 0) for r in ours + raw)
        cells = [
            name,
            str(c),
            size,
            cell(ours, "calls_per_s"),
            cell(raw, "calls_per_s"),
            _ratio(ours, raw, "calls_per_s"),
            cell(ours, "p50_ms"),
            cell(raw, "p50_ms"),
            _ratio(ours, raw, "p50_ms"),
            cell(ours, "p99_ms"),
            cell(raw, "p99_ms"),
            str(errors),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cell(rs: list[dict[str, Any]], key: str) -> str:
    return " / ".join(str(r.get(key)) for r in rs) if rs else "n/a"


def _ratio(ours: list[dict[str, Any]], raw: list[dict[str, Any]], key: str) -> str:
    if not raw:
        return "n/a"
    pairs = zip(ours, raw, strict=False)
    return " / ".join(f"{a[key] / b[key]:.2f}" for a, b in pairs if a[key] and b[key])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--points", default="", help="comma-separated point names (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.jsonl")
    ap.add_argument("--table", action="store_true", help="print the table of --out and exit")
    a = ap.parse_args()
    if a.table:
        print(table(a.out))
        return
    names = {n for n in a.points.split(",") if n} or None
    measure(a.seconds, a.repeat, names, a.out)
    print(table(a.out))


if __name__ == "__main__":
    main()
