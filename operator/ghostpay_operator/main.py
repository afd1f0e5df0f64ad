"""`ghostpay operator`: run the kopf operator against the current kubeconfig (the operator image's entrypoint), with
its own metrics (`metrics`) on a port of their own;
`ghostpay status`: print an instance as a tree (`statusview`)."""

from __future__ import annotations

import asyncio
import logging

import kopf

from ghostpay_operator import handlers, metrics


def run(
    namespace: str | None, verbose: bool = False, health: str = "0.0.0.0:8080", metrics_port: int | None = None
) -> None:
    """Run until interrupted; GET /healthz on `health` (host:port), GET /metrics on `metrics_port` of that host."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if metrics_port is not None:
        metrics.serve(health.rpartition(":")[0], metrics_port)
    registry = kopf.get_default_registry()
    assert handlers.instance_changed is not None  # importing `handlers` registered everything
    settings = kopf.OperatorSettings()
    # One namespace, named exactly, leaves nothing to discover: without scanning, kopf neither lists the cluster's
    # namespaces and CRDs (which a namespace-scoped operator need not be allowed to read) nor waits on them.
    settings.scanning.disabled = namespace is not None
    asyncio.run(
        kopf.operator(
            registry=registry,
            settings=settings,
            clusterwide=namespace is None,
            namespaces=[namespace] if namespace else (),
            liveness_endpoint=f"http://{health}/healthz",
        )
    )


def show_status(name: str, namespace: str, watch: bool) -> None:
    """Print `ghostpay status` for one instance (every 2 s with `watch`, until interrupted)."""
    import time

    from ghostpay_operator import kube, statusview
    from ghostpay_operator.builders import meta

    client = kube.sync_client(meta.FIELD_MANAGER)
    while True:
        text = statusview.render(*kube.instance_tree(name, namespace, client))
        print("\033[2J\033[H" + text if watch else text, end="", flush=True)
        if not watch:
            return
        time.sleep(2)
