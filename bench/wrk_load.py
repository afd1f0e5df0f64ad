"""The closed-loop HTTP load generator: Debian's `wrk` (compiled C, LuaJIT) with `wrk_charges.lua`, which makes each
request charge the next pre-issued card of a batch.

wrk costs a fraction of the CPU per request that a Python client does, and on a 2-core machine every millisecond
the load generator burns is taken from the server it measures. It is a child process of the benchmark, so its
CPU is counted in the benchmark's reaped children (`bench.cpu.load_generator_cpu`) once it has exited.

wrk reports its latency percentiles (over every answer, whatever its status), and the script adds the requests
each thread made, the statuses it got and the answers per wall-clock second. When the time is up wrk stops with
up to one request per connection unanswered: the service may still approve those, so the benchmark's database
check allows that many approvals beyond the 201s counted (`Summary.unanswered`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from bench.environment import CHARGE_AMOUNT, CURRENCY
from bench.stats import Summary
from ghostpay.dev import die_with_parent

SCRIPT = Path(__file__).resolve().parent / "wrk_charges.lua"
_MARKER = "WRK_JSON "


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    return found


def arguments(url: str, token: str, batch: str, offset: int, cards: int, concurrency: int, seconds: float) -> list[str]:
    """wrk's arguments (after its path, which `run` looks up: building them needs no wrk installed)."""
    threads = max(1, min(concurrency, os.cpu_count() or 1))
    return [
        f"--threads={threads}",
        f"--connections={concurrency}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=30s",
        f"--script={SCRIPT}",
        f"{url}/charges",
        "--",
        token,
        batch,
        str(offset),
        str(cards),
        str(CHARGE_AMOUNT),
        CURRENCY,
        str(threads),
    ]


def run(
    url: str, token: str, batch: str, offset: int, cards: int, concurrency: int, seconds: float, label: str
) -> tuple[Summary, int]:
    """One closed-loop run; returns its summary and how many cards it took (the next run's offset moves by it)."""
    cmd = [wrk_binary(), *arguments(url, token, batch, offset, cards, concurrency, seconds)]
    completed = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60, preexec_fn=die_with_parent, check=False
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(_MARKER)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({completed.returncode}):\n{completed.stderr}\n{completed.stdout}")
    report = json.loads(lines[-1].removeprefix(_MARKER))
    taken = max(t["sent"] for t in report["threads"]) * len(report["threads"])
    return summary_of(report, label, concurrency), taken


def summary_of(report: dict[str, Any], label: str, concurrency: int) -> Summary:
    """A `Summary` from the script's JSON line (latencies in microseconds)."""
    outcomes: Counter[str] = Counter()
    per_second: Counter[int] = Counter()
    for thread in report["threads"]:
        outcomes.update(thread["statuses"])
        per_second.update({int(k): v for k, v in thread["per_second"].items()})
    outcomes.update({name: n for name, n in report["errors"].items() if n})
    seconds = report["duration_us"] / 1e6
    ok = outcomes["201"]
    latency = report["latency_us"]
    start = min(per_second, default=0)
    return Summary(
        label=label,
        concurrency=concurrency,
        seconds=seconds,
        operations=report["answered"],
        ok=ok,
        throughput=ok / seconds,
        p50_ms=latency["p50"] / 1000,
        p95_ms=latency["p95"] / 1000,
        p99_ms=latency["p99"] / 1000,
        mean_ms=latency["mean"] / 1000,
        max_ms=latency["max"] / 1000,
        outcomes=dict(sorted(outcomes.items())),
        timeline=[{"second": s - start, "ops": n} for s, n in sorted(per_second.items())],
        unanswered=sum(t["sent"] for t in report["threads"]) - report["answered"],
    )
