"""The operator package's only door to the Kubernetes API (lightkube): every client it uses is made here.

`Kube` is the reconcile pass's facade (async): apply a manifest with server-side apply under one field manager,
create, scale, delete, read Secrets and instances by name, write status; it counts its write requests so tests
and benchmarks can show that an idle resync writes nothing, and remembers what each read or write of an instance
answered (`latest`), so that a pass needs no GET of an instance whose newest version it already has: the watch's
copy once it is that new, or the write's answer while the watch still shows the version that write replaced; every
request it sends is counted in `metrics.API_REQUESTS` (by verb and kind). What the
operator owns is not listed here but watched: kopf's watches (`handlers`, over the kinds of
`WATCHED`) keep the caches a pass reads its children from. `sync_client` gives the blocking client of the
key-rotation Job (`keysecret`), and `instance_tree` reads what `ghostpay status` shows.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, Client, codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import CronJob
from lightkube.resources.core_v1 import Secret
from lightkube.types import CascadeType, PatchType

from ghostpay_operator import metrics
from ghostpay_operator.builders import meta
from ghostpay_operator.kinds import InstanceStatus, Manifest
from ghostpay_operator.spec import GROUP, KIND, PLURAL, VERSION

log = logging.getLogger("ghostpay_operator.kube")
GhostPayInstance = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
_BOOKKEEPING = ("resourceVersion", "finalizers", "managedFields")
_OLDER_KEPT = 4  # resourceVersions of an instance kept as known to be older (a watch lags a write or two behind)
# The Prometheus Operator's kinds, which a cluster may not serve (`Kube.monitoring`).
MONITORING_KINDS: dict[str, Any] = {
    "ServiceMonitor": create_namespaced_resource("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"),
    "PrometheusRule": create_namespaced_resource("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules"),
}
# The kinds the operator owns and watches (all but Secrets, which its role may only read by name), as kopf names
# their API resources: kind -> (group, version, plural).
WATCHED: dict[str, tuple[str, str, str]] = {
    "ServiceAccount": ("", "v1", "serviceaccounts"),
    "ConfigMap": ("", "v1", "configmaps"),
    "Service": ("", "v1", "services"),
    "PodDisruptionBudget": ("policy", "v1", "poddisruptionbudgets"),
    "Deployment": ("apps", "v1", "deployments"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "Role": ("rbac.authorization.k8s.io", "v1", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "v1", "rolebindings"),
}


def merge_patch(previous: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7396) that turns `previous` into `new`: a key `previous` had and `new` has not is
    sent as null, in nested objects too — a merge patch merges an object with the one it names, so a nested key
    left out stays (a canary step's `status.release.step_ready_at` would outlive its step)."""
    patch: dict[str, Any] = dict.fromkeys(k for k in previous if k not in new)
    for key, value in new.items():
        before = previous.get(key)
        patch[key] = merge_patch(before, value) if isinstance(value, dict) and isinstance(before, dict) else value
    return patch


def namespace_terminating(exc: ApiError) -> bool:
    """The API server refuses new objects in a namespace being deleted (NamespaceLifecycle admission, a 403 with
    this cause): the instance there is about to go too, so there is nothing left to reconcile."""
    details = exc.status.details
    return any(cause.reason == "NamespaceTerminating" for cause in (details.causes if details else None) or [])


class Kube:
    """A thin async facade over lightkube; `writes` counts write requests by kind."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self.writes: Counter[str] = Counter()
        # (namespace, name) -> an instance as this facade's last read or write of it answered, and the
        # resourceVersions its earlier reads and writes answered (each older than that answer: it came later).
        self._instances: dict[tuple[str, str], tuple[Manifest, tuple[str, ...]]] = {}

    def _saw(self, obj: Manifest) -> Manifest:
        metadata = obj["metadata"]
        key = metadata["namespace"], metadata["name"]
        before = self._instances.get(key)
        older = () if before is None else (*before[1][-(_OLDER_KEPT - 1) :], before[0]["metadata"]["resourceVersion"])
        self._instances[key] = obj, older
        return obj

    def latest(self, instance: Manifest) -> Manifest | None:
        """The newest version of `instance` (the watch's copy) that this facade holds, without a request: that
        copy when it is the version this facade last read or wrote (it holds the pass's own last status write,
        and nothing newer was seen through here); what that read or write answered when the copy is a version
        an earlier one answered (the watch has not delivered the write yet); that copy too when it differs from
        that answer in bookkeeping alone (kopf adding its finalizer: whichever is newer, a pass reads the same);
        that copy, kept as if read, when this facade has neither read nor written the instance yet (its first
        sight: nothing newer is known to this process, and a newer version reaches the watch as an event of its
        own); None when the copy is a version it never saw, with other changes, after one it did: either someone
        else wrote it after this facade, or the watch lags behind more versions than are kept — only a GET tells."""
        metadata = instance["metadata"]
        known = self._instances.get((metadata["namespace"], metadata["name"]))
        if known is None:
            return self._saw(instance)
        newest, older = known
        version = metadata.get("resourceVersion")
        if version in older:
            return newest
        if version == newest["metadata"]["resourceVersion"] or _unbookkept(instance) == _unbookkept(newest):
            return instance
        return None

    @staticmethod
    def connect() -> Kube:
        """A facade over a client for the current kubeconfig (or the pod's ServiceAccount)."""
        return Kube(AsyncClient(field_manager=meta.FIELD_MANAGER))

    async def monitoring(self, namespace: str, instance: str) -> dict[str, dict[str, Manifest]] | None:
        """The instance's ServiceMonitor and PrometheusRule by kind and name (one LIST each), or None when the
        cluster does not serve those kinds (the Prometheus Operator's CRDs are not installed: a 404)."""
        labels: dict[str, Any] = meta.owned_selector(instance)
        found: dict[str, dict[str, Manifest]] = {}
        for kind, resource in MONITORING_KINDS.items():
            metrics.api_request("list", kind)
            try:
                found[kind] = {
                    o.metadata.name: o.to_dict()
                    async for o in self._client.list(resource, namespace=namespace, labels=labels)
                }
            except (ApiError, httpx2.HTTPStatusError) as exc:
                # An unknown resource type is a plain-text 404, which lightkube raises as its HTTP client's error.
                if exc.response.status_code == 404:
                    return None
                raise
        return found

    async def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply; returns the object as the API server now has it."""
        self.writes[manifest["kind"]] += 1
        metrics.api_request("patch", manifest["kind"])  # server-side apply is a PATCH
        log.info(
            "applying %s %s/%s", manifest["kind"], manifest["metadata"].get("namespace"), manifest["metadata"]["name"]
        )
        obj = await self._client.apply(codecs.from_dict(manifest), field_manager=meta.FIELD_MANAGER, force=True)
        result: Manifest = obj.to_dict()  # type: ignore[no-untyped-call]
        return result

    async def create(self, manifest: Manifest) -> bool:
        """Create the object unless it exists (then False, and nothing is changed): for things made once and never
        overwritten, such as a generated passphrase, where an apply racing another writer would replace it."""
        self.writes[manifest["kind"]] += 1
        metrics.api_request("create", manifest["kind"])
        log.info("creating %s %s/%s", manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        try:
            await self._client.create(codecs.from_dict(manifest), field_manager=meta.FIELD_MANAGER)
        except ApiError as exc:
            if exc.status.code == 409:
                return False
            raise
        return True

    async def delete_cronjob(self, namespace: str, name: str) -> None:
        """The only deletion the operator makes (see manifests/rbac.yaml): its Jobs, ServiceAccount, Role and
        RoleBinding are the CronJob's, so the garbage collector takes them with it."""
        self.writes["CronJob/delete"] += 1
        metrics.api_request("delete", "CronJob")
        log.info("deleting CronJob %s/%s", namespace, name)
        try:
            await self._client.delete(CronJob, name, namespace=namespace, cascade=CascadeType.BACKGROUND)
        except ApiError as exc:
            if exc.status.code != 404:
                raise

    async def remove_annotations(self, namespace: str, name: str, keys: list[str]) -> None:
        """Take away one-shot command annotations (promote, abort, rotate-keys) once acted on."""
        self.writes["GhostPayInstance"] += 1
        metrics.api_request("patch", "GhostPayInstance")
        patch = {"metadata": {"annotations": dict.fromkeys(keys)}}
        obj = await self._client.patch(GhostPayInstance, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
        self._saw(obj.to_dict())  # type: ignore[no-untyped-call]

    async def scale(self, namespace: str, name: str, replicas: int) -> Manifest:
        """Resize a Deployment without touching its template (the other colour keeps the version it runs); returns
        it as the API server now has it."""
        self.writes["Deployment/replicas"] += 1
        metrics.api_request("patch", "Deployment")
        log.info("scaling Deployment %s/%s to %d", namespace, name, replicas)
        obj = await self._client.patch(
            Deployment,
            name,
            {"spec": {"replicas": replicas}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
            field_manager=meta.FIELD_MANAGER,
        )
        result: Manifest = obj.to_dict()
        return result

    async def _get(self, resource: Any, namespace: str, name: str) -> Manifest | None:
        metrics.api_request("get", resource.__name__)
        try:
            obj = await self._client.get(resource, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        result: Manifest = obj.to_dict()
        return result

    async def secret(self, namespace: str, name: str) -> Manifest | None:
        return await self._get(Secret, namespace, name)

    async def instance(self, namespace: str, name: str) -> Manifest | None:
        found = await self._get(GhostPayInstance, namespace, name)
        return None if found is None else self._saw(found)

    async def write_status(
        self, namespace: str, name: str, status: InstanceStatus, previous: InstanceStatus | None = None
    ) -> None:
        """Merge-patch the status; fields `previous` had and `status` has not are removed (`merge_patch`)."""
        self.writes["GhostPayInstance/status"] += 1
        metrics.api_request("patch", "GhostPayInstance/status")
        log.info("writing status of %s/%s: %s", namespace, name, status.get("phase"))
        patch = merge_patch(previous or {}, status)
        obj = await self._client.patch(
            GhostPayInstance.Status, name, {"status": patch}, namespace=namespace, patch_type=PatchType.MERGE
        )
        self._saw(obj.to_dict())  # type: ignore[no-untyped-call]


def _unbookkept(instance: Manifest) -> Manifest:
    """An instance without what no pass reads: its version, finalizers and the API server's field records."""
    metadata = {k: v for k, v in instance["metadata"].items() if k not in _BOOKKEEPING}
    return {**instance, "metadata": metadata}


def sync_client(field_manager: str) -> Client:
    """A blocking client for the current kubeconfig (or the pod's ServiceAccount) writing as `field_manager`."""
    return Client(field_manager=field_manager)


def instance_tree(name: str, namespace: str, client: Client | None = None) -> tuple[Manifest, list[Manifest]]:
    """An instance and the Deployments it owns (one GET, one LIST): what `ghostpay status` shows."""
    client = client or sync_client(meta.FIELD_MANAGER)
    instance: Manifest = client.get(GhostPayInstance, name, namespace=namespace).to_dict()  # type: ignore[no-untyped-call]
    labels: dict[str, Any] = meta.owned_selector(name)
    return instance, [d.to_dict() for d in client.list(Deployment, namespace=namespace, labels=labels)]
