"""The services' Deployments (one per service and colour) and the migration Job that must finish first."""

from __future__ import annotations

from typing import Any

from ghostpay_operator.builders import config, meta, names, pods
from ghostpay_operator.kinds import Manifest
from ghostpay_operator.spec import SERVICES, InstanceSpec
from ghostpay_operator.vocabulary import Color

CONFIG_HASH = "ghostpay.io/config-hash"
TEMPLATE_HASH = "ghostpay.io/template-hash"


def _topology_spread(spec: InstanceSpec, selector: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": 1,
            "minDomains": spec.zones,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": selector},
        },
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
        },
    ]


READINESS_PERIOD_SECONDS, READINESS_FAILURES = 5, 3
LIVENESS_PERIOD_SECONDS, LIVENESS_FAILURES = 10, 3
# A pod being stopped (a release scaling a colour down, a drain, an eviction) leaves its Service's endpoints when
# it starts terminating, but each node's kube-proxy drops it only when it next syncs: for a moment new connections
# still reach it. The preStop sleep keeps the server accepting for two readiness periods, time enough for every
# node to stop routing to it; only then does SIGTERM arrive, and the server stops accepting, lets the requests in
# flight finish (up to SHUTDOWN_SECONDS, `ghostpay serve --shutdown-timeout`) and exits. The grace period covers
# both, with a margin, so the kubelet never has to SIGKILL a server still answering.
PRE_STOP_SECONDS = 2 * READINESS_PERIOD_SECONDS
SHUTDOWN_SECONDS = 2 * READINESS_PERIOD_SECONDS
TERMINATION_GRACE_SECONDS = PRE_STOP_SECONDS + SHUTDOWN_SECONDS + READINESS_PERIOD_SECONDS


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


# Where Prometheus' usual Kubernetes pod discovery finds the metrics port (the Services expose only `http`).
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(pods.METRICS_PORT),
    "prometheus.io/path": "/metrics",
}


def service_container(spec: InstanceSpec, service: str) -> dict[str, Any]:
    values = {
        "GHOSTPAY_VERSION": spec.version,
        "GHOSTPAY_METRICS_PORT": str(pods.METRICS_PORT),
        "GHOSTPAY_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_SECONDS),
    }
    return {
        "name": service,
        "image": spec.image_ref,
        "command": ["ghostpay", "serve", service],
        "ports": [
            {"name": "http", "containerPort": pods.HTTP_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": pods.METRICS_PORT, "protocol": "TCP"},
        ],
        **pods.environment(spec, service, values),
        "readinessProbe": _probe("/readyz", READINESS_PERIOD_SECONDS, READINESS_FAILURES),
        "livenessProbe": _probe("/healthz", LIVENESS_PERIOD_SECONDS, LIVENESS_FAILURES),
        # Kubernetes' own sleep action: the image needs no `sleep` binary.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "resources": spec.services[service].resources,
        "securityContext": pods.container_security_context(),
        "volumeMounts": pods.volume_mounts(spec, service),
    }


def _pod_template(spec: InstanceSpec, service: str, color: str) -> dict[str, Any]:
    selector = meta.color_selector(spec, service, color)
    pod_labels = {**meta.instance_labels(spec), **selector, "app.kubernetes.io/version": spec.version}
    annotations = {
        **SCRAPE_ANNOTATIONS,  # spec.podAnnotations may override them
        **spec.pod_annotations,
        CONFIG_HASH: meta.content_hash(config.restart_data(spec)),  # not the rate limits: Redis
    }
    return {
        "metadata": {"labels": pod_labels, "annotations": annotations},
        "spec": pods.pod_spec(
            spec,
            [service_container(spec, service)],
            pods.volumes(spec, service),
            service_account=names.workload_account(spec, service),
            token=spec.vault is not None,  # the service logs in to Vault with its ServiceAccount token
            topologySpreadConstraints=_topology_spread(spec, selector),
            terminationGracePeriodSeconds=TERMINATION_GRACE_SECONDS,
        ),
    }


def template_hash(spec: InstanceSpec) -> str:
    """What a release is about: the pod templates of all services (whatever their colour). A change here — image,
    version, configuration, pod annotations, resources — starts a release; `spec.rateLimits` is not in it (the
    services read it live from Redis)."""
    return meta.content_hash([_pod_template(spec, name, "any") for name in SERVICES])


def deployment(spec: InstanceSpec, service: str, color: Color, replicas: int) -> Manifest:
    template = _pod_template(spec, service, color)
    labels = template["metadata"]["labels"]
    metadata = meta.object_meta(spec, names.deployment(spec.name, service, color), labels)
    metadata["annotations"] = {TEMPLATE_HASH: template_hash(spec)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": meta.color_selector(spec, service, color)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": template,
        },
    }


def migration_job(spec: InstanceSpec) -> Manifest:
    labels = {"app.kubernetes.io/component": "migrate", "app.kubernetes.io/version": spec.version}
    container = {
        "name": "migrate",
        "image": spec.image_ref,
        "command": ["ghostpay", "migrate"],
        **pods.environment(spec, "migrate"),  # no token: migrations never log in to Vault
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": pods.container_security_context(),
        "volumeMounts": pods.volume_mounts(spec, "migrate"),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta.object_meta(spec, names.migration_job(spec), labels),
        "spec": {
            "backoffLimit": 3,
            "activeDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {**meta.instance_labels(spec), **labels}},
                "spec": pods.pod_spec(spec, [container], pods.volumes(spec, "migrate"), restartPolicy="Never"),
            },
        },
    }
