"""Small helpers for the operator's integration tests: run the operator as a real process, read objects with
kubectl, wait (bounded) for a condition, and count the API server's write requests."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ghostpay_devtools import localcluster
from tests.support import procs

REPO = Path(__file__).resolve().parents[3]
T = TypeVar("T")
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "APPLY")
# Everything the operator reads or writes, by API resource name.
OWNED_RESOURCES = {
    "ghostpayinstances",
    "deployments",
    "services",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "poddisruptionbudgets",
    "jobs",
    "cronjobs",
    "roles",
    "rolebindings",
}
NEVER = "0 3 29 2 *"  # a key-rotation schedule that does not fire during a test (03:00 on 29 February)


def operator_process(
    cluster: localcluster.Cluster, log_dir: Path, namespace: str | None = None, **env: str
) -> procs.Proc:
    """`ghostpay operator [--namespace NAMESPACE]` against the local cluster (not yet started; `start()` waits for
    /healthz); its metrics on a free port of their own (`metrics_url`): the default, 9090, would collide."""
    settings = {
        "KUBECONFIG": str(cluster.kubeconfig),
        "GHOSTPAY_METRICS_PORT": str(procs.free_port()),
        "GHOSTPAY_OPERATOR_RESYNC_SECONDS": "5",
        "GHOSTPAY_OPERATOR_PEERING_LIFETIME": "10",
        **env,
    }
    args = ["operator", "--namespace", namespace] if namespace else ["operator"]
    return procs.Proc(args, settings, log_dir, ready_path="/healthz")


def metrics_url(operator: procs.Proc) -> str:
    """Where the operator process started by `operator_process` serves its /metrics."""
    return f"http://127.0.0.1:{operator.env['GHOSTPAY_METRICS_PORT']}/metrics"


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample a /metrics answer holds, by name and labels (parsed by prometheus_client, as Prometheus would)."""
    text = httpx.get(url, timeout=10.0).raise_for_status().text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get_json(cluster: localcluster.Cluster, *args: str) -> Any:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 1.0) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def instance_events(cluster: localcluster.Cluster, namespace: str, *reasons: str, timeout: float = 30.0) -> str:
    """`kubectl get events` of the namespace's GhostPayInstances, once it names every one of `reasons`. kopf posts
    events from a queue of its own, after the status patch they go with: an event may come a moment later."""
    selector = "involvedObject.kind=GhostPayInstance"

    def listed() -> str | None:
        out = str(cluster.kubectl("get", "events", "-n", namespace, "--field-selector", selector).stdout)
        return out if all(reason in out for reason in reasons) else None

    return wait_for(listed, timeout, f"events {', '.join(reasons)}")


def condition(instance: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in instance.get("status", {}).get("conditions", []) if c["type"] == kind), {})


_REQUEST = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$", re.M)


def write_requests(cluster: localcluster.Cluster, resources: set[str]) -> dict[str, int]:
    """Write requests the API server has answered so far, by resource (from its own metrics)."""
    return api_requests(cluster, resources, WRITE_VERBS)


def api_requests(
    cluster: localcluster.Cluster, resources: set[str], verbs: tuple[str, ...], by_verb: bool = False
) -> dict[str, int]:
    """Requests with one of `verbs` the API server has answered so far, by resource (and verb, `by_verb`: as
    `VERB resource`), from its own metrics."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    counts: dict[str, int] = {}
    for match in _REQUEST.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels")))
        if labels.get("verb") in verbs and labels.get("resource") in resources:
            key = labels["resource"] + ("/" + labels["subresource"] if labels.get("subresource") else "")
            key = f"{labels['verb']} {key}" if by_verb else key
            counts[key] = counts.get(key, 0) + int(float(match.group("value")))
    return counts


def no_namespace_terminating(cluster: localcluster.Cluster) -> bool:
    return all(ns["status"]["phase"] != "Terminating" for ns in get_json(cluster, "namespaces")["items"])


def writes_while_idle(cluster: localcluster.Cluster, resources: set[str], seconds: float) -> dict[str, int]:
    """Write requests to `resources` during `seconds` of quiet, by resource (only those that grew).

    Earlier tests' namespaces being torn down would count as writes, so it waits for them to go first."""
    wait_for(lambda: no_namespace_terminating(cluster), 180, "test namespaces to finish terminating", interval=2)
    time.sleep(6)  # let the last status write and the controllers' own updates land
    before = write_requests(cluster, resources)
    time.sleep(seconds)
    after = write_requests(cluster, resources)
    return {key: count - before.get(key, 0) for key, count in after.items() if count != before.get(key, 0)}


def scale_cards(cluster: localcluster.Cluster, namespace: str, replicas: int, name: str = "payments") -> None:
    patch = {"spec": {"services": {"cards": {"replicas": replicas}}}}
    cluster.kubectl("patch", "ghostpay", name, "-n", namespace, "--type=merge", "-p", json.dumps(patch))


def install_crds(cluster: localcluster.Cluster) -> localcluster.Cluster:
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/ghostpayinstances.ghostpay.io", "--timeout=60s")
    return cluster


def create_database_secret(cluster: localcluster.Cluster, namespace: str) -> None:
    dsn = "--from-literal=dsn=postgresql://ghostpay@db/ghostpay"
    cluster.kubectl("create", "secret", "generic", "payments-db", "-n", namespace, dsn)


# The operator writes each instance's rate-limit policy to its Redis: by default a socket nobody serves here, so
# no name is looked up outside the machine (the RateLimitsApplied condition is then False, which these tests allow).
NO_REDIS = "unix:///tmp/gp-no-redis-here.sock"


def instance_yaml(namespace: str, name: str = "payments", **spec: Any) -> str:
    """samples/minimal.yaml, renamed, its Redis `NO_REDIS`, and with `spec` fields changed."""
    body = yaml.safe_load((REPO / "samples" / "minimal.yaml").read_text())
    body["metadata"] = {"name": name, "namespace": namespace}
    body["spec"]["redis"] = {"url": NO_REDIS}
    body["spec"].update(spec)
    return str(yaml.safe_dump(body))


SETTLE = 240.0  # how long an instance may take to settle on the local cluster


def healthy_instance(cluster: localcluster.Cluster, namespace: str, name: str = "payments") -> dict[str, Any] | None:
    instance = get_json(cluster, "ghostpayinstance", name, "-n", namespace)
    if (
        instance
        and instance.get("status", {}).get("phase") == "Healthy"
        and instance["status"].get("observedGeneration") == instance["metadata"]["generation"]
    ):
        return instance  # type: ignore[no-any-return]
    return None


def live_deployments(cluster: localcluster.Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    found = get_json(cluster, "deployments", "-n", namespace) or {"items": []}
    return {d["metadata"]["name"]: d for d in found["items"]}
