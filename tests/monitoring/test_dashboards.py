"""The Grafana dashboards in monitoring/grafana/: generated (`make dashboards`), every datasource the `datasource`
variable, and every panel's query evaluated by a real Prometheus that scraped the four `ghostpay serve` processes
under a bounded burst of traffic: each parses and returns data. The operator dashboard's metrics come from the
operator, which this test does not run: its queries are only checked to parse, and to use the names
monitoring/README.md defines."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghostpay_devtools import dashboards
from tests.conftest import ADMIN_ID, ADMIN_SECRET
from tests.operator.support.prometheus import Prometheus, start_prometheus
from tests.support import procs
from tests.support.servers import Servers

REPO_ROOT = Path(__file__).resolve().parents[2]
GRAFANA = REPO_ROOT / dashboards.DIRECTORY
# What Grafana substitutes before it sends a query (the namespace variable's "All" is `.*`).
VARIABLES = {"$namespace": ".*", "$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s"}
LIMITS = {
    "admin": {"requestsPerSecond": 10000, "burst": 10000},
    "merchant": {"requestsPerSecond": 10000, "burst": 10000},
    "anonymous": {"requestsPerSecond": 10000, "burst": 10000},
    "user": {"requestsPerSecond": 0.5, "burst": 2},  # a user's third quick request is a 429
}
DATA_TIMEOUT = 60.0


def _files() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(GRAFANA.glob("*.json"))}


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL as Grafana sends it) for every target of every panel."""
    found = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            found.append((panel["title"], expr))
    return found


def _datasources(node: Any) -> Iterator[Any]:
    """Every `datasource` value anywhere in a dashboard (panels, targets, variables)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from _datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasources(item)


def test_the_committed_dashboards_are_the_generated_ones() -> None:
    """If this fails, run `make dashboards` and commit monitoring/grafana/."""
    assert {name: json.dumps(d, indent=2) + "\n" for name, d in _files().items()} == dashboards.render()


def test_every_dashboard_picks_its_prometheus_through_a_variable() -> None:
    for name, dashboard in _files().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        every_datasource = list(_datasources(dashboard))
        assert every_datasource and all(d == dashboards.DATASOURCE for d in every_datasource), name
        for title, expr in _queries(dashboard):
            assert "$" not in expr, f"{name}: {title}: a variable the test does not substitute"


def test_the_operator_panels_use_the_names_the_monitoring_readme_defines() -> None:
    readme = (REPO_ROOT / "monitoring" / "README.md").read_text()
    operator = _files()["operator.json"]
    names = {m for _, expr in _queries(operator) for m in re.findall(r"ghostpay_operator_[a-z_]+", expr)}
    assert names == {
        "ghostpay_operator_last_reconcile_timestamp_seconds",
        "ghostpay_operator_reconciles_total",
        "ghostpay_operator_releases_total",
    }
    for name in names:
        assert f"`{name}`" in readme
    assert 'up{job="ghostpay-operator"}' in json.dumps(operator).replace('\\"', '"')


@dataclass
class Services:
    procs: dict[str, procs.Proc]
    metrics_ports: list[int]

    def url(self, service: str) -> str:
        return self.procs[service].url


@pytest.fixture(scope="module")
def services(
    database_url: str, servers: Servers, keys_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    log_dir = tmp_path_factory.mktemp("dashboards")
    running: dict[str, procs.Proc] = {}
    ports: list[int] = []
    try:
        for service in ("auth", "cards", "charges", "analytics"):
            port = procs.free_port()
            env = procs.service_env(
                database_url,
                servers.redis_url,
                keys_dir,
                ADMIN_ID,
                ADMIN_SECRET,
                LIMITS,
                GHOSTPAY_METRICS_PORT=str(port),
                GHOSTPAY_SIGNING_KEY_MAX_AGE_SECONDS="2682000",  # a monthly schedule's longest gap plus an hour
            )
            running[service] = procs.serve(service, env, log_dir).start()
            ports.append(port)
        yield Services(running, ports)
    finally:
        for proc in running.values():
            proc.stop()


def _traffic(services: Services, rounds: int) -> dict[str, int]:
    """A bounded mix: cards issued in two currencies, each charged (approved) and charged again (declined,
    card_used), a missing card (404), a user over its limit (429), the analytics read. Returns the statuses seen."""
    seen: dict[str, int] = {}
    with httpx.Client(timeout=10.0) as http:

        def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
            response = http.request(method, url, **kwargs)
            seen[str(response.status_code)] = seen.get(str(response.status_code), 0) + 1
            return response

        def token(client_id: str, secret: str) -> dict[str, str]:
            body = {"client_id": client_id, "client_secret": secret}
            reply = call("POST", f"{services.url('auth')}/auth/token", json=body).raise_for_status()
            return {"Authorization": f"Bearer {reply.json()['access_token']}"}

        admin = token(ADMIN_ID, ADMIN_SECRET)
        made = {}
        for role in ("merchant", "user"):
            body = {"name": f"dash-{role}", "role": role, **({"user_id": "dash-user"} if role == "user" else {})}
            made[role] = call("POST", f"{services.url('auth')}/auth/clients", json=body, headers=admin).json()
        merchant = token(made["merchant"]["client_id"], made["merchant"]["client_secret"])
        user = token(made["user"]["client_id"], made["user"]["client_secret"])
        for n in range(rounds):
            for amount, currency in ((1250 + n, "USD"), (900 + n, "EUR")):
                card_body = {"user_id": "dash-user", "amount": amount, "currency": currency}
                card = call("POST", f"{services.url('cards')}/cards", json=card_body, headers=merchant).json()
                charge = {"card_id": card["card_id"], "amount": amount, "currency": currency}
                for _ in range(2):  # approved, then declined: card_used
                    call("POST", f"{services.url('charges')}/charges", json=charge, headers=merchant)
            call("GET", f"{services.url('cards')}/cards/card_missing", headers=merchant)
            for _ in range(3):
                call("GET", f"{services.url('cards')}/cards", headers=user)
            call("GET", f"{services.url('analytics')}/analytics/summary", headers=merchant)
            time.sleep(1.0)  # over a scrape interval: rates see the counters move
    return seen


def _from_the_operator(expr: str) -> bool:
    """A query of the operator's metrics (the operator is not running here: such a query need only parse)."""
    return "ghostpay_operator_" in expr or 'job="ghostpay-operator"' in expr


def _query(prometheus: Prometheus, expr: str) -> dict[str, Any]:
    response = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=10.0)
    body: dict[str, Any] = response.json()
    return body


def _wait_for(prometheus: Prometheus, expr: str) -> None:
    deadline = time.monotonic() + DATA_TIMEOUT
    while time.monotonic() < deadline:
        if _query(prometheus, expr).get("data", {}).get("result"):
            return
        time.sleep(0.5)
    raise AssertionError(f"no data for {expr} within {DATA_TIMEOUT}s; log:\n{prometheus.log_tail()}")


@pytest.mark.slow
@pytest.mark.infra("prometheus")
def test_every_panel_query_parses_and_returns_data_from_running_services(
    services: Services, tmp_path: Path
) -> None:
    prometheus = start_prometheus(tmp_path, *services.metrics_ports)
    try:
        _wait_for(prometheus, 'count(up{job="ghostpay"} == 1) == 4')
        seen = _traffic(services, rounds=5)
        assert {"200", "201", "402", "404", "429"} <= set(seen), seen
        _wait_for(prometheus, 'ghostpay_charges_total{status="declined"}')
        time.sleep(2.0)  # two more scrapes after the last request
        empty, failed, evaluated = [], [], 0
        for name, dashboard in _files().items():
            for title, expr in _queries(dashboard):
                answer = _query(prometheus, expr)
                evaluated += 1
                if answer.get("status") != "success":
                    failed.append(f"{name}: {title}: {expr}: {answer.get('error')}")
                elif not answer["data"]["result"] and not _from_the_operator(expr):
                    empty.append(f"{name}: {title}: {expr}")
        print(f"{evaluated} panel queries evaluated; statuses seen {seen}")
    finally:
        prometheus.stop()
    assert failed == [], "\n".join(failed)
    assert empty == [], "\n".join(empty)
