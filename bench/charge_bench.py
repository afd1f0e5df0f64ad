"""Benchmark of the charge path: `POST /charges` on `ghostpay serve charges` against pgbench running the same SQL.

    .venv/bin/python -m bench.charge_bench [--concurrency 16] [--seconds 15] [--sweep 1,4,16,64] [--out FILE]

One run builds its own world (see `bench.environment`: embedded PostgreSQL and Redis under /tmp, a merchant
with a real JWT, pre-issued cards, the charges service as a subprocess with auth and rate limiting on), then:

1. warms the service up, and at each concurrency level (`--concurrency`, plus any `--sweep` levels) measures
   - the service: closed-loop HTTP clients, each charging a fresh card as soon as its previous charge is answered;
   - pgbench: the same statement (`ghostpay_charge(...)`), same concurrency, same duration, fresh cards too;
2. measures latency at half the maximum throughput: the service driven open-loop at half its best charges/s,
   and pgbench at half its tps (`--rate`), to show p99 away from saturation;
3. counts the approved charges in the database and compares them with what the clients were told.

It prints a table (charges/s, p50/p95/p99, the ratio service/pgbench, CPU per charge by component) and writes
every figure as JSON (`--out`, default bench/last-charge-bench.json): the headline figures at `--concurrency` at
the top level (`service_charges_per_second`, `service_p99_ms`, `pgbench_tps`, `ratio_service_to_pgbench`,
`service_p99_ms_at_half_max_throughput`, ...), each phase in full under `levels` and `half_load` (CPU by
component, PostgreSQL background events, a per-second timeline). Every process it started is stopped on exit,
including on Ctrl-C, SIGTERM and errors.

The load generator shares the machine with what it measures, so its CPU per request is reported too, as is the
CPU that processes outside the benchmark took meanwhile (`other`): on a shared machine the figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg

from bench import http_load
from bench.cpu import CpuMeter, load_generator_cpu, process_cpu, process_tree_cpu
from bench.environment import Environment, environment
from bench.pgbench import CHARGE_ID_PREFIX, PgbenchCursor, run_pgbench
from bench.stats import Summary
from ghostpay.core.settings import Settings

DEFAULT_OUT = Path(__file__).resolve().parent / "last-charge-bench.json"
_SIDES = ("service", "pgbench")
_SPARE_CONNECTIONS = 5  # superuser-reserved slots and our own CHECKPOINT connection
_BUSY = 0.2  # cores taken by processes outside the benchmark above which its figures are suspect


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.charge_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16, help="in-flight charges (default 16)")
    parser.add_argument("--seconds", type=int, default=15, help="length of each measured phase (default 15)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of unmeasured load first (default 3)")
    parser.add_argument(
        "--cards",
        type=int,
        default=200_000,
        help="cards pre-issued for the service, and as many for pgbench (default 200000); "
        "charges beyond them reuse cards and are declined",
    )
    parser.add_argument("--sweep", type=_levels, default=[], help="more concurrency levels, e.g. 1,4,16,64")
    parser.add_argument(
        "--client", choices=sorted(http_load.CLIENTS), default="aiohttp", help="HTTP client library (default aiohttp)"
    )
    parser.add_argument("--no-half-load", action="store_true", help="skip the p99-at-half-throughput phase")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.seconds < 1 or args.cards < 1:
        parser.error("--concurrency, --seconds and --cards must be positive")
    return args


def _levels(text: str) -> list[int]:
    levels = [int(part) for part in text.split(",") if part.strip()]
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return levels


@dataclass
class Bench:
    """The measurements, against one environment; every phase is measured the same way (`_measured`)."""

    env: Environment
    target: http_load.Target
    seconds: int
    meter: CpuMeter = field(init=False)
    cards: http_load.CardSource = field(init=False)
    pgbench_cursor: PgbenchCursor = field(default_factory=PgbenchCursor)
    ok: Counter[str] = field(default_factory=Counter)  # by side: 201s answered, pgbench transactions done

    def __post_init__(self) -> None:
        env = self.env
        self.meter = CpuMeter(
            {
                "service": lambda: process_cpu(env.service.pid),
                "postgres": lambda: process_tree_cpu(env.postgres_pid),
                "redis": lambda: process_cpu(env.redis_pid),
                "loadgen": load_generator_cpu,
            }
        )
        self.cards = http_load.CardSource(env.cards_per_batch)

    def warm_up(self, concurrency: int, seconds: float) -> None:
        """Unmeasured load (connections opened, statements prepared); fails unless charges are approved."""
        summary = self._counted("service", http_load.closed_loop(self.target, self.cards, concurrency, seconds))
        if summary.ok == 0:
            log = (self.env.root / "service.log").read_text()[-2000:]
            raise RuntimeError(f"no charge approved during the warm-up: {summary.outcomes}\n{log}")

    def service(self, concurrency: int) -> Summary:
        return self._measured(
            "service", lambda: http_load.closed_loop(self.target, self.cards, concurrency, self.seconds)
        )

    def service_at_rate(self, rate: float, connections: int) -> Summary:
        return self._measured(
            "service", lambda: http_load.open_loop(self.target, self.cards, rate, self.seconds, connections)
        )

    def pgbench(self, concurrency: int, rate: float | None = None) -> Summary:
        return self._measured(
            "pgbench", lambda: run_pgbench(self.env, self.pgbench_cursor, concurrency, self.seconds, rate)
        )

    def _measured(self, side: str, phase: Callable[[], Summary]) -> Summary:
        """Run a phase from a clean slate (a checkpoint first), with its CPU use per approved charge."""
        _sql(self.env, "CHECKPOINT")
        events = _postgres_events(self.env)
        before, started = self.meter.snapshot(), time.perf_counter()
        summary = self._counted(side, phase())
        cpu = self.meter.breakdown(before, time.perf_counter() - started, summary.ok)
        events = {k: v - events[k] for k, v in _postgres_events(self.env).items()}
        return replace(summary, cpu=cpu, postgres_events=events)

    def _counted(self, side: str, summary: Summary) -> Summary:
        """Count what a phase says it got approved (the database must agree); the service must still be up."""
        self.env.check_service()
        self.ok[side] += summary.ok
        return summary


def _sql(env: Environment, query: str) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(env.database_url)
        try:
            return await conn.fetch(query)
        finally:
            await conn.close()

    return asyncio.run(fetch())


def _postgres_events(env: Environment) -> dict[str, int]:
    """Counters of what PostgreSQL does in the background that can stall a phase and make its tail."""
    row = _sql(
        env,
        """SELECT (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter) AS checkpoints,
                  sum(autovacuum_count)::int AS autovacuums, sum(autoanalyze_count)::int AS autoanalyzes
           FROM pg_stat_user_tables""",
    )[0]
    return dict(row)


def _check_connections(env: Environment, concurrency: int) -> None:
    """pgbench opens one connection per client while the service keeps its pool (the product's default size)."""
    limit = int(_sql(env, "SHOW max_connections")[0][0])
    needed = concurrency + Settings.model_fields["db_pool_max"].default + _SPARE_CONNECTIONS
    if needed > limit:
        raise SystemExit(f"concurrency {concurrency} needs {needed} PostgreSQL connections; the server allows {limit}")


def database_check(bench: Bench) -> dict[str, Any]:
    """Approved and declined charges in the database, by who made them, against what the clients counted."""
    rows = _sql(
        bench.env,
        f"""SELECT CASE WHEN charge_id LIKE '{CHARGE_ID_PREFIX}%' THEN 'pgbench' ELSE 'service' END AS source,
                   status, count(*) AS n
            FROM charges GROUP BY 1, 2 ORDER BY 1, 2""",
    )
    counts: dict[str, dict[str, int]] = {"service": {}, "pgbench": {}}
    for row in rows:
        counts[row["source"]][row["status"]] = row["n"]
    service_ok = counts["service"].get("approved", 0) == bench.ok["service"]
    return {
        "service": {**counts["service"], "answered_201": bench.ok["service"], "consistent": service_ok},
        "pgbench": {**counts["pgbench"], "transactions_ok": bench.ok["pgbench"]},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    levels = sorted({args.concurrency, *args.sweep})
    started = time.monotonic()
    with environment(args.cards) as env:
        print(f"environment ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        _check_connections(env, max(levels))
        bench = Bench(env, http_load.Target(env.base_url, env.token, args.client), args.seconds)
        print(f"warming up for {args.warmup:g} s", file=sys.stderr)
        bench.warm_up(args.concurrency, args.warmup)
        comparisons = []
        for level in levels:
            print(f"concurrency {level}: service, then pgbench, {args.seconds} s each", file=sys.stderr)
            service, pgbench = bench.service(level), bench.pgbench(level)
            comparisons.append({"concurrency": level, "service": service, "pgbench": pgbench})
        half_load = None if args.no_half_load else _half_load(bench, comparisons)
        check = database_check(bench)
    return _report(args, comparisons, half_load, check)


def _half_load(bench: Bench, comparisons: list[dict[str, Any]]) -> dict[str, Summary]:
    """Each side at half its best throughput (pgbench at the concurrency where the service was best)."""
    best = max(comparisons, key=lambda c: c["service"].throughput)
    service_rate, pgbench_rate = best["service"].throughput / 2, best["pgbench"].throughput / 2
    print(f"half load: service at {service_rate:.0f}/s, pgbench at {pgbench_rate:.0f}/s", file=sys.stderr)
    return {
        "service": bench.service_at_rate(service_rate, connections=max(64, 4 * best["concurrency"])),
        "pgbench": bench.pgbench(best["concurrency"], rate=pgbench_rate),
    }


def _report(
    args: argparse.Namespace,
    comparisons: list[dict[str, Any]],
    half_load: dict[str, Summary] | None,
    check: dict[str, Any],
) -> dict[str, Any]:
    rows = [
        {
            "concurrency": c["concurrency"],
            "service": c["service"].as_dict(),
            "pgbench": c["pgbench"].as_dict(),
            "ratio": round(c["service"].throughput / c["pgbench"].throughput, 4),
        }
        for c in comparisons
    ]
    headline = next(r for r in rows if r["concurrency"] == args.concurrency)
    half = {side: summary.as_dict() for side, summary in half_load.items()} if half_load else None
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "concurrency": args.concurrency,
        "service_charges_per_second": headline["service"]["throughput"],
        "service_p50_ms": headline["service"]["p50_ms"],
        "service_p95_ms": headline["service"]["p95_ms"],
        "service_p99_ms": headline["service"]["p99_ms"],
        "pgbench_tps": headline["pgbench"]["throughput"],
        "pgbench_p50_ms": headline["pgbench"]["p50_ms"],
        "pgbench_p95_ms": headline["pgbench"]["p95_ms"],
        "pgbench_p99_ms": headline["pgbench"]["p99_ms"],
        "ratio_service_to_pgbench": headline["ratio"],
        "service_p99_ms_at_half_max_throughput": half["service"]["p99_ms"] if half else None,
        "pgbench_p99_ms_at_half_max_throughput": half["pgbench"]["p99_ms"] if half else None,
        "levels": rows,
        "half_load": half,
        "database_check": check,
    }


def _row(name: str, s: dict[str, Any]) -> str:
    return (
        f"{name:<34}{s['throughput']:>10.1f}{s['p50_ms']:>9.2f}{s['p95_ms']:>9.2f}{s['p99_ms']:>9.2f}"
        f"{s['ok']:>9}{s['operations'] - s['ok']:>7}"
    )


def _cpu_table(phases: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """CPU milliseconds per approved charge by component, and the cores `other` processes took meanwhile."""
    names = list(phases[0][1]["cpu"])
    lines = [f"{'CPU ms per op':<34}" + "".join(f"{n[:9]:>10}" for n in names)]
    for label, summary in phases:
        lines.append(f"{label:<34}" + "".join(f"{summary['cpu'][n]['cpu_ms_per_op']:>10.3f}" for n in names))
    busy = [(label, s["cpu"]["other"]["cores"]) for label, s in phases if s["cpu"]["other"]["cores"] > _BUSY]
    lines += [f"WARNING: other processes used {cores:.2f} cores during '{label}'" for label, cores in busy]
    return lines


def print_report(report: dict[str, Any]) -> None:
    machine = report["machine"]
    print(f"\nGhostPay charge path, {machine['cpus']} CPUs, {report['settings']['seconds']} s per phase")
    print(f"{'':<34}{'ops/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'ok':>9}{'not ok':>7}")
    for level in report["levels"]:
        c = level["concurrency"]
        print(_row(f"service POST /charges   c={c}", level["service"]))
        print(_row(f"pgbench ghostpay_charge c={c}", level["pgbench"]))
        print(f"{'ratio service/pgbench':<34}{level['ratio']:>10.3f}")
    half = report["half_load"]
    if half:
        for side in _SIDES:
            print(_row(f"{side} at {half[side]['target_rate']:.0f}/s (half max)", half[side]))
    phases = [(f"{side} c={level['concurrency']}", level[side]) for level in report["levels"] for side in _SIDES]
    phases += [(f"{side} at half max", half[side]) for side in _SIDES] if half else []
    print("", *_cpu_table(phases), sep="\n")
    check = report["database_check"]
    print(f"\ndatabase: service charges {check['service']}, pgbench charges {check['pgbench']}")
    if not check["service"]["consistent"]:
        print("WARNING: the service's approved charges in the database differ from the 201s it answered")
    if any(check[side].get("declined") for side in _SIDES):
        print("WARNING: some charges were declined: the pre-issued cards ran out; raise --cards")


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        report = run(args)
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
