"""observe: the only code of a reconcile pass that reads — the API server through `kube.Kube` and the watch-fed
caches (`Owned`), Prometheus through `analysis`, the database through `database` — building one frozen
`Observation` that `decide` works from.

Children come from the caches the operator's watches keep (kopf indices, declared in `handlers`): no request at
all, never object by object. Secrets are read by name, since the operator's role may not list or watch Secrets;
the database and Redis Secrets only by a full pass, or by a workloads-only pass of a generation no pass of this
process has read them for (`Checked`): a workloads-only pass needs of them only whether they are usable.
The database and Prometheus are asked only when the answer can matter: the database only before a new key store
would be made, Prometheus only while a release's new colour is up.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from ghostpay_operator import analysis, database, readings
from ghostpay_operator import spec as specs
from ghostpay_operator import status as st
from ghostpay_operator.builders import names
from ghostpay_operator.kinds import InstanceStatus, Manifest
from ghostpay_operator.kube import Kube
from ghostpay_operator.readings import Observation, spec_problem, without_kopf
from ghostpay_operator.releaseplan import Release
from ghostpay_operator.vocabulary import COLORS, IN_PROGRESS, AnalysisResult, other

# What the last pass of this process that read them found wrong with the database and Redis Secrets an instance
# names: uid -> (the instance's generation then, the problem; None: both usable). Only that verdict is kept, never a
# value read from a Secret. A workloads-only pass of the same generation takes it instead of reading them again; a
# full pass (a spec change, every resync, each back-off retry) always reads them, so a Secret deleted, broken or
# fixed shows at the next full pass.
Checked = dict[str, tuple[int, st.Problem | None]]

# The watch-fed caches of what the operator owns, all kinds but Secrets: kind -> (namespace, instance) -> the live
# objects (`handlers` declares them as kopf indices; a unit test passes plain dicts).
Owned = Mapping[str, Mapping[tuple[str, str], Collection[Manifest]]]


def _children(owned: Owned, spec: specs.InstanceSpec) -> dict[str, dict[str, Manifest]]:
    """What the instance owns, by kind and name, as the watches last saw it (no request)."""
    key = (spec.namespace, spec.name)
    return {kind: {o["metadata"]["name"]: o for o in cache.get(key, ())} for kind, cache in owned.items()}


async def _key_secrets(kube: Kube, spec: specs.InstanceSpec, full: bool) -> dict[str, Manifest]:
    found: dict[str, Manifest] = {}
    if full and spec.vault is None:
        for name in (names.key_passphrase_secret(spec.name), *names.key_part_secrets(spec.name)):
            secret = await kube.secret(spec.namespace, name)
            if secret is not None:
                found[name] = secret
    return found


async def _referenced_secrets(
    kube: Kube, spec: specs.InstanceSpec
) -> tuple[st.Problem | None, str | None, str | None]:
    """A problem with the database or Redis Secret, the database's DSN, and the Redis URL (the rate-limit policy
    is written there)."""
    name = spec.database_secret
    dsn = readings.secret_value(
        await kube.secret(spec.namespace, name), name, spec.database_key, "spec.database.secretRef", "Database"
    )
    if isinstance(dsn, st.Problem):
        return dsn, None, None
    if spec.redis_secret is not None:
        name = spec.redis_secret
        url = readings.secret_value(
            await kube.secret(spec.namespace, name), name, spec.redis_key, "spec.redis.secretRef", "Redis"
        )
        if isinstance(url, st.Problem):
            return url, dsn, None
        return None, dsn, url.strip()
    return None, dsn, spec.redis_url


async def _policy_redis_url(kube: Kube, spec: specs.InstanceSpec, services_url: str | None) -> str | st.Problem | None:
    """Where the operator writes the rate-limit policy: `spec.redis.operatorSecretRef`'s URL, else the services'."""
    name = spec.redis_operator_secret
    if name is None:
        return services_url
    field = "spec.redis.operatorSecretRef"
    url = readings.secret_value(await kube.secret(spec.namespace, name), name, spec.redis_operator_key, field, "Redis")
    return url if isinstance(url, st.Problem) else url.strip()


async def _analysis(
    spec: specs.InstanceSpec, previous: InstanceStatus, deployments: dict[str, Manifest]
) -> AnalysisResult | None:
    """The new version against the thresholds of spec.release.analysis (the stable colour's version as the
    baseline), once its pods are up and a release is under way.
    None (no data yet, or Prometheus unreachable) holds the release; the deadline then rolls it back."""
    url = spec.release.prometheus_url
    current = Release.from_status(previous.get("release"))
    if url is None or current is None or current.outcome != IN_PROGRESS:
        return None
    colors = {c: readings.color_state(spec, deployments, c) for c in COLORS}
    if not colors[current.color].ready:
        return None
    stable_version = colors[other(current.color)].version or current.version
    return await analysis.judged(url, current.version, stable_version, spec.release)


async def _referenced(
    kube: Kube, spec: specs.InstanceSpec, full: bool, checked: Checked | None
) -> tuple[st.Problem | None, str | None, str | None]:
    """`_referenced_secrets`, or on a workloads-only pass the verdict `checked` holds for this generation (then no
    DSN or URL: such a pass uses neither)."""
    remembered = None if full or checked is None else checked.get(spec.uid)
    if remembered is not None and remembered[0] == spec.generation:
        return remembered[1], None, None
    problem, dsn, redis_url = await _referenced_secrets(kube, spec)
    if checked is not None:
        checked[spec.uid] = (spec.generation, problem)
    return problem, dsn, redis_url


async def observe(
    kube: Kube, owned: Owned, body: Manifest, now: datetime, full: bool, checked: Checked | None = None
) -> Observation:
    """`checked`: the verdicts on the referenced Secrets this process keeps (None: read them on every pass)."""
    spec = specs.parse(body)
    previous = without_kopf(body.get("status") or {})
    children = _children(owned, spec)
    monitoring = await kube.monitoring(spec.namespace, spec.name) if full else None  # Prometheus Operator's kinds
    key_secrets = await _key_secrets(kube, spec, full)
    referenced_problem, dsn, redis_url = await _referenced(kube, spec, full, checked)
    holds: bool | None = None
    no_part = not any(name in key_secrets for name in names.key_part_secrets(spec.name))
    if full and spec.vault is None and no_part and dsn is not None and not (spec_problem(spec) or referenced_problem):
        holds = await database.holds_local_data_keys(dsn)
    return Observation(
        body=body,
        spec=spec,
        previous=previous,
        full=full,
        children={**children, **(monitoring or {})},
        key_secrets=key_secrets,
        referenced_problem=referenced_problem,
        database_holds_local_keys=holds,
        analysis=await _analysis(spec, previous, children["Deployment"]),
        now=now,
        redis_url=await _policy_redis_url(kube, spec, redis_url) if full else None,
        prometheus_operator=monitoring is not None,
    )
