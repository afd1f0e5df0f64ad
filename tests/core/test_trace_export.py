"""Traces leave the process (issue 13): a `ghostpay serve charges` whose only tracing setting is the standard
OTEL_EXPORTER_OTLP_ENDPOINT exports a charge's trace over OTLP to a real Jaeger (built from its Go module by
tools/jaeger/build.sh), and Jaeger's query API finds it under the caller's trace id with its HTTP, PostgreSQL and
Redis spans."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghostpay_devtools import jaeger as jaeger_tool
from tests.conftest import ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS, Api
from tests.support import procs
from tests.support.servers import Servers

pytestmark = pytest.mark.slow
FIND_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[jaeger_tool.Jaeger]:
    running = jaeger_tool.start(tmp_path_factory.mktemp("jaeger"))
    try:
        yield running
    finally:
        running.stop()


def _find_trace(jaeger: jaeger_tool.Jaeger, trace_id: str) -> list[dict[str, Any]]:
    """The trace's spans from Jaeger's query API, once it has all of them (bounded by FIND_TIMEOUT)."""
    deadline = time.monotonic() + FIND_TIMEOUT
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = httpx.get(f"{jaeger.ui_url}/api/traces/{trace_id}", timeout=5.0)
        if response.status_code == 200 and response.json().get("data"):
            [trace] = response.json()["data"]
            spans = trace["spans"]
            names = {span["operationName"] for span in spans}
            if {"POST /charges", "EVALSHA"} <= names and len(spans) >= 3:
                return [{**span, "service": trace["processes"][span["processID"]]["serviceName"]} for span in spans]
        time.sleep(0.5)
    log = jaeger.log_tail()
    raise AssertionError(f"trace {trace_id} not complete in Jaeger within {FIND_TIMEOUT}s: {spans}\n{log}")


async def test_a_charge_s_trace_is_exported_over_otlp_and_found_in_jaeger(
    jaeger: jaeger_tool.Jaeger, api: Api, database_url: str, servers: Servers, keys_dir: Path, tmp_path: Path
) -> None:
    merchant = await api.merchant()  # the in-process app shares the database and keys with the served process
    card = await api.issue_card(merchant["headers"])
    env = procs.service_env(
        database_url,
        servers.redis_url,
        keys_dir,
        ADMIN_ID,
        ADMIN_SECRET,
        GENEROUS_LIMITS,
        GHOSTPAY_METRICS_PORT=str(procs.free_port()),
        OTEL_EXPORTER_OTLP_ENDPOINT=jaeger.otlp_endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",  # export batches every 200 ms, not 5 s
    )
    charges = procs.serve("charges", env, tmp_path).start()
    trace_id = secrets.token_hex(16)
    try:
        with httpx.Client(timeout=10.0) as http:
            response = http.post(
                f"{charges.url}/charges",
                json={"card_id": card["card_id"], "amount": 1, "currency": "USD"},
                headers={**merchant["headers"], "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
            )
        assert response.status_code == 201, response.text
        assert response.headers["traceparent"].split("-")[1] == trace_id
        spans = _find_trace(jaeger, trace_id)
    finally:
        assert charges.stop() == 0, charges.logs()[-3000:]
    by_name = {span["operationName"]: span for span in spans}
    assert {span["service"] for span in spans} == {"ghostpay-charges"}
    assert by_name["POST /charges"]["references"][0]["spanID"]  # a child of the caller's span
    systems = {tag["value"] for span in spans for tag in span["tags"] if tag["key"] == "db.system"}
    assert systems == {"postgresql", "redis"}
    # the access log line of the charge names the same trace (JSON logs carry trace_id and span_id)
    [line] = [ln for ln in charges.logs().splitlines() if '"route": "/charges"' in ln]
    assert f'"trace_id": "{trace_id}"' in line and '"span_id": "' in line
