"""The disruption suite's parts that are not traffic: the demo instance on kind, its releases, the database check
afterwards, test-only versions of the image, and the report (one table, also written as JSON).

Test-only versions: a release is `spec.version` → the image `ghostpay/ghostpay:<version>`, and the operator sets
GHOSTPAY_VERSION to it (so each answer's `GhostPay-Version` names it). A healthy new version is the built image
under another tag; a broken one is the built image with `GHOSTPAY_FAULT=… GHOSTPAY_ENVIRONMENT=development` added to
its environment (the services refuse a fault in production). Both are made inside the workers (`node_images`), and
the fault lives only in these tags there: the CRD has no field a user could set it with by mistake.

The demo's Prometheus (demo.prometheus.enabled) is asked through the API server's service proxy (`prometheus`),
so the tests' traffic stays on 127.0.0.1; `failure_bound` is how many failed attempts a broken canary can cause
within the time its analysis may take.
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ghostpay_devtools import kindcluster
from ghostpay_operator.analysis import parse_result
from tests.kind import node_images
from tests.kind.conftest import KindTestCluster
from tests.kind.traffic import Traffic

NAMESPACE = "gp-chaos"
INSTANCE = "payments"
REPOSITORY = "ghostpay/ghostpay"


def wait(probe: Callable[[], Any], timeout: float, what: str, interval: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def get(cluster: KindTestCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-n", NAMESPACE, "-o", "json"))


def instance(cluster: KindTestCluster) -> dict[str, Any]:
    found: dict[str, Any] = get(cluster, "ghostpayinstance", INSTANCE)
    return found


def patch_spec(cluster: KindTestCluster, spec: dict[str, Any]) -> None:
    patch = json.dumps({"spec": spec})
    cluster.kubectl("patch", "ghostpayinstance", INSTANCE, "-n", NAMESPACE, "--type=merge", "-p", patch)


def settled(cluster: KindTestCluster, version: str, phase: str = "Healthy") -> dict[str, Any] | None:
    """The instance's status once it is at `phase` with every pod ready and traffic on `version` (for a
    rollback: the stable one); else None."""
    status = instance(cluster).get("status") or {}
    if status.get("phase") != phase or status.get("readyReplicas") != status.get("replicas", -1):
        return None
    if status.get("activeVersion") != version:
        return None
    return status


def release_outcome(cluster: KindTestCluster) -> dict[str, Any]:
    outcome: dict[str, Any] = (instance(cluster).get("status") or {}).get("release") or {}
    return outcome


def events(cluster: KindTestCluster, reason: str) -> list[dict[str, Any]]:
    """The instance's events with `reason` (kopf posts them on the GhostPayInstance)."""
    selector = f"involvedObject.kind=GhostPayInstance,involvedObject.name={INSTANCE},reason={reason}"
    found: list[dict[str, Any]] = get(cluster, "events", "--field-selector", selector)["items"]
    return found


def prometheus(cluster: KindTestCluster, query: str) -> float | None:
    """The value of `query` now on the demo's Prometheus, through the API server's proxy; None: no data, or no
    answer (not Ready yet)."""
    service = f"{INSTANCE}-prometheus:http"
    path = f"/api/v1/namespaces/{NAMESPACE}/services/{service}/proxy/api/v1/query?{urlencode({'query': query})}"
    command = [str(cluster.kubectl_binary), f"--kubeconfig={cluster.kubeconfig}", "get", "--raw", path]
    answer = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return parse_result(json.loads(answer.stdout)) if answer.returncode == 0 else None


def failure_bound(traffic: Traffic, share: float, seconds: float) -> int:
    """The most attempts a broken version serving `share` of the charges can fail in `seconds`: that share of the
    charge attempts the traffic made per second over its whole run, times `seconds`, rounded up. (A failing charge is
    retried after a 0.5 s pause, slower than the next charge of a working loop: failing does not raise the rate.)"""
    charges = sum(a.kind == "charge" for a in traffic.attempts)
    return math.ceil(share * charges / traffic.duration * seconds) if traffic.duration else 0


def admin(cluster: KindTestCluster) -> dict[str, str]:
    secret = get(cluster, "secret", f"{INSTANCE}-admin")
    return {key: base64.b64decode(secret["data"][key]).decode() for key in ("client_id", "client_secret")}


def pod_of(cluster: KindTestCluster, name: str) -> str:
    pods = get(cluster, "pods", "-l", f"app.kubernetes.io/name={name}")["items"]
    running = [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert running, f"no pod of {name}"
    return str(running[0])


def psql(cluster: KindTestCluster, query: str) -> list[list[str]]:
    """Rows of `query` on the demo's PostgreSQL (over the pod's own socket, where its superuser is trusted)."""
    pod = pod_of(cluster, f"{INSTANCE}-postgres")
    out = cluster.kubectl(
        "exec", pod, "-n", NAMESPACE, "--", "psql", "-h", "/var/run/postgresql", "-U", "ghostpay", "-d", "ghostpay",
        "-At", "-F", "\t", "-c", query,
    )  # fmt: skip
    return [line.split("\t") for line in out.splitlines() if line]


@dataclass(frozen=True)
class DatabaseCheck:
    missing: int  # approved charges the clients were told of, not approved in the database
    double_approved_cards: int  # cards with two approved charges, among those the traffic used
    outbox_pending: int  # events not yet drained into analytics


def check_database(cluster: KindTestCluster, traffic: Traffic) -> DatabaseCheck:
    """Every approved charge a client saw is there, approved; no card of this run approved twice."""
    told = {charge for charges in traffic.approved.values() for charge in charges}
    cards = sorted(traffic.approved) or ["-"]
    listed = ",".join(f"'{card}'" for card in cards)  # ids made by the server (ULID-like), never user text
    rows = psql(cluster, f"SELECT charge_id, card_id FROM charges WHERE status = 'approved' AND card_id IN ({listed})")
    stored = {row[0] for row in rows}
    per_card: dict[str, int] = {}
    for _, card in rows:
        per_card[card] = per_card.get(card, 0) + 1
    pending = int(psql(cluster, "SELECT count(*) FROM outbox")[0][0])
    return DatabaseCheck(len(told - stored), sum(n > 1 for n in per_card.values()), pending)


# --- test-only versions of the image ---------------------------------------------------------------------


def image_id(image: str) -> str:
    """The image's id (the digest of its configuration): what the workers' copy of it must be."""
    inspect = ["docker", "image", "inspect", "--format", "{{.Id}}", image]
    return subprocess.run(inspect, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def load_images(cluster: KindTestCluster, base: str, versions: dict[str, dict[str, str]], others: list[str]) -> None:
    """Makes `ghostpay/ghostpay:<version>` for each version in every worker (nothing runs on the control-plane node,
    tainted NoSchedule): this tree's image (`base`, its id) with the version's `env` baked in (a test-only fault; no
    `env`: the same image under that tag), made inside each worker from its copy of the image (`node_images`); and
    loads `others` (the demo's images). One `kind load` per image: kind skips the nodes that have an image, but
    sends every image named in one call to a node that lacks any of them."""
    stable = kindcluster.ghostpay_image()
    workers = kindcluster.worker_containers()
    for image in [stable, *others]:  # the image itself: `ghostpay cluster up` loaded it already, normally
        load = [str(cluster.kind), "load", "docker-image", image, "--name", kindcluster.CLUSTER_NAME]
        subprocess.run([*load, "--nodes", ",".join(workers)], capture_output=True, check=True, timeout=900)
    for worker in workers:
        held = node_images.held(worker, f"docker.io/{stable}")
        assert held.config_digest == base, f"{worker} holds another {stable} than this tree's image {base}"
        made = {f"docker.io/{REPOSITORY}:{v}": node_images.with_env(held, env) for v, env in versions.items()}
        node_images.import_images(worker, made)


# --- the report ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    sent: int
    failed: int
    double_approvals: int
    versions_seen: dict[str, int]
    verdict: str  # "met" or what was not
    seconds: float
    notes: list[str] = field(default_factory=list)
    shares: list[str] = field(default_factory=list)  # canary: the new version's share of answers at each step


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def table(self) -> str:
        header = ("scenario", "sent", "failed", "double approvals", "versions seen", "verdict")
        lines = [
            (r.scenario, str(r.sent), str(r.failed), str(r.double_approvals), _versions(r.versions_seen), _verdict(r))
            for r in self.rows
        ]
        widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
        out = [" | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) for cells in [header, *lines]]
        out.insert(1, "-+-".join("-" * w for w in widths))
        out.append(f"suite: {time.monotonic() - self.started:.0f} s")
        return "\n".join(out)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"seconds": round(time.monotonic() - self.started), "rows": [asdict(r) for r in self.rows]}
        path.write_text(json.dumps(document, indent=2) + "\n")


def _verdict(row: Row) -> str:
    """The verdict, with the new version's share of answers at each canary step when the row has them."""
    return f"{row.verdict} (new version's share: {', '.join(row.shares)})" if row.shares else row.verdict


def _versions(seen: dict[str, int]) -> str:
    return ", ".join(f"{v} ({n})" for v, n in sorted(seen.items()))
