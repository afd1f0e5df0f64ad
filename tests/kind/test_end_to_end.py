"""The platform team's path on a real cluster (issue 11), with real pods running the real image. The install is the
README's own offline block ("The whole path on kind", tests/kind/readme.py), run command by command: the images,
`ghostpay cluster up --kind` (reusing the fixture's cluster), `kind load` of the demo's images, `helm install` of the
chart with `demo.enabled=true` and `demo.vault.enabled=true`, `kubectl wait` until the instance is Healthy, then a
merchant's charge through the NodePorts and a port-forward. Then, on that one install:
the operator runs as pods → every service pod turned Ready through its real `/readyz` probe, spread over both
zones, after the migration Job really ran `ghostpay migrate` → a merchant gets a token, issues a card and charges
it through the NodePorts on 127.0.0.1 → 32 concurrent charges on one card over the real replicas approve exactly
one → `/metrics` answers inside a pod → in Vault mode (OpenBao in the cluster, over TLS) every service logged in
with Kubernetes auth using its own real ServiceAccount token, which OpenBao checked with a TokenReview against the
API server, and signs through transit → the key-rotation CronJob's Job, started with
`kubectl create job --from=cronjob/…`, runs for real, a token issued before it still verifies after it and a new
token gets the new kid → a lowered merchant rate limit shows as 429s within seconds and a raised one lifts as fast,
with the same pods and no release (issue 16) → deleting the instance removes its pods; uninstalling frees the
NodePorts for the tests after it. The tests run in file order on the one install.

Images are loaded, never pulled (`ghostpay cluster up --kind` loads `ghostpay/ghostpay:<version>`, `kind load` the
demo's). Traffic goes only to 127.0.0.1 (kind's port mappings and the port-forward) and to this run's own pods.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from tests.helm import helm
from tests.image import docker
from tests.kind import readme
from tests.kind.conftest import KindTestCluster

pytestmark = pytest.mark.slow
NAMESPACE = readme.NAMESPACE  # the README's block installs there
PORTS = {"auth": 30080, "cards": 30081, "charges": 30082, "analytics": 30083}
SETTLE = 420.0  # migration retries until PostgreSQL is up, then 8 pods start and pass their probes
LIVE_LIMIT_SECONDS = 10.0  # a changed spec.rateLimits must show in answers within this (issue 16)
LOW = {"requestsPerSecond": 2, "burst": 4}  # the lowered merchant limit
PACE_SECONDS = 0.05  # requests of the rate probe: one each 50 ms (20/s, ten times the lowered rate)
CONCURRENT_CHARGES = 32
ROTATION_SETTLE = 180.0  # a new key signs after the activation delay (60 s) once auth has refreshed (30 s)


def _wait(probe: Any, timeout: float, what: str, interval: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _json(cluster: KindTestCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json"))


@pytest.fixture(scope="module")
def demo(kind_cluster: KindTestCluster) -> Iterator[tuple[KindTestCluster, readme.BlockRun]]:
    """The README's kind block run (it installs the demo, in Vault mode, in NAMESPACE); afterwards the instance, the
    release and the namespace removed. One install for the whole module: the tests below run in order on it."""
    with readme.checkout_writes_removed():
        try:
            yield kind_cluster, readme.run_offline_block()
        finally:
            # The instance first, while the operator still runs to lift its finalizer (an uninstall taking both at
            # once would leave the instance, and so the namespace, stuck), in case a test stopped before deleting it.
            subprocess.run(
                [str(kind_cluster.kubectl_binary), f"--kubeconfig={kind_cluster.kubeconfig}", "delete",
                 "ghostpayinstance", "payments", "-n", NAMESPACE, "--ignore-not-found", "--timeout=180s"],
                capture_output=True, timeout=200, check=False,
            )  # fmt: skip
            uninstall = ("uninstall", "ghostpay", "-n", NAMESPACE, "--wait")
            helm.run(*uninstall, kubeconfig=kind_cluster.kubeconfig, timeout=300)
            kind_cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--ignore-not-found", timeout=300)


def test_the_readmes_offline_commands_install_the_demo_and_charge_a_card(
    demo: tuple[KindTestCluster, readme.BlockRun],
) -> None:
    _, run = demo
    print(f"\nthe README's offline kind block: {run.seconds:.1f} s")
    charge, kids = run.stdout.strip().splitlines()[-2:]  # what the block prints last: the charge, the JWKS' kids
    assert json.loads(charge)["status"] == "approved", run.stdout
    assert json.loads(kids) and all(kid.startswith("ghostpay-jwt-v") for kid in json.loads(kids)), run.stdout


def _healthy(cluster: KindTestCluster) -> dict[str, Any] | None:
    instance = _json(cluster, "ghostpayinstance", "payments", "-n", NAMESPACE)
    status = instance.get("status") or {}
    if status.get("phase") == "Healthy" and status.get("readyReplicas") == status.get("replicas", -1) > 0:
        return instance  # type: ignore[no-any-return]
    return None


def _admin(cluster: KindTestCluster) -> dict[str, str]:
    secret = _json(cluster, "secret", "payments-admin", "-n", NAMESPACE)
    return {key: base64.b64decode(secret["data"][key]).decode() for key in ("client_id", "client_secret")}


async def _merchant_headers(http: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    auth = f"http://127.0.0.1:{PORTS['auth']}"
    token = (await http.post(f"{auth}/auth/token", json=admin)).json()["access_token"]
    made = await http.post(
        f"{auth}/auth/clients", json={"name": "e2e", "role": "merchant"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert made.status_code == 201, made.text
    merchant = made.json()
    login = {"client_id": merchant["client_id"], "client_secret": merchant["client_secret"]}
    return {"Authorization": f"Bearer {(await http.post(f'{auth}/auth/token', json=login)).json()['access_token']}"}


async def _card(http: httpx.AsyncClient, headers: dict[str, str], amount: int) -> dict[str, Any]:
    body = {"user_id": "alice", "amount": amount, "currency": "USD"}
    issued = await http.post(f"http://127.0.0.1:{PORTS['cards']}/cards", json=body, headers=headers)
    assert issued.status_code == 201, issued.text
    card: dict[str, Any] = issued.json()
    return card


async def _charge(http: httpx.AsyncClient, headers: dict[str, str], card_id: str, amount: int) -> httpx.Response:
    body = {"card_id": card_id, "amount": amount, "currency": "USD"}
    return await http.post(f"http://127.0.0.1:{PORTS['charges']}/charges", json=body, headers=headers)


def test_helm_install_on_kind_runs_real_pods_that_serve_charges(demo: tuple[KindTestCluster, readme.BlockRun]) -> None:
    cluster, _ = demo
    _wait(lambda: _healthy(cluster), SETTLE, "the demo instance Healthy with real pods")

    # Every service pod runs the real image, Ready through its probe, spread over both zones.
    pods = _json(cluster, "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/instance=payments")["items"]
    zones = {n["metadata"]["name"]: n["metadata"]["labels"].get("topology.kubernetes.io/zone") for n in
             _json(cluster, "nodes")["items"]}  # fmt: skip
    for service in PORTS:
        mine = [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/component") == service]
        running = [p for p in mine if p["status"].get("phase") == "Running"]
        assert len(running) >= 2, (service, [p["status"].get("phase") for p in mine])
        assert {p["spec"]["containers"][0]["image"] for p in running} == {docker.IMAGE}
        assert all(c["ready"] for p in running for c in p["status"]["containerStatuses"]), service
        assert {zones[p["spec"]["nodeName"]] for p in running} == {"zone-a", "zone-b"}, service
        # Vault mode: each service runs as its own ServiceAccount, whose token it logs in to OpenBao with.
        assert {p["spec"]["serviceAccountName"] for p in running} == {f"payments-{service}"}, service
    operators = _json(cluster, "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=ghostpay-operator")["items"]
    assert [p["status"]["phase"] for p in operators] == ["Running", "Running"]

    # The migration Job really ran `ghostpay migrate` to completion.
    jobs = _json(cluster, "jobs", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=migrate")["items"]
    assert jobs and jobs[0]["status"].get("succeeded") == 1
    migrated = cluster.kubectl("logs", f"job/{jobs[0]['metadata']['name']}", "-n", NAMESPACE)
    assert "applied" in migrated, migrated

    asyncio.run(_merchant_flow(_admin(cluster)))

    # /metrics inside a pod, on its own port (the public Service does not expose it).
    charges_pod = next(
        p["metadata"]["name"] for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/component") == "charges"
    )
    scrape = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9090/metrics').read().decode())"
    metrics = cluster.kubectl("exec", charges_pod, "-n", NAMESPACE, "--", "python3", "-c", scrape)
    assert "ghostpay_http_requests_total" in metrics


def test_rate_limits_change_live_on_real_pods_without_a_release(demo: tuple[KindTestCluster, readme.BlockRun]) -> None:
    """Issue 16 on the same install: lowering the merchant limit makes a merchant see 429 at the new rate within
    LIVE_LIMIT_SECONDS, raising it lifts it as fast; no pod restarts (their uids stay), no release starts."""
    cluster, _ = demo
    _wait(lambda: _healthy(cluster), SETTLE, "the demo instance Healthy")
    pods_before = _service_pods(cluster)
    templates_before = _templates(cluster)
    asyncio.run(_live_limits(cluster, _admin(cluster)))
    assert _service_pods(cluster) == pods_before  # the same pods (uids), none restarted
    assert _templates(cluster) == templates_before  # no pod template changed
    status = _json(cluster, "ghostpayinstance", "payments", "-n", NAMESPACE)["status"]
    assert "release" not in status and status["phase"] == "Healthy"
    limits = next(c for c in status["conditions"] if c["type"] == "RateLimitsApplied")
    assert limits["status"] == "True" and status["rateLimitsGeneration"] == limits["observedGeneration"]


def test_vault_mode_logs_in_with_real_service_account_tokens_and_a_rotation_job_keeps_old_tokens(
    demo: tuple[KindTestCluster, readme.BlockRun],
) -> None:
    cluster, _ = demo
    started = time.monotonic()
    _wait(lambda: _healthy(cluster), SETTLE, "the demo instance Healthy")
    accounts = {a["metadata"]["name"]: a["metadata"]["uid"] for a in _json(cluster, "sa", "-n", NAMESPACE)["items"]}

    # Every service logged in with Kubernetes auth as its own ServiceAccount (OpenBao's TokenReview of the pod's
    # real token names it, uid and all) under its own role, and nobody logged in as another workload.
    logins = _openbao_logins(cluster)
    for service in PORTS:
        assert (f"ghostpay-{service}", f"payments-{service}", accounts[f"payments-{service}"]) in logins, logins
    assert all(role == f"ghostpay-{name.removeprefix('payments-')}" for role, name, _ in logins), logins

    old = asyncio.run(_tokens_now(_admin(cluster)))
    assert old.kid.startswith("ghostpay-jwt-v1-"), old.kid  # signed by transit (the key's version 1)

    # The CronJob's Job, started by hand as an operator would, runs `ghostpay keys rotate` against OpenBao.
    cluster.kubectl("create", "job", "--from=cronjob/payments-key-rotation", "gp-e2e-rotate", "-n", NAMESPACE)
    cluster.kubectl(
        "wait", "--for=condition=complete", "job/gp-e2e-rotate", "-n", NAMESPACE, "--timeout=180s", timeout=200
    )
    rotated = cluster.kubectl("logs", "job/gp-e2e-rotate", "-n", NAMESPACE)
    assert "published ghostpay-jwt-v2-" in rotated, rotated
    logins = _openbao_logins(cluster)
    assert ("ghostpay-key-rotation", "payments-key-rotation", accounts["payments-key-rotation"]) in logins

    # The new version signs once every verifier has had time to refresh (the activation delay, 60 s by default).
    new = _wait(
        lambda: (t := asyncio.run(_tokens_now(_admin(cluster)))).kid != old.kid and t, ROTATION_SETTLE, "a new kid"
    )
    assert new.kid.startswith("ghostpay-jwt-v2-"), new.kid
    # The merchant's token from before the rotation still verifies in cards and charges (and the new one too).
    asyncio.run(_card_and_charge(old.merchant))
    asyncio.run(_card_and_charge(new.merchant))
    print(f"\nVault mode and key rotation on kind: {time.monotonic() - started:.1f} s")


def test_deleting_the_instance_removes_its_pods(demo: tuple[KindTestCluster, readme.BlockRun]) -> None:
    cluster, _ = demo
    cluster.kubectl("delete", "ghostpayinstance", "payments", "-n", NAMESPACE, "--timeout=120s")
    _wait(
        lambda: not _json(cluster, "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=charges")["items"],
        180,
        "the instance's pods to go",
    )


@dataclass(frozen=True)
class _Tokens:
    kid: str  # of the admin's token just issued
    merchant: dict[str, str]  # a merchant's Authorization header, issued at the same time


async def _tokens_now(admin: dict[str, str]) -> _Tokens:
    async with httpx.AsyncClient(timeout=30.0) as http:
        merchant = await _merchant_headers(http, admin)
    token = merchant["Authorization"].removeprefix("Bearer ")
    return _Tokens(jwt.get_unverified_header(token)["kid"], merchant)


async def _card_and_charge(headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=30.0) as http:
        card = await _card(http, headers, 700)
        charged = await _charge(http, headers, card["card_id"], 700)
        assert charged.status_code == 201 and charged.json()["status"] == "approved", charged.text


def _openbao_logins(cluster: KindTestCluster) -> set[tuple[str, str, str]]:
    """(role, ServiceAccount, its uid) of every Kubernetes-auth login OpenBao holds a token for, read inside its pod
    with the root token (on the pod's loopback listener)."""
    script = (
        "export BAO_ADDR=http://127.0.0.1:8200 BAO_TOKEN=$BAO_DEV_ROOT_TOKEN_ID; "
        "for a in $(bao list -format=json auth/token/accessors | tr -d '[]\",'); do "
        "bao token lookup -format=json -accessor $a | tr -d '\n'; echo; done"
    )
    output = cluster.kubectl("exec", "deploy/payments-openbao", "-n", NAMESPACE, "--", "sh", "-c", script)
    logins = set()
    for line in output.splitlines():
        data = json.loads(line)["data"]
        if data["path"] == "auth/kubernetes/login":
            meta = data["meta"]
            logins.add((meta["role"], meta["service_account_name"], meta["service_account_uid"]))
    return logins


async def _merchant_flow(admin: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=30.0) as http:
        headers = await _merchant_headers(http, admin)
        card = await _card(http, headers, 2500)
        first = await _charge(http, headers, card["card_id"], 1999)
        assert first.status_code == 201 and first.json()["status"] == "approved", first.text
        second = await _charge(http, headers, card["card_id"], 1999)
        assert second.status_code == 402 and second.json()["decline_code"] == "card_used", second.text

        # Many charges at once on one card, over the real replicas (kube-proxy spreads the connections).
        contested = await _card(http, headers, 1000)
        limits = httpx.Limits(max_connections=CONCURRENT_CHARGES, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60.0, limits=limits) as burst:
            answers = await asyncio.gather(
                *(_charge(burst, headers, contested["card_id"], 500) for _ in range(CONCURRENT_CHARGES))
            )
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(201) == 1, statuses
        assert set(statuses) <= {201, 402}, statuses

        read = await http.get(f"http://127.0.0.1:{PORTS['cards']}/cards/{contested['card_id']}", headers=headers)
        assert read.json()["status"] == "used"


def _service_pods(cluster: KindTestCluster) -> dict[str, tuple[str, int]]:
    """The instance's service pods: name -> (uid, restarts)."""
    pods = _json(cluster, "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/instance=payments")["items"]
    return {
        p["metadata"]["name"]: (p["metadata"]["uid"], sum(c["restartCount"] for c in p["status"]["containerStatuses"]))
        for p in pods
        if p["metadata"]["labels"].get("app.kubernetes.io/component") in PORTS
    }


def _templates(cluster: KindTestCluster) -> dict[str, Any]:
    deployments = _json(cluster, "deployments", "-n", NAMESPACE, "-l", "app.kubernetes.io/instance=payments")
    return {d["metadata"]["name"]: d["spec"]["template"] for d in deployments["items"]}


def _set_merchant_limit(cluster: KindTestCluster, limit: dict[str, float]) -> None:
    patch = json.dumps({"spec": {"rateLimits": {"merchant": limit}}})
    cluster.kubectl("patch", "ghostpayinstance", "payments", "-n", NAMESPACE, "--type=merge", "-p", patch)


async def _until(
    http: httpx.AsyncClient, headers: dict[str, str], answered: Callable[[httpx.Response], bool], seconds: float
) -> float:
    """Lists cards at PACE_SECONDS until an answer is `answered`; how long that took (bounded by `seconds`)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        answer = await http.get(f"http://127.0.0.1:{PORTS['cards']}/cards", headers=headers)
        if answered(answer):
            return time.monotonic() - started
        await asyncio.sleep(PACE_SECONDS)
    raise AssertionError(f"no change within {seconds:.0f} s of the rate-limit change")


async def _live_limits(cluster: KindTestCluster, admin: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=30.0) as http:
        headers = await _merchant_headers(http, admin)
        _set_merchant_limit(cluster, LOW)
        lowered = await _until(http, headers, lambda a: a.status_code == 429, LIVE_LIMIT_SECONDS)
        # At the new rate: 3 s of requests at 20/s get about 2/s through (what the burst refilled, plus the rate).
        window, answers = 3.0, []
        started = time.monotonic()
        while time.monotonic() - started < window:
            answers.append(await http.get(f"http://127.0.0.1:{PORTS['cards']}/cards", headers=headers))
            await asyncio.sleep(PACE_SECONDS)
        elapsed = time.monotonic() - started
        passed = sum(a.status_code == 200 for a in answers)
        assert {a.status_code for a in answers} <= {200, 429}
        assert 1 <= passed <= LOW["requestsPerSecond"] * elapsed + LOW["burst"], (passed, len(answers))
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["RateLimit-Limit"] == str(LOW["burst"]) and "2/s (burst 4)" in refused.json()["detail"]

        _set_merchant_limit(cluster, {"requestsPerSecond": 100, "burst": 200})
        # Not merely a 200 (the lowered rate lets one through every half second): an answer under the raised budget.
        raised = await _until(http, headers, lambda a: a.headers.get("RateLimit-Limit") == "200", LIVE_LIMIT_SECONDS)
        then = [await http.get(f"http://127.0.0.1:{PORTS['cards']}/cards", headers=headers) for _ in range(20)]
        assert [a.status_code for a in then] == [200] * 20
        print(
            f"\nlive rate limits on kind: 429 {lowered:.2f} s after lowering; {passed} of {len(answers)} requests "
            f"passed in {elapsed:.1f} s at {LOW['requestsPerSecond']}/s burst {LOW['burst']}; lifted {raised:.2f} s "
            "after raising"
        )
