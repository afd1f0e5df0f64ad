"""`make load [DURATION=30s]`: a bounded, headless Locust run of a merchant mix against its own `ghostpay dev`.

    .venv/bin/python -m load.run [--duration 30s] [--users 20] [--spawn-rate 10] [--merchants 4]
                                 [--merchant-limit 20/40] [--out FILE]

It starts `ghostpay dev` on a fresh data directory (embedded PostgreSQL and Redis, 127.0.0.1, a free port) with a
merchant rate limit (`--merchant-limit`, requests per second / burst, default 20/40), creates the merchant clients
through the admin API, and runs the users of
`load.merchants` for the duration. Then it waits (at most 10 s) for the analytics service to count what the
clients were told, prints p50/p95/p99 latency, throughput and the 429s by merchant kind, and writes everything as
JSON to `--out` (default `load/last-report.json`) and Locust's own HTML report (charts, every endpoint's
percentiles, failures) beside it, with the suffix `.html` (`load/last-report.html`). Exit status 1 if any answer
was not the expected one or the analytics disagree with the clients; the server is stopped in every case.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: it patches the standard library for gevent before anything opens a socket)

# isort: split

import argparse
import json
import secrets
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import httpx
from locust.env import Environment
from locust.html import get_html_report
from locust.util.timespan import parse_timespan
from tests.support import procs

from load import merchants, report

DEFAULT_OUT = Path(__file__).resolve().parent / "last-report.json"
# Generous for a person-paced merchant, tight for the poller: it shows per-client budgets at work.
MERCHANT_LIMIT = "20/40"
_CATCH_UP_SECONDS = 10.0
_STOP_SECONDS = 10.0
_LOG_TAIL = 3000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m load.run", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", default="30s", help="how long the users run, e.g. 30s, 2m (default 30s)")
    parser.add_argument("--users", type=int, default=20, help="concurrent users, one of them the poller (default 20)")
    parser.add_argument("--spawn-rate", type=float, default=10, help="users started per second (default 10)")
    parser.add_argument("--merchants", type=int, default=4, help="merchant clients the users share (default 4)")
    parser.add_argument(
        "--merchant-limit",
        default=MERCHANT_LIMIT,
        help=f"each merchant client's budget, requests per second/burst (default {MERCHANT_LIMIT})",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        args.seconds = parse_timespan(args.duration)
    except ValueError as exc:
        parser.error(f"--duration: {exc}")
    args.rate_limits = _merchant_budget(args.merchant_limit)
    if args.rate_limits is None:
        parser.error(f"--merchant-limit: RPS/BURST, both positive (e.g. {MERCHANT_LIMIT}), not {args.merchant_limit}")
    if args.seconds < 1 or args.users < 2 or args.spawn_rate <= 0 or args.merchants < 1:
        parser.error("--duration must be at least 1s, --users at least 2, --spawn-rate and --merchants positive")
    return args


def _merchant_budget(text: str) -> dict[str, dict[str, float]] | None:
    """`RPS/BURST` as the services' GHOSTPAY_RATE_LIMITS for the merchant role; None unless both are positive."""
    rate, _, burst = text.partition("/")
    try:
        budget = {"requestsPerSecond": float(rate), "burst": int(burst)}
    except ValueError:
        return None
    return {"merchant": budget} if budget["requestsPerSecond"] > 0 and budget["burst"] >= 1 else None


def _admin_token(http: httpx.Client, admin: dict[str, str]) -> str:
    token: str = http.post("/auth/token", json=admin).raise_for_status().json()["access_token"]
    return token


def _clients(url: str, admin: dict[str, str], count: int) -> list[dict[str, str]]:
    """`count` new merchant clients, created by the admin as a platform team would."""
    with httpx.Client(base_url=url, timeout=30) as http:
        token = _admin_token(http, admin)
        headers = {"Authorization": f"Bearer {token}"}
        created = []
        for n in range(count):
            body = {"name": f"load merchant {n}", "role": "merchant"}
            created.append(http.post("/auth/clients", json=body, headers=headers).raise_for_status().json())
    return [{"client_id": c["client_id"], "client_secret": c["client_secret"]} for c in created]


def _analytics_once_caught_up(url: str, admin: dict[str, str], clients_saw: Counter[str]) -> dict[str, int]:
    """The admin's analytics summary, polled until it counts what the clients saw (or the time is up)."""
    deadline = time.monotonic() + _CATCH_UP_SECONDS
    with httpx.Client(base_url=url, timeout=30) as http:
        token = _admin_token(http, admin)
        while True:
            summary = http.get("/analytics/summary", headers={"Authorization": f"Bearer {token}"})
            counts = report.analytics_counts(summary.raise_for_status().json())
            if all(counts[k] >= clients_saw.get(k, 0) for k in counts) or time.monotonic() > deadline:
                return counts
            time.sleep(0.5)


def _run_users(url: str, args: argparse.Namespace) -> tuple[Environment, Counter[str]]:
    # stop_timeout: at the end each user finishes the request it is in, so the clients' tally is complete.
    users = [merchants.Merchant, merchants.PollingMerchant]
    environment = Environment(user_classes=users, host=url, stop_timeout=_STOP_SECONDS)
    rate_limited: Counter[str] = Counter()

    def count_429(response: Any = None, context: dict[str, Any] | None = None, **_: Any) -> None:
        if response is not None and response.status_code == 429:
            rate_limited[(context or {}).get("kind", "?")] += 1

    environment.events.request.add_listener(count_429)
    runner = environment.create_local_runner()
    runner.start(args.users, spawn_rate=args.spawn_rate)
    gevent.spawn_later(args.seconds, runner.quit)
    runner.greenlet.join()
    return environment, rate_limited


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    admin = {"client_id": "cli_load_admin", "client_secret": secrets.token_urlsafe(32)}
    settings = {
        "GHOSTPAY_ADMIN_CLIENT_ID": admin["client_id"],
        "GHOSTPAY_ADMIN_CLIENT_SECRET": admin["client_secret"],
        "GHOSTPAY_RATE_LIMITS": json.dumps(args.rate_limits),
        "GHOSTPAY_LOG_LEVEL": "WARNING",
    }
    with tempfile.TemporaryDirectory(prefix="gpload-", dir="/tmp") as root:  # short: Unix socket paths
        server = procs.dev(Path(root) / "data", Path(root), settings)
        print(f"starting ghostpay dev on {server.url} ...", file=sys.stderr)
        try:
            server.start()
            merchants.Merchant.credentials = _clients(server.url, admin, args.merchants)
            merchants.PollingMerchant.credentials = _clients(server.url, admin, 1)
            started = datetime.now(UTC)
            environment, rate_limited = _run_users(server.url, args)
            analytics = _analytics_once_caught_up(server.url, admin, merchants.TALLY.counts)
        except BaseException:
            print(f"ghostpay dev's log, the end:\n{server.logs()[-_LOG_TAIL:]}", file=sys.stderr)
            raise
        finally:
            server.stop()
        server_log = server.logs()
    setup = {
        "started_at": started.isoformat(timespec="seconds"),
        "duration_seconds": args.seconds,
        "users": args.users,
        "merchant_clients": args.merchants,
        "rate_limits": args.rate_limits,
    }
    assert environment.runner is not None
    exceptions = [{"error": e["msg"], "occurrences": e["count"]} for e in environment.runner.exceptions.values()]
    result = report.build(environment.stats, rate_limited, merchants.TALLY.counts, analytics, setup, exceptions)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    html_out = args.out.with_suffix(".html")
    html_out.write_text(get_html_report(environment, show_download_link=False))
    print(report.render(result))
    print(f"report: {args.out} (Locust's: {html_out})")
    if not result["ok"]:
        print(f"ghostpay dev's log, the end:\n{server_log[-_LOG_TAIL:]}", file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
