"""The figures of a `make load` run, from Locust's statistics: pure, so the arithmetic is tested on its own."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from locust.stats import RequestStats, StatsEntry

RATE_LIMITED = " (429)"  # suffix of the statistics entries of rate-limited requests
# What the clients counted and what the analytics service must agree with (it may lag by up to 5 s).
COMPARED = ("approved", "declined")


def _latency(entry: StatsEntry) -> dict[str, float]:
    return {f"p{q}_ms": float(entry.get_response_time_percentile(q / 100)) for q in (50, 95, 99)}


def endpoint(entry: StatsEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "method": entry.method,
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "requests_per_second": round(entry.total_rps, 1),
        **_latency(entry),
    }


def served(stats: RequestStats) -> StatsEntry:
    """All requests but the rate-limited ones, merged: the latency of the work the clients asked for."""
    merged = StatsEntry(stats, "served", "")
    for entry in stats.entries.values():
        if not entry.name.endswith(RATE_LIMITED):
            merged.extend(entry)
    return merged


def analytics_counts(summary: Mapping[str, Any]) -> dict[str, int]:
    return {"cards_issued": summary["cards_issued"], **{k: summary["charges"][k] for k in COMPARED}}


def build(
    stats: RequestStats,
    rate_limited: Mapping[str, int],
    clients_saw: Mapping[str, int],
    analytics: Mapping[str, int],
    setup: Mapping[str, Any],
    exceptions: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The report: headline figures first (latency percentiles over the requests not rate limited), then per
    endpoint, failures, and the clients/analytics comparison."""
    total, answered = stats.total, served(stats)
    clients_saw = {k: clients_saw.get(k, 0) for k in (*COMPARED, "cards_issued")}  # zeros included
    agree = all(clients_saw[k] == analytics.get(k) for k in clients_saw)
    return {
        **setup,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "requests_per_second": round(total.total_rps, 1),
        "served_requests_per_second": round(answered.total_rps, 1),
        **_latency(answered),
        "rate_limited": {"total": sum(rate_limited.values()), "by_kind": dict(rate_limited)},
        "endpoints": [endpoint(e) for e in sorted(stats.entries.values(), key=lambda e: (e.name, e.method))],
        "failure_samples": [
            {"name": e.name, "method": e.method, "error": str(e.error), "occurrences": e.occurrences}
            for e in stats.errors.values()
        ],
        "task_errors": [dict(e) for e in exceptions],  # a user's code that raised: the run proved nothing there
        "consistency": {"clients_saw": dict(clients_saw), "analytics": dict(analytics), "agree": agree},
        "ok": total.num_failures == 0 and not exceptions and agree,
    }


def render(report: Mapping[str, Any]) -> str:
    """A few lines for the terminal: the contract's figures (p95, throughput, 429s), then each endpoint."""
    limited: Counter[str] = Counter(report["rate_limited"]["by_kind"])
    consistency = report["consistency"]
    lines = [
        f"{report['requests']} requests in {report['duration_seconds']:.0f} s by {report['users']} users: "
        f"{report['requests_per_second']} req/s, of them served (not 429) {report['served_requests_per_second']} "
        f"req/s with p50 {report['p50_ms']:.0f} ms, p95 {report['p95_ms']:.0f} ms, p99 {report['p99_ms']:.0f} ms",
        f"429 rate limited: {report['rate_limited']['total']} "
        f"({', '.join(f'{kind} {n}' for kind, n in sorted(limited.items())) or 'none'})",
        f"unexpected answers: {report['failures']}; errors in users' tasks: {len(report['task_errors'])}",
        f"clients saw {consistency['clients_saw']}; analytics says {consistency['analytics']}: "
        + ("they agree" if consistency["agree"] else "THEY DISAGREE"),
        "",
        f"{'endpoint':<34}{'requests':>10}{'failures':>10}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}",
    ]
    for e in report["endpoints"]:
        name = f"{e['method']} {e['name']}"
        lines.append(
            f"{name:<34}{e['requests']:>10}{e['failures']:>10}{e['requests_per_second']:>8}"
            f"{e['p50_ms']:>8.0f}{e['p95_ms']:>8.0f}"
        )
    for f in report["failure_samples"]:
        lines.append(f"failure: {f['method']} {f['name']} ({f['occurrences']}): {f['error']}")
    for e in report["task_errors"]:
        lines.append(f"error in a user's task ({e['occurrences']}): {e['error']}")
    return "\n".join(lines)
