"""The operator's own /metrics and the scrape wiring it makes, on the local control plane.

Both ways: a cluster without the Prometheus Operator (the pods' `prometheus.io/*` annotations are the wiring, and no
ServiceMonitor kind exists), then with its two CRDs installed (tests/operator/support/prometheus_operator_crds.yaml):
a ServiceMonitor selecting the metrics Services, and a PrometheusRule whose groups are monitoring/prometheus/rules.yaml
as the API server stored them. The CRDs are removed again at the end (the cluster is the session's). And a real
Prometheus scraping the operator with monitoring/'s `ghostpay-operator` job.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ghostpay_devtools import localcluster
from ghostpay_operator import analysis
from ghostpay_operator.builders import workloads
from tests.operator.support.kube_helpers import (
    REPO,
    SETTLE,
    create_database_secret,
    get_json,
    healthy_instance,
    install_crds,
    instance_yaml,
    live_deployments,
    metrics_url,
    operator_process,
    scrape,
    wait_for,
)
from tests.operator.support.prometheus import start_prometheus
from tests.support import procs

pytestmark = pytest.mark.slow
MONITORING_CRDS = Path(__file__).resolve().parents[1] / "support" / "prometheus_operator_crds.yaml"


@pytest.fixture(scope="module")
def operator(cluster: localcluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[procs.Proc]:
    install_crds(cluster)
    proc = operator_process(cluster, tmp_path_factory.mktemp("operator"), GHOSTPAY_OPERATOR_RESYNC_SECONDS="3").start()
    yield proc
    proc.stop()


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_without_the_prometheus_operator_the_pods_carry_scrape_annotations_and_metrics_count_the_reconcile(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str
) -> None:
    assert cluster.kubectl("get", "servicemonitors", "-n", namespace, check=False).returncode != 0  # no such kind
    before = time.time()
    create_database_secret(cluster, namespace)
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace))
    wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
    for name, deployment in live_deployments(cluster, namespace).items():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert workloads.SCRAPE_ANNOTATIONS.items() <= annotations.items(), name
    services = get_json(cluster, "services", "-n", namespace)["items"]
    assert not [s["metadata"]["name"] for s in services if s["metadata"]["name"].endswith("-metrics")]

    who = {"resource_namespace": namespace, "resource_name": "payments"}
    # The status said Healthy once a pass wrote it; the gauge follows the pass that wrote it.
    samples = wait_for(
        lambda: (
            (s := scrape(metrics_url(operator)))
            and _value(s, "ghostpay_operator_instance_phase", **who, phase="Healthy") == 1
            and s
        ),
        30,
        "the phase gauge to say Healthy",
    )
    assert (
        _value(samples, "ghostpay_operator_reconciles_total", **who, result="success", reason="Reconciled") or 0
    ) >= 1
    last = _value(samples, "ghostpay_operator_last_reconcile_timestamp_seconds", **who)
    assert last is not None and before <= last <= time.time()
    assert _value(samples, "ghostpay_operator_instance_phase", **who, phase="Pending") == 0
    # API requests by verb, counted in the one facade: the Deployments applied (one per service), the database
    # Secret read by name, the monitoring kinds listed (children come from the watches, with no request of a pass)
    assert (_value(samples, "ghostpay_operator_api_requests_total", verb="patch", kind="Deployment") or 0) >= 4
    assert (_value(samples, "ghostpay_operator_api_requests_total", verb="get", kind="Secret") or 0) >= 1
    assert _value(samples, "ghostpay_operator_api_requests_total", verb="list", kind="Deployment") is None
    assert (_value(samples, "ghostpay_operator_api_requests_total", verb="list", kind="ServiceMonitor") or 0) >= 1
    assert _value(samples, "ghostpay_operator_releases_total", **who, outcome="started") is None  # first install

    _delete_instance(cluster, namespace)
    wait_for(
        lambda: not [k for k in scrape(metrics_url(operator)) if ("resource_namespace", namespace) in k[1]],
        30,
        "the deleted instance's series to go",
    )


def test_with_the_prometheus_operator_it_makes_a_service_monitor_and_the_repositorys_rules(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str
) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(MONITORING_CRDS))
    try:
        for crd in ("servicemonitors", "prometheusrules"):
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}.monitoring.coreos.com", "--timeout=60s")
        create_database_secret(cluster, namespace)
        cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace))
        wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
        monitor = wait_for(
            lambda: get_json(cluster, "servicemonitor", "payments", "-n", namespace), 60, "the ServiceMonitor"
        )
        rule = wait_for(lambda: get_json(cluster, "prometheusrule", "payments", "-n", namespace), 60, "the rule")
        rules = yaml.safe_load((REPO / "monitoring/prometheus/rules.yaml").read_text())
        assert rule["spec"]["groups"] == rules["groups"]  # stored whole: nothing pruned or refused
        assert rule["metadata"]["ownerReferences"][0]["kind"] == "GhostPayInstance"
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
        labels = ",".join(f"{k}={v}" for k, v in selector.items())
        selected = get_json(cluster, "services", "-n", namespace, "-l", labels)["items"]
        assert sorted(s["metadata"]["name"] for s in selected) == [
            f"payments-{service}-metrics" for service in ("analytics", "auth", "cards", "charges")
        ]
        for service in selected:  # each reaches its service's pods of both colours on the metrics port
            assert service["spec"]["clusterIP"] == "None"
            assert service["spec"]["ports"][0]["targetPort"] == "metrics"
            assert "ghostpay.io/color" not in service["spec"]["selector"]
    finally:
        _delete_instance(cluster, namespace, check=False)
        cluster.kubectl("delete", "-f", str(MONITORING_CRDS), "--ignore-not-found", check=False)


async def test_a_real_prometheus_scrapes_the_operator_as_job_ghostpay_operator(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str, tmp_path: Path
) -> None:
    """monitoring/prometheus/scrape-operator.yaml's job (its Kubernetes discovery and the relabelling that reads it
    swapped for the operator process's address) scrapes the operator; the rules load, and the instance's last
    reconcile is there for GhostPayOperatorNotReconciling, which stays quiet."""
    create_database_secret(cluster, namespace)
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace))
    await asyncio.to_thread(wait_for, lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
    config = yaml.safe_load((REPO / "monitoring/prometheus/scrape-operator.yaml").read_text())
    (job,) = config["scrape_configs"]
    target = metrics_url(operator).removeprefix("http://").removesuffix("/metrics")
    static = {key: value for key, value in job.items() if key not in ("kubernetes_sd_configs", "relabel_configs")}
    config = {
        **config,
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{**static, "static_configs": [{"targets": [target]}]}],
    }
    shutil.copy(REPO / "monitoring/prometheus/rules.yaml", tmp_path / "rules.yaml")
    server = start_prometheus(tmp_path, config_text=yaml.safe_dump(config))
    try:
        selector = f'job="ghostpay-operator",resource_namespace="{namespace}",resource_name="payments"'
        last = await _eventually(server.url, f"ghostpay_operator_last_reconcile_timestamp_seconds{{{selector}}}")
        assert last > time.time() - 120
        assert await analysis.value(server.url, 'up{job="ghostpay-operator"}') == 1.0
        alert = next(
            rule["expr"]
            for group in yaml.safe_load((tmp_path / "rules.yaml").read_text())["groups"]
            for rule in group["rules"]
            if rule.get("alert") == "GhostPayOperatorNotReconciling"
        )
        assert await analysis.value(server.url, alert) is None  # quiet: an empty answer
    finally:
        server.stop()
        _delete_instance(cluster, namespace, check=False)


async def _eventually(url: str, query: str, timeout: float = 60.0) -> float:
    """The value of `query` once Prometheus has one (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await analysis.value(url, query)
        if found is not None:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"no value for {query} within {timeout:.0f} s")


def _delete_instance(cluster: localcluster.Cluster, namespace: str, check: bool = True) -> None:
    """`kubectl delete` of the instance, waiting (60 s at most) until the operator has let it go."""
    delete = ("delete", "ghostpay", "payments", "-n", namespace, "--wait=true", "--timeout=60s")
    cluster.kubectl(*delete, check=check, timeout=90)  # kubectl's own timeout first: an answer, not a hang
