"""`ghostpay operator`: run the kopf operator against the current kubeconfig (the operator image's entrypoint)."""

from __future__ import annotations

import asyncio
import logging

import kopf

from ghostpay_operator import handlers


def run(namespace: str | None, verbose: bool = False, health: str = "0.0.0.0:8080") -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    registry = kopf.get_default_registry()
    assert handlers.instance_changed is not None  # importing `handlers` registered everything
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=namespace is None,
            namespaces=[namespace] if namespace else (),
            liveness_endpoint=f"http://{health}/healthz",
        )
    )
