"""One reconcile pass for one instance: observe → decide → act.

`observe` reads (the only code that does), `decide` is pure (observation in, actions out; then the status and
events from what the writes answered), `act` writes through `kube.Kube` in an order written in one place and the
status once, only if it changed. Called by the kopf handlers; knows nothing of kopf. Every pass starts from the
cluster (as the operator's watches and its reads show it) and the resource's status, never from what an earlier
pass concluded, so an operator killed mid-pass resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ghostpay_operator import release
from ghostpay_operator import status as st
from ghostpay_operator.act import act
from ghostpay_operator.decide import decide
from ghostpay_operator.kinds import InstanceStatus, Manifest
from ghostpay_operator.kube import Kube
from ghostpay_operator.observe import Checked, Owned, observe
from ghostpay_operator.vocabulary import AnalysisResult, Event


@dataclass(frozen=True)
class Outcome:
    status: InstanceStatus
    problem: st.Problem | None  # what stands in the spec's way: the handlers retry with back-off
    events: list[Event] = field(default_factory=list)  # to post on the instance
    analysis: AnalysisResult | None = None  # the release analysis of the pass, when one was measured
    wake_after: float | None = None  # seconds until the release's next decision that only time brings


async def reconcile(
    kube: Kube,
    owned: Owned,
    body: Manifest,
    now: datetime | None = None,
    full: bool = True,
    checked: Checked | None = None,
) -> Outcome:
    """`owned`: the watch-fed caches of the instance's children, `checked`: what earlier passes found of the
    Secrets the spec names (see `observe`). A full pass checks and applies everything; a workloads-only pass
    (`full=False`, after an owned Deployment or Job changed) skips the supporting objects (ServiceAccount,
    ConfigMap, budgets, key Secrets, key rotation) and reads the database and Redis Secrets only when `checked`
    has no verdict on them for this generation."""
    observation = await observe(kube, owned, body, now or datetime.now(UTC), full, checked)
    actions = decide(observation)
    status, problem, events = await act(kube, observation, actions)
    wake = release.wake_after(observation.spec, actions.plan.release, observation.now)
    return Outcome(status, problem, events, observation.analysis, wake)
