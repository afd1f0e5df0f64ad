"""Latency and throughput figures for one measured phase, computed the same way for every load generator."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100) of already sorted values; NaN when there are none."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Summary:
    """One phase: how many operations succeeded per second, and how long they took (milliseconds)."""

    label: str
    concurrency: int
    seconds: float
    operations: int  # every request / transaction answered
    ok: int  # approved charges (HTTP 201) / pgbench transactions that did not fail
    throughput: float  # ok per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    outcomes: dict[str, int] = field(default_factory=dict)
    target_rate: float | None = None  # open-loop phases: the requested rate
    cpu: dict[str, Any] = field(default_factory=dict)  # filled in by the caller
    cpu_wait: dict[str, Any] = field(default_factory=dict)  # likewise: the servers' time runnable without a CPU
    postgres_events: dict[str, int] = field(default_factory=dict)  # likewise: checkpoints, autovacuums
    disk: dict[str, float] = field(default_factory=dict)  # likewise: the disk's stalls under PostgreSQL (`bench.disk`)
    timeline: list[dict[str, float]] = field(default_factory=list)  # per second: where a tail came from
    unanswered: int = 0  # requests sent and never answered (wrk stops with some in flight): approved or not

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def timeline(finished_s: Sequence[float], latencies_s: Sequence[float]) -> list[dict[str, float]]:
    """Per whole second of the phase (by completion time, from the first completion): operations completed,
    their p99 and max latency in milliseconds."""
    if not finished_s:
        return []
    start = min(finished_s)
    seconds: dict[int, list[float]] = {}
    for finished, latency in zip(finished_s, latencies_s, strict=True):
        seconds.setdefault(int(finished - start), []).append(latency)
    result = []
    for second, values in sorted(seconds.items()):
        values.sort()
        p99, worst = 1000 * percentile(values, 99), 1000 * values[-1]
        result.append({"second": second, "ops": len(values), "p99_ms": round(p99, 2), "max_ms": round(worst, 2)})
    return result


def summarize(
    label: str,
    concurrency: int,
    latencies_s: Sequence[float],
    finished_s: Sequence[float],
    ok: int,
    seconds: float,
    outcomes: dict[str, int],
    throughput: float | None = None,
    target_rate: float | None = None,
) -> Summary:
    """`latencies_s[i]` is the latency of the operation that completed at `finished_s[i]` (any clock, seconds)."""
    ordered = sorted(latencies_s)
    ms = [v * 1000 for v in (percentile(ordered, 50), percentile(ordered, 95), percentile(ordered, 99))]
    return Summary(
        label=label,
        concurrency=concurrency,
        seconds=seconds,
        operations=len(ordered),
        ok=ok,
        throughput=throughput if throughput is not None else ok / seconds,
        p50_ms=ms[0],
        p95_ms=ms[1],
        p99_ms=ms[2],
        mean_ms=1000 * sum(ordered) / len(ordered) if ordered else math.nan,
        max_ms=1000 * ordered[-1] if ordered else math.nan,
        outcomes=dict(sorted(outcomes.items())),
        target_rate=target_rate,
        timeline=timeline(finished_s, latencies_s),
    )
