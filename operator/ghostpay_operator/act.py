"""act: carries a pass's `Actions` out through the one Kubernetes facade (`kube.Kube`), in the order written
here, then writes the status once, and only if it changed.

The order: the key store's Secrets (the pods mount them), the supporting objects (ServiceAccounts, ConfigMap,
budgets), the key-rotation CronJob and its access (which needs the CronJob's uid), a rotation Job asked for now
(ghostpay.io/rotate-keys), the migration Job, the
Deployments (only once the migration has succeeded: `decide` leaves them out before), then the routing (the
Services move only when their pods exist), then the rate-limit policy into the instance's Redis
(`policystore`; last, so a slow or unreachable Redis delays nothing else: its failure is a condition, not an
error). A 422 (the API server refuses an object made from the spec) stops the
writes and becomes the ChildRejected problem: retrying the same object cannot help; the user must change the spec.

No second read: the status reports the Deployments as the API server answered their writes (a new generation,
not yet rolled out), which the pass once re-listed for.
"""

from __future__ import annotations

from lightkube import ApiError

from ghostpay_operator import decide as decisions
from ghostpay_operator import keystore, policystore
from ghostpay_operator import status as st
from ghostpay_operator.builders import names
from ghostpay_operator.decide import Actions, Answered
from ghostpay_operator.kinds import InstanceStatus, Manifest
from ghostpay_operator.kube import Kube
from ghostpay_operator.readings import Observation
from ghostpay_operator.vocabulary import Event


async def _make_key_store(kube: Kube, obs: Observation, passphrase: str | None) -> None:
    """The passphrase Secret, then the key store's part Secrets encrypted with it: each created once, never
    overwritten (a create, not an apply, so a racing writer cannot replace a passphrase keys are already encrypted
    with; a lost race reads the winner's passphrase)."""
    spec = obs.spec
    if passphrase is None:
        made = keystore.passphrase_secret(spec)
        created = await kube.create(made)
        winner = made if created else await kube.secret(spec.namespace, names.key_passphrase_secret(spec.name))
        passphrase = keystore.passphrase_of(winner)
    if passphrase is not None:
        for secret in keystore.store_secrets(spec, passphrase):
            await kube.create(secret)


async def _apply(kube: Kube, manifests: list[Manifest]) -> None:
    for manifest in manifests:
        await kube.apply(manifest)


async def _write(kube: Kube, obs: Observation, actions: Actions, deployments: dict[str, Manifest]) -> None:
    """Every write of the pass, in order. Once all Deployments are written, `deployments` holds them as the API
    server answered (not before: a refusal half-way leaves the status on what was observed)."""
    namespace = obs.spec.namespace
    if actions.make_key_store:
        await _make_key_store(kube, obs, actions.passphrase)
    await _apply(kube, actions.supporting)
    if actions.delete_cronjob is not None:
        await kube.delete_cronjob(namespace, actions.delete_cronjob)
    uid = actions.cronjob_uid
    if actions.cronjob is not None:
        uid = (await kube.apply(actions.cronjob))["metadata"]["uid"]
    if uid is not None:
        await _apply(kube, decisions.key_rotation_access(obs, uid))
    if actions.rotation_job is not None:
        await kube.create(actions.rotation_job)  # exists already (409): the CronJob started this minute's run
    if actions.migration_job is not None:
        await kube.apply(actions.migration_job)
    answers = {}
    for manifest in actions.deployments:
        answer = await kube.apply(manifest)
        answers[answer["metadata"]["name"]] = answer
    for name, replicas in actions.scale.items():
        answers[name] = await kube.scale(namespace, name, replicas)
    deployments.update(answers)
    await _apply(kube, actions.routing)


async def act(kube: Kube, obs: Observation, actions: Actions) -> tuple[InstanceStatus, st.Problem | None, list[Event]]:
    """The writes, the consumed command annotations, then the status; returns the status, the problem that
    stands in the spec's way (if any) and the events to post."""
    answered = Answered()
    if actions.problem is None:
        deployments: dict[str, Manifest] = {}
        try:
            await _write(kube, obs, actions, deployments)
            written = await policystore.write(actions.rate_limits) if actions.rate_limits is not None else None
            answered = Answered(
                created_migration=actions.migration_job is not None, deployments=deployments, rate_limits=written
            )
        except ApiError as exc:
            if exc.status.code != 422:
                raise
            message = f"The API server refused an object made from this spec: {exc}"
            answered = Answered(rejected=st.Problem("ChildRejected", message), deployments=deployments)
    remove = actions.remove_annotations
    if answered.rejected is not None:  # the writes stopped, perhaps before the rotation Job: ask again next pass
        remove = [key for key in remove if key != decisions.ROTATE_KEYS]
    if remove:
        await kube.remove_annotations(obs.spec.namespace, obs.spec.name, remove)
    status, events = decisions.conclude(obs, actions, answered)
    if status != obs.previous:
        await kube.write_status(obs.spec.namespace, obs.spec.name, status, obs.previous)
    return status, actions.problem or answered.rejected, events
