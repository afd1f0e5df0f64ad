"""Releases on the local control plane: blue-green to a healthy version without ever losing ready endpoints,
blue-green to a version that never becomes ready (rolled back by the deadline), canary steps, and releases that
fail analysis against a real Prometheus: on their 5xx share, and on what they do to payments."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghostpay_devtools import localcluster
from ghostpay_operator import analysis
from ghostpay_operator import spec as specs
from tests.conftest import ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS, Api
from tests.operator.support.kube_helpers import (
    SETTLE,
    condition,
    create_database_secret,
    get_json,
    healthy_instance,
    install_crds,
    instance_events,
    instance_yaml,
    live_deployments,
    metrics_url,
    operator_process,
    scrape,
    wait_for,
)
from tests.operator.support.prometheus import FAULTY, Traffic, start_prometheus, wait_for_data
from tests.support import procs
from tests.support.servers import Servers

pytestmark = pytest.mark.slow
SERVICES = specs.SERVICES
FAST = {"progressDeadlineSeconds": 20, "scaleDownDelaySeconds": 5, "stepSeconds": 4}


@pytest.fixture(scope="module")
def operator(cluster: localcluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[procs.Proc]:
    install_crds(cluster)
    proc = operator_process(cluster, tmp_path_factory.mktemp("operator"), GHOSTPAY_OPERATOR_RESYNC_SECONDS="2").start()
    yield proc
    proc.stop()


class EndpointWatch:
    """Polls every Service's EndpointSlices in the background and keeps the fewest ready endpoints seen."""

    def __init__(self, cluster: localcluster.Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.fewest = {name: 10**6 for name in SERVICES}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _ready(self) -> dict[str, int]:
        slices = get_json(self.cluster, "endpointslices", "-n", self.namespace)["items"]
        counts = dict.fromkeys(SERVICES, 0)
        for item in slices:
            owner = item["metadata"].get("labels", {}).get("kubernetes.io/service-name", "")
            service = owner.removeprefix("payments-")
            if service in counts:
                counts[service] += sum(1 for e in item.get("endpoints") or [] if e["conditions"].get("ready"))
        return counts

    def _run(self) -> None:
        deadline = time.monotonic() + 600
        while not self._stop.is_set() and time.monotonic() < deadline:
            for name, count in self._ready().items():
                self.fewest[name] = min(self.fewest[name], count)
            self.samples += 1
            self._stop.wait(0.3)

    def __enter__(self) -> EndpointWatch:
        # Endpoints trail pod readiness a little: start from a steady state where every Service is fully served.
        wait_for(lambda: min(self._ready().values()) >= 2, 60, "every Service to have its ready endpoints")
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _install(cluster: localcluster.Cluster, namespace: str, **spec: Any) -> dict[str, Any]:
    create_database_secret(cluster, namespace)
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, release=FAST, **spec))
    return wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")


def _upgrade(cluster: localcluster.Cluster, namespace: str, release: dict[str, Any] = FAST, **spec: Any) -> None:
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, release=release, **spec))


def _wait_scaled_down(cluster: localcluster.Cluster, namespace: str, color: str, what: str) -> None:
    """Every Deployment of `color` at zero replicas (bounded)."""
    wait_for(
        lambda: all(
            d["spec"]["replicas"] == 0
            for n, d in live_deployments(cluster, namespace).items()
            if n.endswith(f"-{color}")
        ),
        60,
        what,
    )


def test_blue_green_to_a_healthy_version(operator: procs.Proc, cluster: localcluster.Cluster, namespace: str) -> None:
    _install(cluster, namespace)
    after_switch = []  # (activeColor, activeVersion) while the old colour still waits out its scale-down delay

    def completed() -> dict[str, Any] | None:
        status = _instance(cluster, namespace)["status"]
        if status.get("release", {}).get("switched_at"):
            after_switch.append((status.get("activeColor"), status.get("activeVersion")))
        return (i := healthy_instance(cluster, namespace)) and i["status"].get("activeColor") == "green" and i

    with EndpointWatch(cluster, namespace) as watch:
        _upgrade(cluster, namespace, version="0.2.0")
        done = wait_for(completed, SETTLE, "the release to complete", interval=0.5)
        _wait_scaled_down(cluster, namespace, "blue", "the old colour to scale down")
    assert watch.samples > 5 and min(watch.fewest.values()) >= 2, watch.fewest  # availability.minReplicas
    assert "release" not in _instance(cluster, namespace)["status"]  # the finished release's record is cleared
    status = done["status"]
    assert (status["activeVersion"], status["previousVersion"], status["activeColor"]) == ("0.2.0", "0.1.0", "green")
    assert after_switch and set(after_switch) == {("green", "0.2.0")}  # the status follows traffic at the switch
    green = live_deployments(cluster, namespace)["payments-cards-green"]
    assert green["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":0.2.0")
    instance_events(cluster, namespace, "ReleaseStarted", "Switched", "ReleaseComplete")


def test_blue_green_to_an_unready_version_rolls_back(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str
) -> None:
    _install(cluster, namespace)
    with EndpointWatch(cluster, namespace) as watch:
        unready = {"ghostpay.io/simulate": "unready"}  # never ready: a short deadline suffices
        _upgrade(cluster, namespace, {**FAST, "progressDeadlineSeconds": 10}, version="0.3.0", podAnnotations=unready)

        def rolled_back() -> dict[str, Any] | None:
            instance = get_json(cluster, "ghostpayinstance", "payments", "-n", namespace)
            return instance if instance["status"].get("phase") == "RolledBack" else None

        instance = wait_for(rolled_back, SETTLE, "the rollback")
        _wait_scaled_down(cluster, namespace, "green", "the new colour to scale down")
    assert min(watch.fewest.values()) >= 2, watch.fewest  # the stable colour never lost its endpoints
    degraded = condition(instance, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ProgressDeadlineExceeded")
    assert "0.3.0" in degraded["message"]
    assert (instance["status"]["activeVersion"], instance["status"]["activeColor"]) == ("0.1.0", "blue")
    time.sleep(4)  # it stays rolled back while the spec is unchanged
    assert get_json(cluster, "ghostpayinstance", "payments", "-n", namespace)["status"]["phase"] == "RolledBack"

    # Back to the stable version: immediate.
    _upgrade(cluster, namespace, version="0.1.0")
    healthy = wait_for(lambda: healthy_instance(cluster, namespace), 60, "Healthy again")
    assert healthy["status"]["activeColor"] == "blue"


def test_canary_steps_move_a_share_of_pods(operator: procs.Proc, cluster: localcluster.Cluster, namespace: str) -> None:
    canary = {**FAST, "strategy": "Canary", "canarySteps": [10, 50, 100], "stepSeconds": 6}
    create_database_secret(cluster, namespace)
    cluster.kubectl(
        "apply", "-f", "-", input=instance_yaml(namespace, release=canary, services={"cards": {"replicas": 4}})
    )
    wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=instance_yaml(namespace, version="0.2.0", release=canary, services={"cards": {"replicas": 4}}),
    )
    seen: set[tuple[int, int]] = set()
    at_last_step: set[tuple[str, int, str]] = set()  # (activeColor, readyReplicas, Ready) at the 100 % step
    restarted = []

    def finished() -> bool:
        deployments = live_deployments(cluster, namespace)
        green = deployments.get("payments-cards-green", {}).get("spec", {}).get("replicas", 0)
        blue = deployments["payments-cards-blue"]["spec"]["replicas"]
        seen.add((green, blue))
        instance = _instance(cluster, namespace)
        status = instance["status"]
        if status.get("release", {}).get("step") == 2:
            at_last_step.add((status["activeColor"], status["readyReplicas"], condition(instance, "Ready")["status"]))
        if (green, blue) == (1, 3) and not restarted:  # the operator dies at the first canary step
            operator.kill()
            operator.start()
            restarted.append(True)
        instance = healthy_instance(cluster, namespace)
        return bool(instance and instance["status"]["activeColor"] == "green")

    wait_for(finished, SETTLE, "the canary to complete", interval=0.5)
    assert {(1, 3), (2, 2), (4, 0)} <= seen, seen  # 10 % (at least one pod), 50 %, 100 % of 4 cards pods
    assert restarted  # and the canary went on after the operator's restart
    # All on the new colour but not yet promoted: it is the active one, and its ready pods count (10 in all).
    assert ("green", 10, "True") in at_last_step, at_last_step
    selector = get_json(cluster, "service", "payments-cards", "-n", namespace)["spec"]["selector"]
    assert selector["ghostpay.io/color"] == "green"


def _instance(cluster: localcluster.Cluster, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(cluster, "ghostpayinstance", "payments", "-n", namespace)
    return found


def test_manual_promotion_waits_for_the_annotation(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str
) -> None:
    manual = {**FAST, "autoPromotion": False, "progressDeadlineSeconds": 600}
    create_database_secret(cluster, namespace)
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, release=manual))
    wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, version="0.2.0", release=manual))
    paused = wait_for(
        lambda: (
            (i := _instance(cluster, namespace))
            and condition(i, "Progressing").get("reason") == "WaitingForPromotion"
            and i
        ),
        SETTLE,
        "the pause",
    )
    assert paused["status"]["activeColor"] == "blue"
    service = get_json(cluster, "service", "payments-cards", "-n", namespace)["spec"]["selector"]
    assert service["ghostpay.io/color"] == "blue"
    preview = get_json(cluster, "service", "payments-cards-preview", "-n", namespace)["spec"]["selector"]
    assert preview["ghostpay.io/color"] == "green"

    cluster.kubectl("annotate", "ghostpay", "payments", "-n", namespace, "ghostpay.io/promote=true")
    done = wait_for(
        lambda: (i := healthy_instance(cluster, namespace)) and i["status"]["activeColor"] == "green" and i,
        SETTLE,
        "the promotion",
    )
    assert done["status"]["activeVersion"] == "0.2.0"
    assert "ghostpay.io/promote" not in (_instance(cluster, namespace)["metadata"].get("annotations") or {})


def test_abort_rolls_back_at_once(operator: procs.Proc, cluster: localcluster.Cluster, namespace: str) -> None:
    patient = {**FAST, "progressDeadlineSeconds": 600}
    create_database_secret(cluster, namespace)
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, release=patient))
    wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=instance_yaml(
            namespace, version="0.3.0", release=patient, podAnnotations={"ghostpay.io/simulate": "unready"}
        ),
    )
    wait_for(lambda: _instance(cluster, namespace)["status"].get("release"), 60, "the release to start")
    cluster.kubectl("annotate", "ghostpay", "payments", "-n", namespace, "ghostpay.io/abort=true")
    rolled = wait_for(
        lambda: (i := _instance(cluster, namespace))["status"].get("phase") == "RolledBack" and i, 60, "the abort"
    )
    assert condition(rolled, "Degraded")["reason"] == "Aborted"
    assert rolled["status"]["activeColor"] == "blue"
    wait_for(
        lambda: "ghostpay.io/abort" not in (_instance(cluster, namespace)["metadata"].get("annotations") or {}),
        30,
        "the abort annotation to be consumed",
    )


def test_a_release_survives_the_operator_dying_in_each_phase(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str
) -> None:
    slow = {**FAST, "scaleDownDelaySeconds": 15}
    create_database_secret(cluster, namespace)
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, release=slow))
    wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
    with EndpointWatch(cluster, namespace) as watch:
        cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, version="0.2.0", release=slow))
        # Killed while the new colour comes up.
        wait_for(lambda: _instance(cluster, namespace)["status"].get("release"), 60, "the release to start", 0.2)
        operator.kill()
        operator.start()
        # Killed after the switch, while the old colour waits to be scaled down.
        wait_for(
            lambda: condition(_instance(cluster, namespace), "Progressing").get("reason") == "ScalingDown",
            SETTLE,
            "the switch",
            0.3,
        )
        operator.kill()
        assert any(
            d["spec"]["replicas"] > 0 for n, d in live_deployments(cluster, namespace).items() if n.endswith("-blue")
        )
        operator.start()
        done = wait_for(
            lambda: (i := healthy_instance(cluster, namespace)) and i["status"]["activeColor"] == "green" and i,
            SETTLE,
            "the release to finish after the restarts",
        )
        _wait_scaled_down(cluster, namespace, "blue", "the old colour to scale down")
    assert (done["status"]["activeVersion"], done["status"]["previousVersion"]) == ("0.2.0", "0.1.0")
    assert min(watch.fewest.values()) >= 2, watch.fewest


def test_a_canary_failing_analysis_rolls_back(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str, tmp_path: Path
) -> None:
    """A real Prometheus scrapes a metrics endpoint where version 3.0.0 answers 20 % 5xx (KWOK pods serve
    nothing, so this endpoint stands in for the new pods' metrics)."""
    traffic = Traffic()
    server = start_prometheus(tmp_path, traffic.port)
    try:
        asyncio.run(wait_for_data(server.url, FAULTY))
        checked = {
            **FAST,
            "strategy": "Canary",
            "canarySteps": [50, 100],
            "progressDeadlineSeconds": 120,
            "analysis": {"prometheusUrl": server.url, "maxErrorRate": 0.05},
        }
        create_database_secret(cluster, namespace)
        cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, release=checked))
        wait_for(lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance")
        cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, version=FAULTY, release=checked))
        rolled = wait_for(
            lambda: (i := _instance(cluster, namespace))["status"].get("phase") == "RolledBack" and i,
            SETTLE,
            "the analysis to roll the canary back",
        )
    finally:
        server.stop()
        traffic.stop()
    degraded = condition(rolled, "Degraded")
    assert (degraded["reason"], rolled["status"]["activeColor"]) == ("AnalysisFailed", "blue")
    assert FAULTY in degraded["message"] and "0.05" in degraded["message"]


class Payments:
    """Real charges on two real `ghostpay serve charges` processes sharing the test database: the stable version
    (STABLE) approves a fresh card per charge, the new one (DECLINING) runs GHOSTPAY_FAULT=decline-charges and
    declines every charge with 402 — never a 5xx. A background thread charges both every 0.2 s, bounded in count
    and time."""

    STABLE, DECLINING = "0.1.0", "0.4.0"

    def __init__(self, env: dict[str, str], logs: Path, cards: list[str], headers: dict[str, str]) -> None:
        faulty = {**env, "GHOSTPAY_ENVIRONMENT": "development", "GHOSTPAY_FAULT": "decline-charges"}
        self.stable = procs.serve("charges", {**env, "GHOSTPAY_VERSION": self.STABLE}, logs)
        self.declining = procs.serve("charges", {**faulty, "GHOSTPAY_VERSION": self.DECLINING}, logs)
        self.cards, self.headers = cards, headers
        self.statuses: dict[str, list[int]] = {self.STABLE: [], self.DECLINING: []}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="payments", daemon=True)

    @property
    def metrics_ports(self) -> list[int]:
        return [int(p.env["GHOSTPAY_METRICS_PORT"]) for p in (self.stable, self.declining)]

    def _charge(self, http: httpx.Client, proc: procs.Proc, version: str, card: str) -> None:
        body = {"card_id": card, "amount": 100, "currency": "USD"}
        self.statuses[version].append(http.post(f"{proc.url}/charges", json=body, headers=self.headers).status_code)

    def _run(self) -> None:
        deadline = time.monotonic() + 420
        with httpx.Client(timeout=10.0) as http:
            for tick in range(2000):
                if self._stop.wait(0.2) or time.monotonic() > deadline:
                    return
                if tick < len(self.cards):  # a fresh card each time: the stable version approves it
                    self._charge(http, self.stable, self.STABLE, self.cards[tick])
                self._charge(http, self.declining, self.DECLINING, self.cards[tick % len(self.cards)])

    def __enter__(self) -> Payments:
        self.stable.spawn()
        self.declining.spawn()
        self.stable.wait_ready(procs.READY_TIMEOUT)
        self.declining.wait_ready(procs.READY_TIMEOUT)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.stable.stop()
        self.declining.stop()


async def test_a_version_declining_valid_charges_fails_analysis_and_rolls_back_without_any_5xx(
    operator: procs.Proc,
    cluster: localcluster.Cluster,
    namespace: str,
    tmp_path: Path,
    api: Api,
    servers: Servers,
    database_url: str,
    keys_dir: Path,
) -> None:
    """Issue 13's payment-aware analysis: a real Prometheus scrapes two real charges processes standing in for the
    two colours' pods (KWOK pods serve nothing), the stable version approving and the new one declining every
    charge (the test-only fault switch). Its 5xx share is 0, so only the decline check can stop it: the blue-green
    preview fails analysis, the release rolls back, and the operator's /metrics count the rollback."""
    merchant = await api.merchant()
    cards = [(await api.issue_card(merchant["headers"], amount=100))["card_id"] for _ in range(250)]
    env = procs.service_env(database_url, servers.redis_url, keys_dir, ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS)
    (tmp_path / "payments").mkdir()
    with Payments(env, tmp_path / "payments", cards, merchant["headers"]) as payments:
        server = start_prometheus(tmp_path / "prometheus", *payments.metrics_ports)
        try:
            assert await wait_for_data(server.url, Payments.DECLINING) == 0.0  # no 5xx at all
            checked = {**FAST, "progressDeadlineSeconds": 120, "analysis": {"prometheusUrl": server.url}}
            create_database_secret(cluster, namespace)
            cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, release=checked))
            await asyncio.to_thread(
                wait_for, lambda: healthy_instance(cluster, namespace), SETTLE, "a Healthy instance"
            )
            _upgrade(cluster, namespace, release=checked, version=Payments.DECLINING)
            rolled = await asyncio.to_thread(
                wait_for,
                lambda: (i := _instance(cluster, namespace))["status"].get("phase") == "RolledBack" and i,
                SETTLE,
                "the decline check to roll the release back",
            )
            error_rate = await analysis.error_rate(server.url, Payments.DECLINING)
        finally:
            server.stop()
    degraded = condition(rolled, "Degraded")
    assert (degraded["reason"], rolled["status"]["activeColor"]) == ("AnalysisFailed", "blue")
    assert "maxDeclineRateIncrease 0.05" in degraded["message"] and Payments.DECLINING in degraded["message"]
    assert error_rate == 0.0  # the release never answered a 5xx
    assert set(payments.statuses[Payments.DECLINING]) == {402}
    assert set(payments.statuses[Payments.STABLE]) == {201}
    print(
        f"\ncharges: {len(payments.statuses[Payments.STABLE])} approved on {Payments.STABLE}, "
        f"{len(payments.statuses[Payments.DECLINING])} declined on {Payments.DECLINING}"
    )
    scraped = await asyncio.to_thread(scrape, metrics_url(operator))
    who = {"resource_namespace": namespace, "resource_name": "payments"}
    assert scraped.get(("ghostpay_operator_releases_total", frozenset({**who, "outcome": "started"}.items()))) == 1
    assert scraped.get(("ghostpay_operator_releases_total", frozenset({**who, "outcome": "rolled_back"}.items()))) == 1
    failed = {**who, "result": "fail", "check": "decline_rate"}
    assert scraped.get(("ghostpay_operator_analysis_results_total", frozenset(failed.items())), 0) >= 1
