"""The disruption suite (issue 12): releases, rollbacks and failover on kind, measured with real traffic.

One `helm install` of the chart's demo serves every scenario, in order; during each, `traffic.Generator` sends a
steady merchant mix through the NodePorts on 127.0.0.1 (kube-proxy routes each new connection to a pod) while the
test disrupts the cluster; afterwards the demo's PostgreSQL is asked whether every approved charge is there and
none was approved twice. The tests assert counts only; durations go into the report, which the module prints as a
table and writes as JSON (GHOSTPAY_CHAOS_REPORT, default build/chaos/report.json) — `make chaos` runs this module.

Kept short for CI: the instance's releases hold canary steps 20 s (scenario 2's, 12 s) and keep the old colour 10 s;
each scenario's traffic runs for as long as its disruption takes (a hard bound of TRAFFIC_BOUND s). The suite runs
last on the cluster, after the other kind tests (tests/conftest.py), and leaves the demo installed unless the
cluster is kept (GHOSTPAY_TEST_KIND_DIR): the session deletes the cluster next.

The demo is installed with its Prometheus (demo.prometheus.enabled), which points the instance's release analysis
at it; the setup takes the analysis off again, so that every scenario but 3c releases as before (a blue-green
preview gets none of the NodePorts' traffic, so its analysis would have nothing to judge), and 3c puts it back.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ghostpay_devtools import kindcluster
from ghostpay_operator.handlers import peering_priority
from ghostpay_operator.release import canary_replicas
from ghostpay_operator.spec import SERVICES
from tests.helm import helm
from tests.image import docker
from tests.kind import chaos
from tests.kind.chaos import NAMESPACE, Report, Row
from tests.kind.conftest import KindTestCluster
from tests.kind.traffic import (
    PORTS,
    RETRIES,
    TIMEOUT,
    Attempt,
    Generator,
    Traffic,
    merchant_credentials,
    settle_given_up,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SETTLE = 420.0  # the first install: migration, then the pods start and pass their probes
RELEASE = 420.0  # a release on this (busy, two-core) machine: a colour's pods start and turn Ready
TRAFFIC_BOUND = 600.0
CANARY_REPLICAS = 4  # charges' pods during the canary, so that its first step (10%) is 1 pod of 4
CANARY_TOLERANCE = 0.15  # measured share of the new version within 15 points of its share of the charges pods
TOLERANCE_POINTS = round(CANARY_TOLERANCE * 100)
RELEASE_SETTINGS = {"stepSeconds": 20, "scaleDownDelaySeconds": 10, "progressDeadlineSeconds": 300}
CANARY_STEPS = (10, 50, 100)  # the CRD's default canarySteps
CANARY_STEP_SECONDS = 12  # scenario 2's hold per step: 240-400 answers with every pod of the step Ready, in CI
BROKEN_DEADLINE = 45  # a broken version has this long to turn Ready (a healthy one's pods take 10-25 s here)
STABLE = kindcluster.ghostpay_image().split(":")[1]
ANALYSIS_WINDOW = 60.0  # checks.WINDOW, the 1m of every analysis query
RESYNC = 30.0  # the chart's operator passes at least this often (GHOSTPAY_OPERATOR_RESYNC_SECONDS, unset there)
ANALYSED_DEADLINE = 240  # 3c: the canary's pods start (about a minute here), then the analysis has data


# The test-only versions the scenarios release: healthy ones under other tags, and broken ones with a fault switched
# on (the services refuse a fault in production mode).
FAULTS = {
    "never-ready": {"GHOSTPAY_FAULT": "never-ready"},
    # Crashes 2 s after it starts serving: its pods are Ready for a moment at most, then in a crash loop.
    "crash-after-start": {"GHOSTPAY_FAULT": "crash-after-start", "GHOSTPAY_FAULT_DELAY_SECONDS": "2"},
    "charges-5xx": {"GHOSTPAY_FAULT": "charges-5xx"},
}
VERSIONS = {
    **{name: {} for name in ("bluegreen", "canary", "leader")},
    **{name: {**env, "GHOSTPAY_ENVIRONMENT": "development"} for name, env in FAULTS.items()},
}


@dataclass
class Chaos:
    cluster: KindTestCluster
    merchant: dict[str, str]
    report: Report
    prometheus_url: str  # the demo's Prometheus, as the chart set it in spec.release.analysis

    def version(self, name: str) -> str:
        """The test-only version `name` (one of VERSIONS), made in the workers at setup (`chaos.load_images`)."""
        assert name in VERSIONS, name
        return f"{STABLE}-chaos.{name}"


def _demo_images() -> list[str]:
    """The demo's PostgreSQL, Redis and Prometheus images, built (cached) by tools/demo-images/build.sh."""
    built = subprocess.run(
        [str(ROOT / "tools/demo-images/build.sh")], capture_output=True, text=True, timeout=1800, check=False
    )
    assert built.returncode == 0, built.stderr
    return [line for line in built.stdout.split() if "demo-openbao" not in line]


@pytest.fixture(scope="module")
def setup(kind_cluster: KindTestCluster) -> Iterator[Chaos]:
    """The demo installed once, Healthy, with short release settings; a merchant for the traffic. At the end the
    table is printed and written, and the demo uninstalled from a cluster that is kept (GHOSTPAY_TEST_KIND_DIR)."""
    report = Report()
    base = chaos.image_id(docker.build())  # cached: the image with this tree's services (GhostPay-Version)
    _step("the image built", report)
    versions = {f"{STABLE}-chaos.{name}": env for name, env in VERSIONS.items()}
    chaos.load_images(kind_cluster, base, versions, _demo_images())
    _step(f"{len(VERSIONS)} test-only versions made in the workers, the demo's images loaded", report)
    installed = helm.run(
        "install", "ghostpay", str(helm.CHART), "-n", NAMESPACE, "--create-namespace", "--set", "demo.enabled=true",
        "--set", "demo.prometheus.enabled=true",
        *(f"--set=demo.nodePorts.{service}={port}" for service, port in PORTS.items()),
        kubeconfig=kind_cluster.kubeconfig,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    try:
        chaos.wait(lambda: chaos.settled(kind_cluster, STABLE), SETTLE, "the demo instance Healthy")
        _step("the demo installed and Healthy", report)
        prometheus_url = chaos.instance(kind_cluster)["spec"]["release"]["analysis"]["prometheusUrl"]
        # The CRD's defaults (BlueGreen, no analysis) under every scenario but 3c, which sets its own.
        chaos.patch_spec(kind_cluster, {"release": {**RELEASE_SETTINGS, "strategy": "BlueGreen", "analysis": None}})
        merchant = asyncio.run(merchant_credentials(chaos.admin(kind_cluster), "chaos"))
        yield Chaos(kind_cluster, merchant, report, prometheus_url)
    finally:
        print("\n" + report.table())
        report.write(Path(os.environ.get("GHOSTPAY_CHAOS_REPORT", ROOT / "build/chaos/report.json")))
        if kind_cluster.kept:  # else the cluster itself is deleted next: the suite runs last on it (tests/conftest.py)
            _uninstall(kind_cluster)


def _uninstall(cluster: KindTestCluster) -> None:
    # The instance first, while its operator still runs to remove its finalizer.
    delete = ("delete", "ghostpayinstance", chaos.INSTANCE, "-n", NAMESPACE, "--timeout=180s", "--ignore-not-found")
    cluster.kubectl(*delete, timeout=200)
    helm.run("uninstall", "ghostpay", "-n", NAMESPACE, "--wait", kubeconfig=cluster.kubeconfig, timeout=300)
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--ignore-not-found", timeout=300)


def _step(done: str, report: Report) -> None:
    """A line of progress (the set-up takes minutes): what is done, and the seconds since the suite started."""
    print(f"\nchaos set-up: {done} ({time.monotonic() - report.started:.0f} s)", file=sys.stderr)


def _row(
    setup: Chaos,
    scenario: str,
    traffic: Traffic,
    started: float,
    problems: list[str],
    notes: list[str],
    shares: list[str] | None = None,
) -> Row:
    """The scenario's line in the report: the charges the client gave up on sent again with their keys, the database
    checked, the verdict "met" or what was not."""
    settled = asyncio.run(settle_given_up(traffic, setup.merchant))
    db = chaos.check_database(setup.cluster, traffic)
    doubles = max(traffic.double_approvals, db.double_approved_cards)
    problems = [*problems, *(["approved charges missing in the database"] if db.missing else [])]
    problems += ["a card approved twice"] if doubles else []
    problems += [f"charges given up on, sent again: {dict(settled)}"] if set(settled) - {201, 402} else []
    notes = [
        *notes,
        f"requests the client gave up on after {RETRIES} retries, by kind: {dict(traffic.lost)}",
        f"of them charges, sent again afterwards with their Idempotency-Key: {dict(settled)}",
        f"failed: {dict(traffic.failed_kinds())}",
    ]
    row = Row(
        scenario=scenario,
        sent=traffic.sent,
        failed=traffic.failed,
        double_approvals=doubles,
        versions_seen=dict(traffic.versions),
        verdict="met" if not problems else "NOT MET: " + "; ".join(problems),
        seconds=round(time.monotonic() - started),
        notes=notes,
        shares=shares or [],
    )
    print(f"\n{scenario}: {row}")
    return setup.report.add(row)


def _release(setup: Chaos, version: str, *, extra: dict[str, object] | None = None) -> None:
    chaos.patch_spec(setup.cluster, {"version": version, **(extra or {})})


def test_1_blue_green_release_drops_no_request(setup: Chaos) -> None:
    started = time.monotonic()
    version = setup.version("bluegreen")
    traffic = Generator(setup.merchant, duration=TRAFFIC_BOUND).start()
    time.sleep(5)
    _release(setup, version, extra={"release": {**RELEASE_SETTINGS, "strategy": "BlueGreen"}})
    chaos.wait(lambda: chaos.settled(setup.cluster, version), RELEASE, f"{version} released")
    time.sleep(15)  # past the old colour's scale-down: its pods stop while traffic runs
    result = traffic.stop()
    problems = [f"{result.failed} failed"] if result.failed else []
    if set(result.versions) != {STABLE, version}:
        problems.append(f"versions seen {sorted(result.versions)}")
    row = _row(setup, "1 blue-green release", result, started, problems, [])
    assert (row.failed, row.double_approvals) == (0, 0), row
    assert set(row.versions_seen) == {STABLE, version}, row


def _step_windows(setup: Chaos, traffic: Generator, version: str) -> dict[int, tuple[float, float]]:
    """Each canary step's window of traffic time, as the status tells it: from the first poll at which the operator
    says every pod of the step is Ready (`status.release.step_ready_at`, which also starts the step's hold) to the
    last poll still at that step. Counted otherwise — from the step's start, or from the instance's READY count,
    which adds up the stable colour's pods still ready while the new ones start — a window would hold answers from
    fewer new pods than the step's."""
    windows: dict[int, tuple[float, float]] = {}
    deadline = time.monotonic() + RELEASE
    while time.monotonic() < deadline and not chaos.settled(setup.cluster, version):
        release = (chaos.instance(setup.cluster).get("status") or {}).get("release") or {}
        now = traffic.elapsed()
        if release.get("version") == version and release.get("step_ready_at"):
            step = int(release["step"])
            windows[step] = (windows.get(step, (now, now))[0], now)
        time.sleep(1)
    return windows


def test_2_canary_shares_follow_the_steps(setup: Chaos) -> None:
    started = time.monotonic()
    before = str(chaos.instance(setup.cluster)["spec"]["version"])
    version = setup.version("canary")
    services = {"charges": {"replicas": CANARY_REPLICAS, "nodePort": PORTS["charges"]}}
    chaos.patch_spec(setup.cluster, {"services": services})
    chaos.wait(lambda: chaos.settled(setup.cluster, before), RELEASE, "four charges pods")
    traffic = Generator(setup.merchant, duration=TRAFFIC_BOUND).start()
    time.sleep(5)
    canary = {**RELEASE_SETTINGS, "strategy": "Canary", "stepSeconds": CANARY_STEP_SECONDS}
    _release(setup, version, extra={"release": canary})
    windows = _step_windows(setup, traffic, version)
    time.sleep(15)
    result = traffic.stop()
    problems, notes, shares = [], [], []
    for step, percent in enumerate(CANARY_STEPS):
        start, end = windows.get(step, (0.0, 0.0))
        seen = result.versions_between_kinds(start, end, {"charge", "read"})
        total = sum(seen.values())
        expected = canary_replicas(CANARY_REPLICAS, percent)[0] / CANARY_REPLICAS
        share = seen.get(version, 0) / total if total else 0.0
        shares.append(f"{percent}%: {share:.0%} of {total}")
        notes.append(
            f"step {percent}%: {share:.0%} of {total} charge answers by {version} in the {end - start:.0f} s with "
            f"every pod of the step Ready (pods: {expected:.0%}; tolerance ±{TOLERANCE_POINTS} points)"
        )
        if not total:
            problems.append(f"step {percent}%: no answer while every pod of the step was Ready")
        elif abs(share - expected) > CANARY_TOLERANCE:
            problems.append(f"step {percent}% share {share:.0%}, expected {expected:.0%} ±{TOLERANCE_POINTS} points")
    if result.failed:
        problems.append(f"{result.failed} failed")
    row = _row(setup, "2 canary 10/50/100", result, started, problems, notes, shares)
    chaos.patch_spec(setup.cluster, {"services": {"charges": {"replicas": 2, "nodePort": PORTS["charges"]}}})
    assert (row.failed, row.double_approvals) == (0, 0), row
    assert not problems, notes


BROKEN = {"a never ready": "never-ready", "b crash after start": "crash-after-start"}  # the case -> its version


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_3_broken_versions_roll_back_by_themselves(setup: Chaos, case: str) -> None:
    started = time.monotonic()
    stable = str((chaos.instance(setup.cluster).get("status") or {})["activeVersion"])
    version = setup.version(BROKEN[case])
    traffic = Generator(setup.merchant, duration=TRAFFIC_BOUND).start()
    time.sleep(5)
    settings = {**RELEASE_SETTINGS, "strategy": "BlueGreen", "progressDeadlineSeconds": BROKEN_DEADLINE}
    _release(setup, version, extra={"release": settings})
    # This version's rollback: after 3a the instance is already RolledBack (of 3a's version) until the operator
    # has taken up the new spec, so the phase alone would pass at once.
    chaos.wait(
        lambda: chaos.release_outcome(setup.cluster).get("version") == version
        and chaos.settled(setup.cluster, stable, phase="RolledBack"),
        BROKEN_DEADLINE + RELEASE,
        f"the rollback of {version}",
    )
    time.sleep(5)
    result = traffic.stop()
    outcome = chaos.release_outcome(setup.cluster)
    problems = [f"{result.failed} failed"] if result.failed else []
    if set(result.versions) != {stable}:
        problems.append(f"versions seen {sorted(result.versions)}")
    notes = [f"release {outcome.get('outcome')}: {outcome.get('reason')} ({outcome.get('message')})"]
    row = _row(setup, f"3{case}", result, started, problems, notes)
    assert (outcome.get("version"), outcome.get("outcome")) == (version, "RolledBack"), outcome
    assert (row.failed, row.double_approvals) == (0, 0), row
    assert set(row.versions_seen) == {stable}, row


def test_3c_a_version_answering_5xx_on_charges_is_rolled_back_by_its_analysis(setup: Chaos) -> None:
    """A canary whose charges answer 500 (GHOSTPAY_FAULT=charges-5xx) is Ready and takes its share of traffic: only
    the release analysis (the demo's Prometheus) can stop it. The operator rolls it back by itself, and the failed
    attempts are bounded by the time the analysis can take: see `_analysis_seconds`."""
    started = time.monotonic()
    cluster = setup.cluster
    stable = _active(cluster)
    version = setup.version("charges-5xx")
    replicas = int(chaos.instance(cluster)["spec"]["services"]["charges"].get("replicas", 2))
    new, _ = canary_replicas(replicas, CANARY_STEPS[0])
    share = new / replicas  # of the charges pods, so of the charge attempts (each a new connection)
    traffic = Generator(setup.merchant, duration=TRAFFIC_BOUND).start()
    # Prometheus has found the stable pods (its DNS discovery) before the release starts.
    stable_requests = f'sum(ghostpay_http_requests_total{{version="{stable}"}})'
    chaos.wait(lambda: chaos.prometheus(cluster, stable_requests), 120, "the demo's Prometheus scraping the pods")
    time.sleep(5)
    analysed = {"prometheusUrl": setup.prometheus_url}
    settings = {**RELEASE_SETTINGS, "strategy": "Canary", "progressDeadlineSeconds": ANALYSED_DEADLINE}
    released_at = traffic.elapsed()
    _release(setup, version, extra={"release": {**settings, "analysis": analysed}})
    try:
        chaos.wait(  # this version's rollback, not the RolledBack state a scenario 3 before it left
            lambda: chaos.release_outcome(cluster).get("version") == version
            and chaos.settled(cluster, stable, phase="RolledBack"),
            ANALYSED_DEADLINE + RELEASE,
            f"the rollback of {version}",
        )
        time.sleep(5)
    finally:
        result = traffic.stop()
        chaos.patch_spec(cluster, {"release": {**RELEASE_SETTINGS, "strategy": "BlueGreen", "analysis": None}})
    status = chaos.instance(cluster)["status"]
    outcome = chaos.release_outcome(cluster)
    degraded = next((c for c in status.get("conditions") or [] if c["type"] == "Degraded"), {})
    warnings = [e for e in chaos.events(cluster, "AnalysisFailed") if version in e.get("message", "")]
    failed = [a for a in result.attempts if a.failed]
    broken = [a for a in result.attempts if a.version == version]
    seconds = _analysis_seconds()
    bound = chaos.failure_bound(result, share, seconds)
    problems = []
    # When each happened, in seconds after the release started: set against the release's steps in the events.
    others = Counter(
        f"{a.kind} {a.status} {a.code or a.error} {a.version} at {a.at - released_at:.0f} s"
        for a in failed
        if not _injected(a, version)
    )
    if others:
        problems.append(f"failures other than the broken version's 500 on POST /charges: {dict(others)}")
    if len(failed) > bound:
        problems.append(f"{len(failed)} failed, above the bound {bound}")
    if not failed:
        problems.append("the broken version failed no charge (did it take traffic?)")
    span = f"{broken[0].at - released_at:.0f}-{broken[-1].at - released_at:.0f} s" if broken else "none"
    notes = [
        f"release {outcome.get('outcome')}: {outcome.get('reason')} ({outcome.get('message')})",
        f"failed attempts {len(failed)} (bound {bound}: {share:.0%} of the charge attempts made in {seconds:.0f} s = "
        f"analysis window {ANALYSIS_WINDOW:.0f} s + the operator's resync {RESYNC:.0f} s)",
        f"charge requests failed after every retry: {result.lost}",
        f"answers by {version}: {len(broken)}, {span} after the release started",
    ]
    row = _row(setup, "3c 5xx on charges (canary, analysis)", result, started, problems, notes)
    assert outcome.get("outcome") == "RolledBack" and outcome.get("reason") == "AnalysisFailed", outcome
    assert "maxErrorRate" in str(outcome.get("message")) and version in str(outcome.get("message")), outcome
    assert (degraded.get("status"), degraded.get("reason")) == ("True", "AnalysisFailed"), degraded
    assert warnings and warnings[0]["type"] == "Warning", warnings
    assert row.double_approvals == 0, row
    assert not problems, row


def _injected(attempt: Attempt, version: str) -> bool:
    """The broken version's own failure: POST /charges answered 500 `fault_injected` by a pod of `version`."""
    return (attempt.kind, attempt.status, attempt.code, attempt.version) == ("charge", 500, "fault_injected", version)


def _analysis_seconds() -> float:
    """How long the broken canary can take charges, at most: the analysis window plus one operator pass.

    Once the canary's pods are Ready the operator asks Prometheus on every pass: at the next child event, and at
    least every resync (30 s). Prometheus scrapes every 5 s (demo.prometheus.scrapeInterval), so the 1-minute
    error rate has the broken version's 500s two scrapes (10 s) after its first answers, and the first pass after
    that fails the analysis: within 10 s + one resync of the pods turning Ready, less than the window. The window
    (60 s) is kept as the bound for what happens before (the charges canary pod may turn Ready and take charges
    while another service's canary pod is still starting, and the analysis waits for every pod), plus the one
    resync period a pass may lag. The rollback then points the Services at the stable colour: new connections stop
    reaching the broken pods at once."""
    return ANALYSIS_WINDOW + RESYNC


def _operator_pods(cluster: KindTestCluster) -> list[str]:
    pods = chaos.get(cluster, "pods", "-l", "app.kubernetes.io/name=ghostpay-operator")["items"]
    return [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]


def test_4_the_operator_leader_deleted_mid_release(setup: Chaos) -> None:
    started = time.monotonic()
    version = setup.version("leader")
    pods = _operator_pods(setup.cluster)
    assert len(pods) == 2, pods
    leader = max(pods, key=peering_priority)  # kopf peering: the highest priority is the active one
    traffic = Generator(setup.merchant, duration=TRAFFIC_BOUND).start()
    time.sleep(5)
    _release(setup, version, extra={"release": {**RELEASE_SETTINGS, "strategy": "BlueGreen"}})
    chaos.wait(
        lambda: chaos.release_outcome(setup.cluster).get("version") == version, 60, "the release to start"
    )
    setup.cluster.kubectl("delete", "pod", leader, "-n", NAMESPACE, "--wait=false")
    chaos.wait(lambda: chaos.settled(setup.cluster, version), RELEASE, f"{version} released by the standby")
    time.sleep(15)
    result = traffic.stop()
    problems = [f"{result.failed} failed"] if result.failed else []
    notes = [f"deleted the leader {leader}; operator pods now {_operator_pods(setup.cluster)}"]
    row = _row(setup, "4 operator leader deleted", result, started, problems, notes)
    assert (row.failed, row.double_approvals) == (0, 0), row


def _service_pods(cluster: KindTestCluster) -> list[dict[str, Any]]:
    pods = chaos.get(cluster, "pods", "-l", f"app.kubernetes.io/instance={chaos.INSTANCE}")["items"]
    return [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/component") in SERVICES]


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod["status"].get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_5_a_drained_worker_moves_its_pods_without_a_failed_request(setup: Chaos) -> None:
    started = time.monotonic()
    cluster = setup.cluster
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"]
    zones = {
        n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"]
        for n in nodes
        if "topology.kubernetes.io/zone" in n["metadata"]["labels"]
    }
    # Never the node of the demo's PostgreSQL or Redis: one pod each, data in an emptyDir (lost if it moved).
    stateful = {
        p["spec"].get("nodeName")
        for name in (f"{chaos.INSTANCE}-postgres", f"{chaos.INSTANCE}-redis")
        for p in chaos.get(cluster, "pods", "-l", f"app.kubernetes.io/name={name}")["items"]
    }
    candidates = sorted((list(zones.values()).count(zones[n]) < 2, n) for n in zones if n not in stateful)
    assert candidates, f"every worker holds the demo's PostgreSQL or Redis: {sorted(stateful)}"
    alone_in_zone, node = candidates[0]
    traffic = Generator(setup.merchant, duration=TRAFFIC_BOUND).start()
    time.sleep(5)
    notes = [f"drained {node} ({zones[node]}); workers per zone: {dict(Counter(zones.values()))}"]
    try:
        # kubectl drain evicts through the Eviction API: each service's PodDisruptionBudget is honoured.
        cluster.kubectl(
            "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=300s", timeout=330
        )
        if alone_in_zone:
            notes.append(f"{zones[node]} has no other worker: DoNotSchedule zone spread keeps replacements Pending")
            time.sleep(20)
        else:
            chaos.wait(
                lambda: all(_ready(p) for p in _service_pods(cluster)) and len(_service_pods(cluster)) == 8,
                RELEASE,
                "every service pod Ready on the remaining nodes",
            )
        time.sleep(5)
        result = traffic.stop()
        pods = _service_pods(cluster)
    finally:
        cluster.kubectl("uncordon", node)
    problems = [f"{result.failed} failed"] if result.failed else []
    on_drained = [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == node]
    if on_drained:
        problems.append(f"pods still on {node}: {on_drained}")
    placed = [p for p in pods if p["spec"].get("nodeName")]
    if not all(_ready(p) for p in placed):
        problems.append("a pod on the remaining nodes is not Ready")
    for service in SERVICES:
        served = {zones.get(p["spec"]["nodeName"]) for p in placed if _component(p) == service and _ready(p)}
        notes.append(f"{service}: Ready in {sorted(z for z in served if z)}")
        if not served:
            problems.append(f"{service} has no Ready pod")
        elif not alone_in_zone and served != {"zone-a", "zone-b"}:
            problems.append(f"{service} served only from {sorted(z for z in served if z)}")
    row = _row(setup, "5 worker drained", result, started, problems, notes)
    chaos.wait(lambda: chaos.settled(cluster, _active(cluster)), RELEASE, "the instance Healthy again")
    assert (row.failed, row.double_approvals) == (0, 0), row
    assert not problems, notes


def _component(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["labels"].get("app.kubernetes.io/component"))


def _active(cluster: KindTestCluster) -> str:
    return str((chaos.instance(cluster).get("status") or {}).get("activeVersion"))


def _restart(cluster: KindTestCluster, name: str, command: list[str]) -> str:
    """Stops the one process of `name`'s container from inside: the kubelet restarts the container in the same
    pod (its emptyDir, and so its data, stays). Returns the pod's name."""
    pod = chaos.pod_of(cluster, name)
    before = _restarts(cluster, pod)
    # The exec session may end with the container it stops: its exit status says nothing; the restart count does.
    exec_command = [str(cluster.kubectl_binary), f"--kubeconfig={cluster.kubeconfig}", "exec", pod, "-n", NAMESPACE]
    subprocess.run([*exec_command, "--", *command], capture_output=True, timeout=60, check=False)
    chaos.wait(lambda: _restarts(cluster, pod) > before, 120, f"{name} restarted", interval=1.0)
    chaos.wait(lambda: _ready(chaos.get(cluster, "pod", pod)), 180, f"{name} Ready again", interval=1.0)
    return pod


def _restarts(cluster: KindTestCluster, pod: str) -> int:
    statuses = chaos.get(cluster, "pod", pod)["status"].get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses)


def _service_restarts(cluster: KindTestCluster) -> int:
    return sum(_restarts(cluster, p["metadata"]["name"]) for p in _service_pods(cluster))


def test_6_postgresql_restarted_under_traffic(setup: Chaos) -> None:
    started = time.monotonic()
    cluster = setup.cluster
    restarts = _service_restarts(cluster)
    traffic = Generator(setup.merchant, duration=TRAFFIC_BOUND).start()
    time.sleep(5)
    outage = traffic.elapsed()
    # A fast shutdown of the postmaster (PID 1 of its container): in-flight queries end, connections drop.
    _restart(cluster, f"{chaos.INSTANCE}-postgres", ["sh", "-c", "kill -INT 1"])
    recovered = traffic.elapsed()
    time.sleep(20)
    result = traffic.stop()
    pending = chaos.wait(lambda: _outbox_drained(cluster), 120, "the analytics outbox to catch up")
    problems = []
    slow = [a for a in result.attempts if a.error and "Timeout" in a.error]
    if slow:
        problems.append(f"{len(slow)} requests hung past the client timeout ({TIMEOUT:g} s)")
    not_503 = Counter(f"{a.status} {a.code or a.error}" for a in result.attempts if a.failed and a.status != 503)
    if not_503:
        problems.append(f"failures other than a 503 problem: {dict(not_503)}")
    if any(a.status == 503 and a.code != "unavailable" for a in result.attempts):
        problems.append("a 503 without the `unavailable` problem")
    if _service_restarts(cluster) != restarts or not all(_ready(p) for p in _service_pods(cluster)):
        problems.append("service pods restarted or not Ready afterwards")
    after = [a for a in result.attempts if a.at > recovered + 10]
    if any(a.failed for a in after):
        problems.append("failures 10 s after PostgreSQL was back")
    logged = [
        line
        for pod in _service_pods(cluster)
        for line in cluster.kubectl("logs", pod["metadata"]["name"], "-n", NAMESPACE).splitlines()
    ]
    unhandled = sorted({line[-300:] for line in logged if "unhandled error" in line})
    # Each 503 for PostgreSQL names its cause: a refused or broken connection, or (InternalClientError) a pooled
    # connection that had read PostgreSQL's FATAL restart message before the connection's end.
    messages = [str(json.loads(line).get("msg", "")) for line in logged if line.startswith("{")]  # JSON logs
    causes = Counter(m.rsplit(": ", 1)[-1] for m in messages if m.startswith("PostgreSQL unavailable on"))
    notes = [
        *(f"server log: {line}" for line in unhandled),
        f"503s for PostgreSQL in the server logs, by cause: {dict(causes)}",
        f"PostgreSQL restarted at {outage:.0f} s, Ready again at {recovered:.0f} s of traffic",
        f"failed attempts (503 problems, retried with the same Idempotency-Key): {result.failed}",
        f"outbox drained: {pending}",
    ]
    row = _row(setup, "6 PostgreSQL restarted", result, started, problems, notes)
    assert row.double_approvals == 0, row
    assert not problems, row


def _outbox_drained(cluster: KindTestCluster) -> str | None:
    """'0 events left; analytics counts N approved charges, the database N' once the relay has caught up."""
    left = int(chaos.psql(cluster, "SELECT count(*) FROM outbox")[0][0])
    counted = chaos.psql(
        cluster,
        "SELECT (SELECT coalesce(sum(value), 0) FROM analytics_counters WHERE metric = 'charges' AND dimension = "
        "'approved'), (SELECT count(*) FROM charges WHERE status = 'approved')",
    )[0]
    if left or counted[0] != counted[1]:
        return None
    return f"0 events left; analytics counts {counted[0]} approved charges, the database {counted[1]}"


def counted(traffic: Traffic) -> list[Attempt]:
    """Attempts that carried RateLimit-* headers."""
    return [a for a in traffic.attempts if a.limit is not None and a.remaining is not None]


def test_7_redis_restarted_under_traffic_fails_open(setup: Chaos) -> None:
    """The demo runs with the default policy, GHOSTPAY_RATE_LIMIT_FAIL_CLOSED unset: failing open. Then a Redis
    restart fails no request and refuses none (no 429, no 503), and afterwards the limiter counts again."""
    started = time.monotonic()
    cluster = setup.cluster
    config = chaos.get(cluster, "configmap", f"{chaos.INSTANCE}-config")["data"]
    assert config.get("GHOSTPAY_RATE_LIMIT_FAIL_CLOSED", "false") == "false"
    traffic = Generator(setup.merchant, duration=TRAFFIC_BOUND).start()
    time.sleep(5)
    _restart(cluster, f"{chaos.INSTANCE}-redis", ["redis-cli", "shutdown", "nosave"])
    recovered = traffic.elapsed()
    time.sleep(15)  # the limiter counting again is seen 5 s after Redis is back
    result = traffic.stop()
    problems = [f"{result.failed} failed"] if result.failed else []
    if refused := result.statuses().get(429, 0):
        problems.append(f"{refused} refused with 429")
    counted_again = [a for a in counted(result) if a.at > recovered + 5]
    if not any(a.remaining < a.limit for a in counted_again):  # type: ignore[operator]
        problems.append("the limiter did not count again after Redis was back")
    notes = [
        f"Redis Ready again at {recovered:.0f} s of traffic; policy: fail open",
        f"answers at full budget (limiter failing open): {sum(a.remaining == a.limit for a in counted(result))}",
    ]
    row = _row(setup, "7 Redis restarted (fail open)", result, started, problems, notes)
    assert (row.failed, row.double_approvals) == (0, 0), row
    assert not problems, row
