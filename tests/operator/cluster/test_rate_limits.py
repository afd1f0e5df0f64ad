"""Rate limits reconciled into Redis (issue 16) on a real API server and a real Redis: the policy is written with
the spec's generation, a change is written within seconds without touching any Deployment, a lost key comes back
at the next resync, and an unreachable Redis gives a False RateLimitsApplied condition that recovers."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from ghostpay_devtools import localcluster
from ghostpay_operator.spec import SERVICES
from tests.operator.support.kube_helpers import (
    condition,
    create_database_secret,
    get_json,
    install_crds,
    instance_events,
    instance_yaml,
    live_deployments,
    operator_process,
    wait_for,
)
from tests.operator.test_policystore import ACL_RULES
from tests.support import procs
from tests.support.servers import Servers

pytestmark = pytest.mark.slow
RESYNC_SECONDS = "2"  # GHOSTPAY_OPERATOR_RESYNC_SECONDS: how soon a lost key is written again
KEY = "ghostpay:ratelimits:{namespace}:payments"


@pytest.fixture(scope="module")
def operator(cluster: localcluster.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[procs.Proc]:
    install_crds(cluster)
    proc = operator_process(
        cluster, tmp_path_factory.mktemp("operator"), GHOSTPAY_OPERATOR_RESYNC_SECONDS=RESYNC_SECONDS
    ).start()
    yield proc
    proc.stop()


@pytest.fixture
def store(servers: Servers) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(servers.redis_url, decode_responses=True)
    yield client
    client.close()


def _instance(cluster: localcluster.Cluster, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(cluster, "ghostpayinstance", "payments", "-n", namespace)
    return found


def _policy(store: redis.Redis, namespace: str) -> dict[str, Any] | None:
    value = store.get(KEY.format(namespace=namespace))
    return json.loads(value) if isinstance(value, str) else None


def _set_merchant(cluster: localcluster.Cluster, namespace: str, rate: float, burst: int) -> None:
    patch = {"spec": {"rateLimits": {"merchant": {"requestsPerSecond": rate, "burst": burst}}}}
    cluster.kubectl("patch", "ghostpay", "payments", "-n", namespace, "--type=merge", "-p", json.dumps(patch))


def test_a_rate_limit_change_reaches_redis_in_seconds_and_a_lost_key_comes_back(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str, servers: Servers, store: redis.Redis
) -> None:
    create_database_secret(cluster, namespace)
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, redis={"url": servers.redis_url}))
    policy = wait_for(lambda: _policy(store, namespace), 60, "the policy in Redis")
    generation = _instance(cluster, namespace)["metadata"]["generation"]
    assert policy["generation"] == generation
    assert policy["limits"]["merchant"] == {"requestsPerSecond": 100, "burst": 200}  # the services' default
    applied = wait_for(
        lambda: condition(_instance(cluster, namespace), "RateLimitsApplied").get("status") == "True",
        30,
        "RateLimitsApplied=True",
    )
    assert applied
    instance = _instance(cluster, namespace)
    assert instance["status"]["rateLimitsGeneration"] == generation
    # All four: the operator applies them one after another, and a snapshot of two would see the others "appear".
    before = wait_for(
        lambda: (d := live_deployments(cluster, namespace)) and len(d) == len(SERVICES) and d, 120, "the Deployments"
    )
    config_before = get_json(cluster, "configmap", "payments-config", "-n", namespace)["data"]
    assert config_before["GHOSTPAY_RATE_LIMIT_POLICY_KEY"] == KEY.format(namespace=namespace)

    started = time.monotonic()
    _set_merchant(cluster, namespace, 5, 10)
    changed = wait_for(
        lambda: (p := _policy(store, namespace)) and p["limits"]["merchant"]["burst"] == 10 and p,
        30,
        "the new limit in Redis",
        interval=0.1,
    )
    print(f"\nspec.rateLimits change written to Redis after {time.monotonic() - started:.2f} s")
    assert changed["generation"] == generation + 1
    assert changed["limits"]["merchant"] == {"requestsPerSecond": 5, "burst": 10}
    wait_for(
        lambda: _instance(cluster, namespace)["status"].get("rateLimitsGeneration") == generation + 1,
        30,
        "rateLimitsGeneration to follow",
    )
    instance_events(cluster, namespace, "RateLimitsApplied")
    # No release: the same Deployments, their templates untouched; the ConfigMap carries the new start-up defaults.
    after = live_deployments(cluster, namespace)
    assert sorted(after) == sorted(before)
    assert {n: d["spec"]["template"] for n, d in after.items()} == {
        n: d["spec"]["template"] for n, d in before.items()
    }
    assert "release" not in _instance(cluster, namespace)["status"]
    config = get_json(cluster, "configmap", "payments-config", "-n", namespace)["data"]
    assert json.loads(config["GHOSTPAY_RATE_LIMITS"])["merchant"] == {"requestsPerSecond": 5, "burst": 10}

    store.delete(KEY.format(namespace=namespace))  # as a Redis restart without persistence would
    started = time.monotonic()
    restored = wait_for(lambda: _policy(store, namespace), 30, "the lost key restored", interval=0.1)
    print(f"lost policy key restored after {time.monotonic() - started:.2f} s (resync every {RESYNC_SECONDS} s)")
    assert restored == changed
    instance_events(cluster, namespace, "restored")  # the Normal event saying so


def _redis_secret(cluster: localcluster.Cluster, namespace: str, url: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "payments-redis", "namespace": namespace},
        "data": {"url": base64.b64encode(url.encode()).decode()},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))


def test_an_unreachable_redis_gives_a_false_condition_and_recovers(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str, servers: Servers, store: redis.Redis
) -> None:
    create_database_secret(cluster, namespace)
    _redis_secret(cluster, namespace, "unix:///tmp/gp-no-redis-here.sock")
    spec = {"redis": {"secretRef": {"name": "payments-redis"}}}
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, **spec))

    def limits_condition() -> dict[str, Any]:
        return condition(_instance(cluster, namespace), "RateLimitsApplied")

    failed = wait_for(lambda: limits_condition().get("status") == "False" and limits_condition(), 60, "False")
    assert failed["reason"] == "RedisUnreachable" and "keep the limits they last read" in failed["message"]
    instance_events(cluster, namespace, "RateLimitsNotApplied")
    assert _instance(cluster, namespace)["status"]["phase"] != "Degraded"  # the instance itself is not at fault

    _redis_secret(cluster, namespace, servers.redis_url)  # Redis is back (here: the Secret names one that answers)
    recovered = wait_for(lambda: limits_condition().get("status") == "True" and limits_condition(), 30, "True")
    assert recovered["reason"] == "Applied"
    assert _policy(store, namespace) is not None


def test_the_operator_writes_with_its_own_least_privilege_redis_user(
    operator: procs.Proc, cluster: localcluster.Cluster, namespace: str, servers: Servers, store: redis.Redis
) -> None:
    """spec.redis.operatorSecretRef: the operator writes as a Redis user allowed only SET on its keys (the ACL line
    of docs/operator.md); while that Secret is missing the condition says so and nothing else stops."""
    create_database_secret(cluster, namespace)
    spec = {"redis": {"url": servers.redis_url, "operatorSecretRef": {"name": "payments-redis-operator"}}}
    cluster.kubectl("apply", "-f", "-", input=instance_yaml(namespace, **spec))

    def limits_condition() -> dict[str, Any]:
        return condition(_instance(cluster, namespace), "RateLimitsApplied")

    missing = wait_for(lambda: limits_condition().get("status") == "False" and limits_condition(), 60, "False")
    assert missing["reason"] == "RedisSecretMissing" and "payments-redis-operator" in missing["message"]
    user, password = f"op-{namespace}", secrets.token_urlsafe(16)
    store.execute_command("ACL", "SETUSER", user, "on", f">{password}", *ACL_RULES)
    try:
        socket = servers.redis_url.removeprefix("unix://")
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "payments-redis-operator", "namespace": namespace},
            "data": {"url": base64.b64encode(f"unix://{user}:{password}@{socket}".encode()).decode()},
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))
        wait_for(lambda: limits_condition().get("status") == "True", 30, "True once the Secret exists")
        assert _policy(store, namespace) is not None
    finally:
        store.execute_command("ACL", "DELUSER", user)
