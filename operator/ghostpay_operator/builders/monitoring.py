"""Scrape wiring for a cluster that runs the Prometheus Operator: a headless metrics Service per service, a
ServiceMonitor selecting them, and a PrometheusRule holding GhostPay's alerts and recording rules.

Made only when the cluster serves the `monitoring.coreos.com/v1` kinds (`observe` finds out by listing them).
Without them, Prometheus finds the pods by their `prometheus.io/*` annotations (`workloads.SCRAPE_ANNOTATIONS`);
the pods keep those annotations either way, since changing a pod template would roll every pod.

The PrometheusRule's groups are monitoring/prometheus/rules.yaml itself (the package's
`monitoring/rules.yaml` is a link to it, copied into the wheel): one file, promtool-tested, no copy to drift.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from ghostpay_operator.builders import meta, names, pods
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import SERVICES, InstanceSpec

API_VERSION = "monitoring.coreos.com/v1"
METRICS_LABEL = "ghostpay.io/metrics"  # on the metrics Services: what the ServiceMonitor selects
SCRAPE_INTERVAL = "30s"


@cache
def rule_groups() -> list[dict[str, Any]]:
    """The `groups` of monitoring/prometheus/rules.yaml."""
    text = resources.files("ghostpay_operator").joinpath("monitoring/rules.yaml").read_text()
    groups: list[dict[str, Any]] = yaml.safe_load(text)["groups"]
    return groups


def metrics_service(spec: InstanceSpec, service: str) -> Manifest:
    """A headless Service on `service`'s metrics port, over both colours' pods (no traffic goes through it)."""
    labels = {"app.kubernetes.io/component": service, METRICS_LABEL: "true"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta.object_meta(spec, names.metrics_service(spec.name, service), labels),
        "spec": {
            "clusterIP": "None",
            "selector": meta.service_selector(spec, service),
            "ports": [{"name": "metrics", "port": pods.METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }


def service_monitor(spec: InstanceSpec) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": meta.object_meta(spec, names.monitoring(spec.name)),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/instance": spec.name, METRICS_LABEL: "true"}},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": SCRAPE_INTERVAL}],
        },
    }


def prometheus_rule(spec: InstanceSpec) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": meta.object_meta(spec, names.monitoring(spec.name)),
        "spec": {"groups": rule_groups()},
    }


def monitoring(spec: InstanceSpec) -> list[Manifest]:
    """Everything the Prometheus Operator needs to scrape and alert on the instance."""
    made = [metrics_service(spec, service) for service in SERVICES]
    return [meta.stamped(m) for m in (*made, service_monitor(spec), prometheus_rule(spec))]
