"""Benchmark of the charge path: `POST /charges` on `ghostpay serve charges` against its floor and against pgbench.

    .venv/bin/python -m bench.charge_bench [--concurrency 16] [--seconds 10] [--sweep 1,4,16,64] [--profile]

One run builds its own world (see `bench.environment`: embedded PostgreSQL and Redis under /tmp, a merchant
with a real JWT, pre-issued cards, the charges service as a subprocess with auth and rate limiting on, and the
floor app `bench.floor_app`), then:

1. warms both servers up, and at each concurrency level (`--concurrency`, plus any `--sweep` levels) measures
   - the service: closed-loop HTTP clients (wrk, `bench.wrk_load`), each connection charging a fresh card as
     soon as its previous charge is answered;
   - the floor: the same load on a minimal app on the same server stack doing per request exactly the two round
     trips a charge must make (the same Redis script, the same SQL function) and nothing else;
   - the bare route: the floor's route, body and response models with no I/O at all, on the same server stack
     (what the framework and the server cost; the floor's excess over it is its two I/O clients);
   - pgbench: the same statement (`ghostpay_charge(...)`), same concurrency, same duration, fresh cards too;
2. measures latency at half the maximum throughput: the service driven open-loop at half its best charges/s,
   the floor and the bare route at that same rate by the same generator (what the generator and the server
   stack alone take of the latency there), and pgbench at half its tps (`--rate`), to show p99 away from
   saturation;
3. with `--profile`, records the service under the same load with py-spy (unmeasured) and prints the ten
   costliest frames (`bench.profile`);
4. counts the approved charges in the database and compares them with what the clients were told.

It prints a table (charges/s, p50/p95/p99, the ratios service/floor and service/pgbench, CPU per charge by
component) and writes every figure as JSON (`--out`, default bench/last-charge-bench.json) with a PNG beside it
(`bench.plot`: latency percentiles by phase, throughput over time): the headline figures at `--concurrency` at
the top level (`service_charges_per_second`, `service_p99_ms`, `service_cpu_ms_per_charge`,
`floor_charges_per_second`, `ratio_service_to_floor`, `pgbench_tps`, `ratio_service_to_pgbench`,
`service_p99_ms_at_half_max_throughput`, `floor_p99_ms_at_the_same_rate`, ...), each phase in full under
`levels` and `half_load` (CPU by component, PostgreSQL background events, the disk's stalls under PostgreSQL
(`bench.disk`), a per-second timeline). Every
process it started is stopped on exit, including on Ctrl-C, SIGTERM and errors.

The load generator shares the machine with what it measures, so its CPU per request is reported too, as are the
CPU that processes outside the benchmark took meanwhile (`other`) and what the hypervisor gave the machine's
neighbours (`steal`): on a shared machine throughput and latency are noisy, and CPU milliseconds per charge is the
steadier figure.
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
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg

from bench import http_load, plot, profile, wrk_load
from bench.cpu import (
    CpuMeter,
    load_generator_cpu,
    process_cpu,
    process_tree_cpu,
    process_tree_waited,
    process_waited,
)
from bench.disk import DiskWatch, device_of
from bench.environment import BARE_BATCH, FLOOR_BATCH, SERVICE_BATCH, Environment, environment
from bench.floor_app import FLOOR_CHARGE_PREFIX
from bench.pgbench import CHARGE_ID_PREFIX, PgbenchCursor, run_pgbench
from bench.stats import Summary
from ghostpay.core.settings import Settings

DEFAULT_OUT = Path(__file__).resolve().parent / "last-charge-bench.json"
_SIDES = ("service", "floor", "bare", "pgbench")
_SERVERS = ("service", "floor", "bare")  # the sides served over HTTP
_CHARGING = ("service", "floor")  # the servers whose charges are in the database
_WRITTEN_TABLES = ("cards", "charges", "outbox", "idempotency_keys")  # what `ghostpay_charge` writes
_SPARE_CONNECTIONS = 5  # superuser-reserved slots and our own CHECKPOINT connection
_BUSY = 0.2  # cores taken by processes outside the benchmark (or by the hypervisor) above which figures are suspect
_CLIENTS = ["wrk", *sorted(http_load.CLIENTS)]
_SHARERS = {"other": "other processes used {:.2f} cores", "steal": "the hypervisor took {:.2f} cores away"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.charge_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16, help="in-flight charges (default 16)")
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured phase (default 10)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of unmeasured load first (default 3)")
    parser.add_argument(
        "--cards",
        type=int,
        default=300_000,  # pgbench used 222,000 in one run on a quiet machine (warm-up, c=16 and half load)
        help="cards pre-issued for the service, as many for the floor and for pgbench (default 300000); "
        "charges beyond them reuse cards and are declined",
    )
    parser.add_argument(
        "--db-pool",
        type=int,
        default=None,
        metavar="N",
        help="the service's and the floor's PostgreSQL pool size (default: the product's, "
        f"{Settings.model_fields['db_pool_max'].default})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/tmp"),
        metavar="DIR",
        help="where the embedded PostgreSQL and Redis keep their data (default /tmp); on a tmpfs such as /dev/shm "
        "commits wait for no disk, which shows what the disk's stalls add to the tail",
    )
    parser.add_argument("--sweep", type=_levels, default=[], help="more concurrency levels, e.g. 1,4,16,64")
    parser.add_argument(
        "--client",
        choices=_CLIENTS,
        default="wrk",
        help="HTTP load generator (default wrk for the closed loops, httptools for the open loop, which wrk cannot do)",
    )
    parser.add_argument("--no-half-load", action="store_true", help="skip the p99-at-half-throughput phase")
    parser.add_argument(
        "--profile",
        nargs="?",
        type=int,
        const=10,
        default=None,
        metavar="SECONDS",
        help="after the measured phases, profile the service under load with py-spy for SECONDS (default 10)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.seconds < 1 or args.cards < 1 or (args.db_pool is not None and args.db_pool < 1):
        parser.error("--concurrency, --seconds, --cards and --db-pool must be positive")
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
    client: str
    seconds: int
    warmup: float  # seconds of unmeasured load before the closed-loop phases, and again before the open-loop ones
    meter: CpuMeter = field(init=False)
    waits: CpuMeter = field(init=False)  # the servers' seconds waiting for a CPU
    disk: Path | None = field(init=False)  # the disk under PostgreSQL's data directory (`bench.disk.device_of`)
    targets: dict[str, http_load.Target] = field(init=False)
    cards: dict[str, http_load.CardSource] = field(init=False)
    pgbench_cursor: PgbenchCursor = field(default_factory=PgbenchCursor)
    ok: Counter[str] = field(default_factory=Counter)  # by side: 201s answered, pgbench transactions done
    unanswered: Counter[str] = field(default_factory=Counter)  # by side: requests left in flight at a phase's end

    def __post_init__(self) -> None:
        env = self.env
        self.meter = CpuMeter(
            {
                "service": lambda: process_cpu(env.service.pid),
                "floor": lambda: process_cpu(env.floor.pid),
                "bare": lambda: process_cpu(env.bare.pid),
                "postgres": lambda: process_tree_cpu(env.postgres_pid),
                "redis": lambda: process_cpu(env.redis_pid),
                "loadgen": load_generator_cpu,
            }
        )
        self.waits = CpuMeter(
            {
                "service": lambda: process_waited(env.service.pid),
                "floor": lambda: process_waited(env.floor.pid),
                "bare": lambda: process_waited(env.bare.pid),
                "postgres": lambda: process_tree_waited(env.postgres_pid),
                "redis": lambda: process_waited(env.redis_pid),
            },
            whole_machine=False,
        )
        self.disk = device_of(env.root / "pg")
        python_client = self.client if self.client in http_load.CLIENTS else "httptools"
        self.targets = {
            "service": http_load.Target(env.base_url, env.token, python_client),
            "floor": http_load.Target(env.floor_url, env.token, python_client),
            "bare": http_load.Target(env.bare_url, env.token, python_client),
        }
        self.cards = {
            "service": http_load.CardSource(env.cards_per_batch, SERVICE_BATCH),
            "floor": http_load.CardSource(env.cards_per_batch, FLOOR_BATCH),
            "bare": http_load.CardSource(env.cards_per_batch, BARE_BATCH),
        }

    def closed_loop(self, side: str, concurrency: int, seconds: float) -> Summary:
        """`concurrency` connections charging `side` (service or floor) flat out for `seconds`."""
        target, cards = self.targets[side], self.cards[side]
        if self.client != "wrk":
            summary = http_load.closed_loop(target, cards, concurrency, seconds)
            return self._counted(side, replace(summary, label=side))
        summary, taken = wrk_load.run(
            target.base_url, target.token, cards.batch, cards.taken, cards.cards, concurrency, seconds, side
        )
        cards.taken += taken
        return self._counted(side, summary)

    def warm_up(self, concurrency: int) -> None:
        """Unmeasured load (connections opened, statements prepared); fails unless charges are approved."""
        for side in _SERVERS:
            summary = self.closed_loop(side, concurrency, self.warmup)
            if summary.ok == 0:
                log = (self.env.root / f"{side}.log").read_text()[-2000:]
                raise RuntimeError(f"no charge approved by the {side} during the warm-up: {summary.outcomes}\n{log}")

    def server(self, side: str, concurrency: int) -> Summary:
        return self._measured(lambda: self.closed_loop(side, concurrency, self.seconds))

    def open_loop(self, side: str, rate: float, connections: int, seconds: float) -> Summary:
        """`side` (service, floor or bare) charged open-loop at `rate` per second for `seconds`."""
        summary = http_load.open_loop(self.targets[side], self.cards[side], rate, seconds, connections)
        return self._counted(side, replace(summary, label=side))

    def at_rate(self, side: str, rate: float, connections: int) -> Summary:
        return self._measured(lambda: self.open_loop(side, rate, connections, self.seconds))

    def pgbench(self, concurrency: int, rate: float | None = None) -> Summary:
        return self._measured(
            lambda: self._counted(
                "pgbench", run_pgbench(self.env, self.pgbench_cursor, concurrency, self.seconds, rate)
            )
        )

    def _measured(self, phase: Callable[[], Summary]) -> Summary:
        """Run a phase from a clean slate, with its CPU use per approved charge. The phases before it left dead
        rows (every charge updates its card) that would bring the autovacuum and autoanalyze in during this one,
        for seconds of the two CPUs (it landed in the service's half-load phase in two runs of two): they are
        vacuumed now, then a checkpoint writes out what is dirty."""
        _sql(self.env, f"VACUUM (ANALYZE) {', '.join(_WRITTEN_TABLES)}")
        _sql(self.env, "CHECKPOINT")
        events = _postgres_events(self.env)
        before, waited_before, started = self.meter.snapshot(), self.waits.snapshot(), time.perf_counter()
        with DiskWatch(self.disk) if self.disk else nullcontext() as watch:
            summary = phase()
        seconds = time.perf_counter() - started
        cpu = self.meter.breakdown(before, seconds, summary.ok)
        cpu_wait = self.waits.breakdown(waited_before, seconds, summary.ok)
        events = {k: v - events[k] for k, v in _postgres_events(self.env).items()}
        disk = watch.report() if watch else {}
        return replace(summary, cpu=cpu, cpu_wait=cpu_wait, postgres_events=events, disk=disk)

    def _counted(self, side: str, summary: Summary) -> Summary:
        """Count what a phase says it got approved (the database must agree); the servers must still be up."""
        self.env.check_service()
        self.ok[side] += summary.ok
        self.unanswered[side] += summary.unanswered
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


def _check_connections(env: Environment, concurrency: int, db_pool: int | None) -> None:
    """pgbench opens one connection per client while the service and the floor keep their pools (`db_pool`, or
    the product's default size; the bare route has none)."""
    limit = int(_sql(env, "SHOW max_connections")[0][0])
    pool = db_pool or Settings.model_fields["db_pool_max"].default
    needed = concurrency + 2 * pool + _SPARE_CONNECTIONS
    if needed > limit:
        raise SystemExit(f"concurrency {concurrency} needs {needed} PostgreSQL connections; the server allows {limit}")


def database_check(bench: Bench) -> dict[str, Any]:
    """Approved and declined charges in the database, by who made them, against what the clients counted.

    Consistent: no card approved twice, and the approved charges are the 201s answered plus at most the
    requests left unanswered when a wrk phase ended (the server may have approved those after wrk stopped)."""
    rows = _sql(
        bench.env,
        f"""SELECT CASE WHEN charge_id LIKE '{CHARGE_ID_PREFIX}%' THEN 'pgbench'
                        WHEN charge_id LIKE '{FLOOR_CHARGE_PREFIX}%' THEN 'floor' ELSE 'service' END AS source,
                   status, count(*) AS n
            FROM charges GROUP BY 1, 2 ORDER BY 1, 2""",
    )
    twice = _sql(
        bench.env,
        "SELECT count(*) AS n FROM (SELECT card_id FROM charges WHERE status = 'approved' "
        "GROUP BY card_id HAVING count(*) > 1) AS approved_twice",
    )[0]["n"]
    counts: dict[str, dict[str, int]] = {side: {} for side in ("pgbench", *_CHARGING)}
    for row in rows:
        counts[row["source"]][row["status"]] = row["n"]
    check: dict[str, Any] = {"cards_approved_twice": twice}
    for side in _CHARGING:
        approved, answered = counts[side].get("approved", 0), bench.ok[side]
        consistent = twice == 0 and answered <= approved <= answered + bench.unanswered[side]
        check[side] = {
            **counts[side],
            "answered_201": answered,
            "unanswered": bench.unanswered[side],
            "consistent": consistent,
        }
    check["pgbench"] = {**counts["pgbench"], "transactions_ok": bench.ok["pgbench"]}
    return check


def run(args: argparse.Namespace) -> dict[str, Any]:
    levels = sorted({args.concurrency, *args.sweep})
    started = time.monotonic()
    with environment(args.cards, args.db_pool, args.data_dir) as env:
        print(f"environment ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        _check_connections(env, max(levels), args.db_pool)
        bench = Bench(env, args.client, args.seconds, args.warmup)
        print(f"warming up for {args.warmup:g} s each", file=sys.stderr)
        bench.warm_up(args.concurrency)
        comparisons = []
        for level in levels:
            print(f"concurrency {level}: service, floor, bare, then pgbench, {args.seconds} s each", file=sys.stderr)
            sides = {side: bench.server(side, level) for side in _SERVERS}
            comparisons.append({"concurrency": level, **sides, "pgbench": bench.pgbench(level)})
        half_load = None if args.no_half_load else _half_load(bench, comparisons)
        profiled = _profile(bench, args) if args.profile else None
        check = database_check(bench)
    return _report(args, comparisons, half_load, check, profiled, bench.disk)


def _half_load(bench: Bench, comparisons: list[dict[str, Any]]) -> dict[str, Summary]:
    """The service at half its best throughput, the floor and the bare route at that same rate from the same
    generator (what the generator and the server stack alone take of the service's latency there), and pgbench at
    half its own best tps, at the concurrency where the service was best."""
    best = max(comparisons, key=lambda c: c["service"].throughput)
    service_rate, pgbench_rate = best["service"].throughput / 2, best["pgbench"].throughput / 2
    print(f"half load: servers at {service_rate:.0f}/s, pgbench at {pgbench_rate:.0f}/s", file=sys.stderr)
    connections = max(64, 4 * best["concurrency"])
    for side in _SERVERS:  # its connections opened and the generator's own first-use costs paid, unmeasured
        bench.open_loop(side, service_rate, connections, bench.warmup)
    return {
        **{side: bench.at_rate(side, service_rate, connections) for side in _SERVERS},
        "pgbench": bench.pgbench(best["concurrency"], rate=pgbench_rate),
    }


def _profile(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """The service under the headline load, recorded by py-spy (not measured: py-spy takes CPU too)."""
    print(f"profiling the service for {args.profile} s", file=sys.stderr)
    raw = args.out.with_suffix(".py-spy.txt")
    raw.parent.mkdir(parents=True, exist_ok=True)
    profile.record(
        bench.env.service.pid,
        args.profile,
        raw,
        lambda: bench.closed_loop("service", args.concurrency, args.profile + 1),
    )
    return {**profile.costliest(raw.read_text()), "collapsed_stacks": str(raw)}


def _cpu_ms(summary: dict[str, Any], component: str) -> float:
    value: float = summary["cpu"][component]["cpu_ms_per_op"]
    return value


def _waits(summary: dict[str, Any]) -> dict[str, float]:
    """Milliseconds per charge each server spent runnable without a CPU during the phase."""
    return {name: figures["cpu_ms_per_op"] for name, figures in summary["cpu_wait"].items()}


def _longest_stalls(phases: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Per side, the longest the disk under PostgreSQL completed nothing with requests pending."""
    return {side: summary["disk"]["longest_stall_ms"] for side, summary in phases.items() if summary.get("disk")}


def _report(
    args: argparse.Namespace,
    comparisons: list[dict[str, Any]],
    half_load: dict[str, Summary] | None,
    check: dict[str, Any],
    profiled: dict[str, Any] | None = None,
    disk_watched: Path | None = None,
) -> dict[str, Any]:
    rows = [
        {
            "concurrency": c["concurrency"],
            **{side: c[side].as_dict() for side in _SIDES},
            "ratio": round(c["service"].throughput / c["pgbench"].throughput, 4),
            "ratio_to_floor": round(c["service"].throughput / c["floor"].throughput, 4),
            "ratio_to_bare": round(c["service"].throughput / c["bare"].throughput, 4),
        }
        for c in comparisons
    ]
    headline = next(r for r in rows if r["concurrency"] == args.concurrency)
    half = {side: summary.as_dict() for side, summary in half_load.items()} if half_load else None
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            **interpreter(),
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "concurrency": args.concurrency,
        "service_charges_per_second": headline["service"]["throughput"],
        "service_p50_ms": headline["service"]["p50_ms"],
        "service_p95_ms": headline["service"]["p95_ms"],
        "service_p99_ms": headline["service"]["p99_ms"],
        "service_cpu_ms_per_charge": _cpu_ms(headline["service"], "service"),
        "floor_charges_per_second": headline["floor"]["throughput"],
        "floor_p50_ms": headline["floor"]["p50_ms"],
        "floor_p95_ms": headline["floor"]["p95_ms"],
        "floor_p99_ms": headline["floor"]["p99_ms"],
        "floor_cpu_ms_per_charge": _cpu_ms(headline["floor"], "floor"),
        "ratio_service_to_floor": headline["ratio_to_floor"],
        "bare_charges_per_second": headline["bare"]["throughput"],
        "bare_p99_ms": headline["bare"]["p99_ms"],
        "bare_cpu_ms_per_charge": _cpu_ms(headline["bare"], "bare"),
        "ratio_service_to_bare": headline["ratio_to_bare"],
        "loadgen_cpu_ms_per_charge": _cpu_ms(headline["service"], "loadgen"),
        "pgbench_tps": headline["pgbench"]["throughput"],
        "pgbench_p50_ms": headline["pgbench"]["p50_ms"],
        "pgbench_p95_ms": headline["pgbench"]["p95_ms"],
        "pgbench_p99_ms": headline["pgbench"]["p99_ms"],
        "ratio_service_to_pgbench": headline["ratio"],
        "service_p99_ms_at_half_max_throughput": half["service"]["p99_ms"] if half else None,
        "floor_p99_ms_at_the_same_rate": half["floor"]["p99_ms"] if half else None,
        "bare_p99_ms_at_the_same_rate": half["bare"]["p99_ms"] if half else None,
        "pgbench_p99_ms_at_half_max_throughput": half["pgbench"]["p99_ms"] if half else None,
        "cpu_wait_ms_per_charge_at_half_max": _waits(half["service"]) if half else None,
        "longest_disk_stall_ms_at_half_max": _longest_stalls(half) if half else None,
        "disk_watched": str(disk_watched) if disk_watched else None,  # None: the data was on no disk (a tmpfs)
        "levels": rows,
        "half_load": half,
        "profile": profiled,
        "database_check": check,
    }


def interpreter(maps: Path = Path("/proc/self/maps")) -> dict[str, Any]:
    """The interpreter the servers run on (this one: they are started from its venv), and whether it loads libpython
    as a shared library, as pyenv's default build does: that build (no profile-guided or link-time optimization)
    costs about a tenth more CPU per charge than the image's Debian python3, which has libpython linked in. Read from
    the process's own mappings: `sysconfig` says `Py_ENABLE_SHARED` for Debian's too (its shared build's flags)."""
    return {
        "interpreter": str(Path(sys.executable).resolve()),
        "shared_libpython": "/libpython" in maps.read_text(),
    }


def _row(name: str, s: dict[str, Any]) -> str:
    return (
        f"{name:<34}{s['throughput']:>10.1f}{s['p50_ms']:>9.2f}{s['p95_ms']:>9.2f}{s['p99_ms']:>9.2f}"
        f"{s['ok']:>9}{s['operations'] - s['ok']:>7}"
    )


def _per_op_table(title: str, key: str, phases: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Milliseconds per approved charge by component, from each phase's `key` (`cpu` or `cpu_wait`)."""
    names = list(phases[0][1][key])
    lines = [f"{title:<34}" + "".join(f"{n[:9]:>10}" for n in names)]
    for label, summary in phases:
        lines.append(f"{label:<34}" + "".join(f"{summary[key][n]['cpu_ms_per_op']:>10.3f}" for n in names))
    return lines


def _cpu_table(phases: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """CPU milliseconds per approved charge by component, and warnings where `other` processes or the
    hypervisor's `steal` took more than `_BUSY` cores meanwhile."""
    lines = _per_op_table("CPU ms per op", "cpu", phases)
    for component, took in _SHARERS.items():
        busy = [(label, s["cpu"][component]["cores"]) for label, s in phases if s["cpu"][component]["cores"] > _BUSY]
        lines += [f"WARNING: {took.format(cores)} during '{label}'" for label, cores in busy]
    return lines


_NAMES = {
    "service": "service POST /charges",
    "floor": "floor   POST /charges",
    "bare": "bare    POST /charges",
    "pgbench": "pgbench ghostpay_charge",
}


def table(report: dict[str, Any]) -> list[str]:
    """The report as the lines `make bench` prints (the README quotes them)."""
    machine = report["machine"]
    linked = "a shared libpython" if machine["shared_libpython"] else "libpython linked in"
    lines = [
        f"GhostPay charge path, {machine['cpus']} CPUs, {report['settings']['seconds']} s per phase, "
        f"Python {machine['python']} ({machine['interpreter']}, {linked})"
    ]
    lines.append(f"{'':<34}{'ops/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'ok':>9}{'not ok':>7}")
    for level in report["levels"]:
        c = level["concurrency"]
        lines += [_row(f"{_NAMES[side]:<23} c={c}", level[side]) for side in _SIDES]
        lines.append(f"{'ratio service/floor':<34}{level['ratio_to_floor']:>10.3f}")
        lines.append(f"{'ratio service/bare':<34}{level['ratio_to_bare']:>10.3f}")
        lines.append(f"{'ratio service/pgbench':<34}{level['ratio']:>10.3f}")
    half = report["half_load"]
    if half:
        lines += [_row(f"{side} at {half[side]['target_rate']:.0f}/s (half max)", half[side]) for side in half]
    phases = [(f"{side} c={level['concurrency']}", level[side]) for level in report["levels"] for side in _SIDES]
    phases += [(f"{side} at half max", half[side]) for side in half] if half else []
    lines += ["", *_cpu_table(phases)]
    lines.append(
        f"service CPU per charge {report['service_cpu_ms_per_charge']:.3f} ms, "
        f"floor {report['floor_cpu_ms_per_charge']:.3f} ms, bare route {report['bare_cpu_ms_per_charge']:.3f} ms"
    )
    # pgbench's phases are left out: its backends exit with it, and their waits with them (bench.cpu).
    served = [(label, s) for label, s in phases if s.get("cpu_wait") and not label.startswith("pgbench")]
    lines += ["", *_per_op_table("waited for a CPU, ms per op", "cpu_wait", served)] if served else []
    lines += _disk_table(phases)
    return lines


_DISK_COLUMNS = {
    "longest_stall_ms": ("stall ms", ".1f"),
    "stalled_ms": ("stalled ms", ".1f"),
    "iowait_cores": ("iowait", ".3f"),
}


def _disk_table(phases: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The disk under PostgreSQL per phase: its longest stall (requests pending, none completed), all its stalls
    together, and the CPUs' I/O wait in cores."""
    watched = [(label, s["disk"]) for label, s in phases if s.get("disk")]
    if not watched:
        return []
    lines = ["", f"{'disk under PostgreSQL':<34}" + "".join(f"{title:>11}" for title, _ in _DISK_COLUMNS.values())]
    for label, disk in watched:
        lines.append(f"{label:<34}" + "".join(f"{disk[key]:>11{form}}" for key, (_, form) in _DISK_COLUMNS.items()))
    return lines


def print_report(report: dict[str, Any]) -> None:
    print("", *table(report), sep="\n")
    if report["profile"]:
        print("", *profile.table(report["profile"]), sep="\n")
    check = report["database_check"]
    print(f"\ndatabase: {json.dumps(check)}")
    for side in _CHARGING:
        if not check[side]["consistent"]:
            print(f"WARNING: the {side}'s approved charges in the database differ from the 201s it answered")
    if any(check[side].get("declined") for side in ("pgbench", *_CHARGING)):
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
    picture = plot.write_png(report, args.out.with_suffix(".png"))
    print(f"written to {args.out} and {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
