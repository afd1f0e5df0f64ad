"""The builders, table-driven: what each child looks like for a given spec, with no cluster."""

from __future__ import annotations

from typing import Any

import pytest

from ghostpay_operator import release
from ghostpay_operator import spec as specs
from ghostpay_operator.builders import desired, meta, names, networking, workloads
from tests.operator.support.samples import body


def _children(**changes: Any) -> desired.Desired:
    return desired.desired_children(specs.parse(body(**changes)), release.steady("blue"))


def _by_kind_name(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def test_an_instance_owns_four_services_each_with_deployment_service_and_budget() -> None:
    children = _children()
    names = _by_kind_name(children.supporting + children.routing + children.deployments)
    for service in specs.SERVICES:
        assert ("Deployment", f"payments-{service}-blue") in names
        assert ("Service", f"payments-{service}") in names
        assert ("PodDisruptionBudget", f"payments-{service}") in names
    assert ("ServiceAccount", "payments") in names and ("ConfigMap", "payments-config") in names
    everything = [*children.supporting, *children.routing, *children.deployments, children.migration]
    for manifest in everything:
        owner = manifest["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "GhostPayInstance",
            "payments",
            "uid-1",
            True,
        )
        assert manifest["metadata"]["namespace"] == "shop"
        assert manifest["metadata"]["annotations"][meta.SPEC_HASH]


@pytest.mark.parametrize(
    ("changes", "service", "replicas"),
    [
        ({}, "cards", 2),
        ({"services": {"cards": {"replicas": 5}}}, "cards", 5),
        ({"services": {"cards": {"replicas": 5}}}, "auth", 2),
        ({"availability": {"minReplicas": 3}}, "charges", 3),
    ],
)
def test_replicas_default_to_the_minimum(changes: dict[str, Any], service: str, replicas: int) -> None:
    deployment = _by_kind_name(_children(**changes).deployments)[("Deployment", f"payments-{service}-blue")]
    assert deployment["spec"]["replicas"] == replicas


def test_pods_are_spread_over_zones_and_hosts_and_hardened() -> None:
    deployment = _children(availability={"zones": 3}).deployments[0]
    pod = deployment["spec"]["template"]["spec"]
    zone, host = pod["topologySpreadConstraints"]
    assert (zone["topologyKey"], zone["whenUnsatisfiable"], zone["minDomains"]) == (
        "topology.kubernetes.io/zone",
        "DoNotSchedule",
        3,
    )
    assert host["topologyKey"] == "kubernetes.io/hostname"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert container["image"] == "ghcr.io/example/ghostpay:1.4.0"
    dsn = container["env"][0]
    assert dsn["valueFrom"]["secretKeyRef"] == {"name": "payments-db", "key": "dsn"}


def test_services_route_to_the_active_color_and_budgets_keep_one_up() -> None:
    parsed = specs.parse(body())
    assert networking.service(parsed, "cards", "green")["spec"]["selector"][meta.COLOR_LABEL] == "green"
    budget = networking.disruption_budget(parsed, "cards")
    assert budget["spec"]["minAvailable"] == 1
    assert meta.COLOR_LABEL not in budget["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize(
    ("change", "rolls_pods"),
    [
        ({"version": "1.5.0"}, True),
        ({"podAnnotations": {"team": "payments"}}, True),
        ({"rateLimits": {"merchant": {"requestsPerSecond": 5, "burst": 5}}}, False),  # live, through Redis
        ({"services": {"cards": {"replicas": 4}}}, False),
    ],
)
def test_pod_template_changes_are_what_start_a_rollout(change: dict[str, Any], rolls_pods: bool) -> None:
    before = _by_kind_name(_children().deployments)[("Deployment", "payments-cards-blue")]
    after = _by_kind_name(_children(**change).deployments)[("Deployment", "payments-cards-blue")]
    assert (before["spec"]["template"] != after["spec"]["template"]) is rolls_pods
    assert before["metadata"]["annotations"][meta.SPEC_HASH] != after["metadata"]["annotations"][meta.SPEC_HASH] or (
        change.get("services", {}).get("cards") is None
    )


def test_the_same_spec_always_builds_the_same_hashes() -> None:
    first, second = _children(), _children()
    assert [m["metadata"]["annotations"][meta.SPEC_HASH] for m in first.deployments] == [
        m["metadata"]["annotations"][meta.SPEC_HASH] for m in second.deployments
    ]


def test_one_migration_job_per_image() -> None:
    parsed = specs.parse(body())
    newer = specs.parse(body(version="1.5.0"))
    assert names.migration_job(parsed) == names.migration_job(specs.parse(body()))
    assert names.migration_job(parsed) != names.migration_job(newer)
    job = workloads.migration_job(parsed)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["ghostpay", "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def _plan_for(share_green: float, selects: str | None, new: str | None = "green") -> release.Plan:
    return release.Plan(
        stable_color="blue",
        share={"blue": 1.0 if share_green in (0.0, 1.0) else 1 - share_green, "green": share_green},
        new_template_color=new,  # type: ignore[arg-type]
        service_selects=selects,  # type: ignore[arg-type]
        preview_selects="green",
        release=None,
        phase="Progressing",
        reason="r",
        message="m",
    )


def test_blue_green_runs_the_new_template_on_the_new_color_and_previews_it() -> None:
    children = desired.desired_children(specs.parse(body(version="2.0.0")), _plan_for(1.0, "blue"))
    deployments = _by_kind_name(children.deployments)
    assert ("Deployment", "payments-cards-green") in deployments and (
        "Deployment",
        "payments-cards-blue",
    ) not in deployments
    assert deployments[("Deployment", "payments-cards-green")]["spec"]["template"]["spec"]["containers"][0][
        "image"
    ].endswith(":2.0.0")
    assert children.scale["payments-cards-blue"] == 2  # the stable colour keeps its template, only sized
    routing = _by_kind_name(children.routing)
    assert routing[("Service", "payments-cards")]["spec"]["selector"][meta.COLOR_LABEL] == "blue"
    assert routing[("Service", "payments-cards-preview")]["spec"]["selector"][meta.COLOR_LABEL] == "green"


@pytest.mark.parametrize(("share", "green", "blue"), [(0.1, 1, 1), (0.5, 1, 1), (0.0, 0, 2)])
def test_a_canary_step_splits_each_service_and_selects_both_colors(share: float, green: int, blue: int) -> None:
    children = desired.desired_children(specs.parse(body(version="2.0.0")), _plan_for(share, None))
    green_cards = _by_kind_name(children.deployments)[("Deployment", "payments-cards-green")]
    assert (green_cards["spec"]["replicas"], children.scale["payments-cards-blue"]) == (green, blue)
    selector = _by_kind_name(children.routing)[("Service", "payments-cards")]["spec"]["selector"]
    assert meta.COLOR_LABEL not in selector


def test_a_rollback_only_resizes_both_colors() -> None:
    plan = release.Plan(
        stable_color="blue",
        share={"blue": 1.0, "green": 0.0},
        new_template_color=None,
        service_selects="blue",
        preview_selects=None,
        release=None,
        phase="RolledBack",
        reason="r",
        message="m",
    )
    children = desired.desired_children(specs.parse(body(version="2.0.0")), plan)
    assert children.deployments == []
    assert children.scale["payments-cards-blue"] == 2 and children.scale["payments-cards-green"] == 0


@pytest.mark.parametrize("plan", [release.steady("blue"), _plan_for(1.0, "blue"), _plan_for(0.5, None)])
def test_finding_9e_metrics_have_their_own_port_which_no_service_exposes(plan: release.Plan) -> None:
    children = desired.desired_children(specs.parse(body(version="2.0.0")), plan)
    for deployment in children.deployments:
        template = deployment["spec"]["template"]
        container = template["spec"]["containers"][0]
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8000, "metrics": 9090}
        assert {"name": "GHOSTPAY_METRICS_PORT", "value": "9090"} in container["env"]
        assert container["readinessProbe"]["httpGet"]["port"] == "http"
        annotations = template["metadata"]["annotations"]
        assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"]) == ("true", "9090")
    services = [m for m in [*children.routing, *children.supporting] if m["kind"] == "Service"]
    assert services, "no Service built"
    for service in services:  # the public ones and the previews alike
        ports = [(p["name"], p["targetPort"]) for p in service["spec"]["ports"]]
        assert ports == [("http", "http")], service["metadata"]["name"]


def test_pod_annotations_can_override_the_scrape_annotations() -> None:
    deployment = _children(podAnnotations={"prometheus.io/scrape": "false"}).deployments[0]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "false"


@pytest.mark.parametrize("service", specs.SERVICES)
def test_stopping_pods_leave_the_endpoints_before_they_stop_serving(service: str) -> None:
    """Endpoints removed before SIGTERM: a preStop sleep of two readiness periods (every kube-proxy has dropped
    the pod by then), a graceful shutdown the server is told about, and a grace period covering both."""
    [deployment] = [
        d for d in _children().deployments if d["metadata"]["labels"]["app.kubernetes.io/component"] == service
    ]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    probe = container["readinessProbe"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    shutdown = int(env["GHOSTPAY_SHUTDOWN_TIMEOUT_SECONDS"])
    assert pre_stop >= 2 * probe["periodSeconds"]
    assert shutdown >= probe["periodSeconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + shutdown
    assert (pre_stop, shutdown, pod["terminationGracePeriodSeconds"]) == (10, 10, 25)
