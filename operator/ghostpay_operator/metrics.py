"""The operator's own Prometheus metrics, served by `ghostpay operator` on a port of its own (`--metrics-port`).

Names and labels are documented in monitoring/README.md (the alerts in monitoring/prometheus/rules.yaml read
`ghostpay_operator_last_reconcile_timestamp_seconds` and `ghostpay_operator_releases_total`). An instance is
labelled `resource_namespace`/`resource_name`: the scrape's own `namespace` label is the operator's.

`kube.Kube` counts its API requests here (`api_request`); the kopf handlers record each finished pass
(`record_pass`, `record_error`) and drop an instance's series when it is deleted (`forget`). What a pass changed
(a release started, completed or rolled back; a key rotation) is read from the status before and after the pass
by pure functions, so the numbers follow what users see in `kubectl get ghostpay`, not the operator's internals.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ghostpay_operator.builders import schedule
from ghostpay_operator.kinds import InstanceStatus
from ghostpay_operator.vocabulary import IN_PROGRESS, ROLLED_BACK, AnalysisResult, Event

REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

INSTANCE = ["resource_namespace", "resource_name"]
PHASES = ("Pending", "Healthy", "Progressing", "Paused", "Degraded", "RolledBack")
SUCCESS, ERROR = "success", "error"

RECONCILES = Counter(
    "ghostpay_operator_reconciles",
    "Reconcile passes of an instance, by result (success, error) and reason",
    [*INSTANCE, "result", "reason"],
    registry=REGISTRY,
)
LAST_RECONCILE = Gauge(
    "ghostpay_operator_last_reconcile_timestamp_seconds",
    "Unix time of the instance's last successful reconcile pass",
    INSTANCE,
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "ghostpay_operator_api_requests",
    "Requests the operator's reconcile passes sent to the Kubernetes API server, by verb and kind",
    ["verb", "kind"],
    registry=REGISTRY,
)
PHASE = Gauge(
    "ghostpay_operator_instance_phase",
    "1 for the instance's status.phase, 0 for the other phases",
    [*INSTANCE, "phase"],
    registry=REGISTRY,
)
RELEASES = Counter(
    "ghostpay_operator_releases",
    "Releases by outcome: started, completed, rolled_back",
    [*INSTANCE, "outcome"],
    registry=REGISTRY,
)
ANALYSES = Counter(
    "ghostpay_operator_analysis_results",
    "Release analyses by result (pass, fail) and by the check that decided (error_rate, decline_rate, charge_p99)",
    [*INSTANCE, "result", "check"],
    registry=REGISTRY,
)
KEY_ROTATIONS = Counter(
    "ghostpay_operator_key_rotations",
    "Finished key-rotation Jobs by outcome: succeeded, failed",
    [*INSTANCE, "outcome"],
    registry=REGISTRY,
)
LAST_KEY_ROTATION = Gauge(
    "ghostpay_operator_last_key_rotation_timestamp_seconds",
    "Unix time of the instance's last successful key rotation (status.lastKeyRotation)",
    INSTANCE,
    registry=REGISTRY,
)
KEY_ROTATION_OK = Gauge(
    "ghostpay_operator_key_rotation_succeeded",
    "1 when the newest finished key-rotation Job succeeded, 0 when it failed (the KeyRotation condition)",
    INSTANCE,
    registry=REGISTRY,
)
KEY_MAX_AGE = Gauge(
    "ghostpay_operator_key_max_age_seconds",
    "The oldest a signing key may get under spec.keyRotation.schedule: its longest gap between runs plus an hour",
    INSTANCE,
    registry=REGISTRY,
)


class _KeyRotationAge(Collector):
    """`ghostpay_operator_key_rotation_age_seconds`: now minus the last rotation, computed at scrape time."""

    def __init__(self) -> None:
        self.rotated: dict[tuple[str, str], float] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ghostpay_operator_key_rotation_age_seconds",
            "Seconds since the instance's last successful key rotation",
            labels=INSTANCE,
        )
        now = time.time()
        for labels, rotated in sorted(self.rotated.items()):
            family.add_metric(list(labels), now - rotated)
        yield family


KEY_ROTATION_AGE = _KeyRotationAge()
REGISTRY.register(KEY_ROTATION_AGE)

_PER_INSTANCE: tuple[Counter | Gauge, ...] = (
    RECONCILES,
    LAST_RECONCILE,
    PHASE,
    RELEASES,
    ANALYSES,
    KEY_ROTATIONS,
    LAST_KEY_ROTATION,
    KEY_ROTATION_OK,
    KEY_MAX_AGE,
)
# The label values each per-instance metric got, so `forget` can remove exactly those series.
_seen: dict[tuple[str, str], set[tuple[Counter | Gauge, tuple[str, ...]]]] = {}


def _labels(metric: Counter | Gauge, namespace: str, name: str, *extra: str) -> Any:
    _seen.setdefault((namespace, name), set()).add((metric, (namespace, name, *extra)))
    return metric.labels(namespace, name, *extra)


def serve(host: str, port: int) -> None:
    """Serve GET /metrics on host:port from a daemon thread."""
    start_http_server(port, addr=host, registry=REGISTRY)


def api_request(verb: str, kind: str) -> None:
    API_REQUESTS.labels(verb, kind).inc()


def _timestamp(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def release_outcomes(previous: InstanceStatus, status: InstanceStatus) -> list[str]:
    """What one pass did to the release, from `status.release` before and after it: `started` (a new release
    record in progress), `rolled_back` (a record newly rolled back), `completed` (the record in progress is gone and
    its version is now the active one). Pure."""
    before: dict[str, Any] = dict(previous.get("release") or {})
    after: dict[str, Any] = dict(status.get("release") or {})
    same = bool(before) and bool(after) and before.get("startedAt") == after.get("startedAt")
    outcomes = []
    if after and not same and after.get("outcome") == IN_PROGRESS:
        outcomes.append("started")
    if after.get("outcome") == ROLLED_BACK and not (same and before.get("outcome") == ROLLED_BACK):
        outcomes.append("rolled_back")
    ongoing = before.get("outcome") == IN_PROGRESS
    if ongoing and not after and status.get("activeVersion") == before.get("version"):
        outcomes.append("completed")
    return outcomes


def record_pass(
    namespace: str,
    name: str,
    previous: InstanceStatus,
    status: InstanceStatus,
    problem_reason: str | None,
    events: Iterable[Event],
    analysis: AnalysisResult | None,
    rotation_schedule: str | None = None,
) -> None:
    """A finished pass: its result, the instance's phase, what happened to its release and keys (and, with
    `rotation_schedule`, how old a key may get under it)."""
    result = ERROR if problem_reason else SUCCESS
    _labels(RECONCILES, namespace, name, result, problem_reason or "Reconciled").inc()
    if problem_reason is None:
        _labels(LAST_RECONCILE, namespace, name).set(time.time())
    phase = status.get("phase")
    for each in PHASES:
        _labels(PHASE, namespace, name, each).set(1.0 if each == phase else 0.0)
    for outcome in release_outcomes(previous, status):
        _labels(RELEASES, namespace, name, outcome).inc()
    if analysis is not None:
        _labels(ANALYSES, namespace, name, analysis.verdict, analysis.check).inc()
    for event in events:
        if event.reason in ("KeyRotated", "KeyRotationFailed"):
            outcome = "succeeded" if event.reason == "KeyRotated" else "failed"
            _labels(KEY_ROTATIONS, namespace, name, outcome).inc()
    rotated = _timestamp(status.get("lastKeyRotation"))
    if rotated is not None:
        _labels(LAST_KEY_ROTATION, namespace, name).set(rotated)
        KEY_ROTATION_AGE.rotated[(namespace, name)] = rotated
    max_age = schedule.key_max_age(rotation_schedule) if rotation_schedule else None
    if max_age is not None:
        _labels(KEY_MAX_AGE, namespace, name).set(max_age.total_seconds())
    elif (KEY_MAX_AGE, (namespace, name)) in _seen.get((namespace, name), set()):  # keyRotation was removed
        _seen[(namespace, name)].discard((KEY_MAX_AGE, (namespace, name)))
        KEY_MAX_AGE.remove(namespace, name)
    condition = next((c for c in status.get("conditions", []) if c["type"] == "KeyRotation"), None)
    if condition is not None:
        _labels(KEY_ROTATION_OK, namespace, name).set(1.0 if condition["status"] == "True" else 0.0)


def record_error(namespace: str, name: str, reason: str) -> None:
    """A pass that raised (the API server refused or failed a request): kopf retries it."""
    _labels(RECONCILES, namespace, name, ERROR, reason).inc()


def forget(namespace: str, name: str) -> None:
    """The instance is gone: its series go too (a stale last-reconcile time would page as not reconciling)."""
    for metric, labels in _seen.pop((namespace, name), set()):
        metric.remove(*labels)
    KEY_ROTATION_AGE.rotated.pop((namespace, name), None)
