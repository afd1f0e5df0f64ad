"""The Prometheus Operator's objects for an instance: the rule is monitoring/prometheus/rules.yaml itself, and the
ServiceMonitor selects exactly the metrics Services, which reach both colours' pods on the metrics port."""

from __future__ import annotations

from pathlib import Path

import yaml

from ghostpay_operator import spec as specs
from ghostpay_operator.builders import meta, monitoring, pods, workloads
from tests.operator.support.samples import body

REPO = Path(__file__).resolve().parents[4]


def test_the_prometheus_rule_is_the_repositorys_rules_file() -> None:
    rules = yaml.safe_load((REPO / "monitoring/prometheus/rules.yaml").read_text())
    rule = monitoring.prometheus_rule(specs.parse(body()))
    assert rule["spec"]["groups"] == rules["groups"]
    packaged = REPO / "operator/ghostpay_operator/monitoring/rules.yaml"
    assert packaged.is_symlink() and packaged.resolve() == (REPO / "monitoring/prometheus/rules.yaml").resolve()


def test_the_service_monitor_selects_the_metrics_services_of_both_colours() -> None:
    spec = specs.parse(body())
    made = monitoring.monitoring(spec)
    services = [m for m in made if m["kind"] == "Service"]
    monitor = next(m for m in made if m["kind"] == "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert len(services) == len(specs.SERVICES)
    for service in services:
        assert selector.items() <= service["metadata"]["labels"].items()
        assert service["spec"]["clusterIP"] == "None" and meta.COLOR_LABEL not in service["spec"]["selector"]
        assert service["spec"]["ports"] == [
            {"name": "metrics", "port": pods.METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}
        ]
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    for manifest in made:
        assert meta.SPEC_HASH in manifest["metadata"]["annotations"]
        assert manifest["metadata"]["ownerReferences"] == [meta.owner_reference(spec)]
    # the pods keep their scrape annotations either way (changing them would roll every pod)
    pod = workloads.deployment(spec, "cards", "blue", 2)["spec"]["template"]
    assert workloads.SCRAPE_ANNOTATIONS.items() <= pod["metadata"]["annotations"].items()
