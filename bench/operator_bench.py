"""Benchmark of the operator at scale: 50 GhostPayInstances on the local control plane.

    .venv/bin/python -m bench.operator_bench [--instances 50] [--idle 60] [--out FILE]

Starts its own local cluster (`ghostpay_devtools.localcluster`, binaries built or cached by
tools/controlplane/build.sh), installs the CRDs, runs `ghostpay operator` as a process, applies the instances
at once, and prints:
- seconds until every instance is Healthy;
- API requests per instance to converge (from the API server's own `apiserver_request_total`, counting the
  verbs and resources the operator uses; controllers' status writes are left out), in all and the operator's
  alone: the bench's own requests, which it counts (one POST per instance by `kubectl create`, one LIST per poll
  of the instances' phases), taken off;
- write requests to what the operator owns during `--idle` seconds of quiet (target 0);
- the operator's resident memory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.operator.support.kube_helpers import (
    OWNED_RESOURCES,
    REPO,
    api_requests,
    create_database_secret,
    get_json,
    install_crds,
    instance_yaml,
    operator_process,
    wait_for,
    writes_while_idle,
)
from tests.support import procs

from ghostpay_devtools import localcluster

OPERATOR_VERBS = ("GET", "LIST", "POST", "PATCH", "APPLY")


def operator_requests(cluster: localcluster.Cluster) -> int:
    """Requests of the kinds the operator makes; others' status updates (controllers, KWOK) are left out."""
    counts = api_requests(cluster, OWNED_RESOURCES, OPERATOR_VERBS)
    return sum(n for key, n in counts.items() if not key.endswith("/status") or key == "ghostpayinstances/status")


def operator_requests_by_verb(cluster: localcluster.Cluster) -> dict[str, int]:
    """`operator_requests`, as `VERB resource` -> count (for reading where the requests go)."""
    counts = api_requests(cluster, OWNED_RESOURCES, OPERATOR_VERBS, by_verb=True)
    return {k: n for k, n in counts.items() if not k.endswith("/status") or k.endswith("ghostpayinstances/status")}


def healthy_count(cluster: localcluster.Cluster, namespace: str) -> int:
    items = get_json(cluster, "ghostpayinstances", "-n", namespace)["items"]
    return sum(1 for i in items if i.get("status", {}).get("phase") == "Healthy")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(instances: int, idle: float, out: Path) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="gpob-", dir="/tmp"))
    cluster = localcluster.up(directory)
    operator: procs.Proc | None = None
    try:
        install_crds(cluster)
        namespace = "bench"
        cluster.kubectl("create", "namespace", namespace)
        create_database_secret(cluster, namespace)
        operator = operator_process(cluster, directory, GHOSTPAY_OPERATOR_RESYNC_SECONDS="30").start()
        requests_before = operator_requests(cluster)
        by_verb_before = operator_requests_by_verb(cluster)
        started = time.monotonic()
        documents = "\n---\n".join(instance_yaml(namespace, f"gp-{i:03d}") for i in range(instances))
        cluster.kubectl("create", "-f", "-", input=documents, timeout=120)  # a POST each (apply would GET first)
        polls = 0

        def all_healthy() -> bool:
            nonlocal polls
            polls += 1  # one LIST
            return healthy_count(cluster, namespace) == instances

        wait_for(all_healthy, 900, f"{instances} Healthy instances", 1)
        converge_seconds = time.monotonic() - started
        requests = operator_requests(cluster) - requests_before
        own = instances + polls
        by_verb = {
            key: round((n - by_verb_before.get(key, 0)) / instances, 1)
            for key, n in sorted(operator_requests_by_verb(cluster).items())
            if n - by_verb_before.get(key, 0)
        }
        idle_writes = writes_while_idle(cluster, OWNED_RESOURCES, idle)
        figures = {
            "instances": instances,
            "seconds_until_all_healthy": round(converge_seconds, 1),
            "api_requests_per_instance_to_converge": round(requests / instances, 1),
            "operator_api_requests_per_instance_to_converge": round((requests - own) / instances, 1),
            "bench_own_api_requests_per_instance": round(own / instances, 1),
            "api_requests_per_instance_by_verb": by_verb,
            "idle_seconds": idle,
            "writes_while_idle": idle_writes,
            "writes_while_idle_total": sum(idle_writes.values()),
            "operator_rss_mib": round(rss_mib(operator.pid), 1),
        }
    finally:
        if operator is not None:
            operator.stop()
        localcluster.down(directory)
        shutil.rmtree(directory, ignore_errors=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "last-operator-bench.json")
    args = parser.parse_args()
    figures = run(args.instances, args.idle, args.out)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
