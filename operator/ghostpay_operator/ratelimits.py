"""An instance's rate-limit policy as the services read it from Redis, and what the operator says about it. Pure.

The operator writes one Redis key per instance (`policy_key`) holding `document(spec)`: the spec's generation and,
for every role, the budget `spec.rateLimits` gives it (the services' defaults for roles it leaves out). Each
request's limiter script reads its role's budget from that key in the same call that spends it, so a change
applies on the next request and no pod restarts. The key's name never changes, so the pods learn it from the
ConfigMap (`GHOSTPAY_RATE_LIMIT_POLICY_KEY`) once. `written_state` and `events` turn what a write answered into
the `RateLimitsApplied` condition and the events of the pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ghostpay.core.settings import DEFAULT_RATE_LIMITS
from ghostpay_operator.kinds import Condition
from ghostpay_operator.spec import InstanceSpec
from ghostpay_operator.vocabulary import ConditionState, Event

CONDITION = "RateLimitsApplied"
KEY_PREFIX = "ghostpay:ratelimits:"  # the operator's Redis user needs no key outside `KEY_PREFIX*`


def policy_key(spec: InstanceSpec) -> str:
    """One key per instance; instances sharing a Redis do not share a policy."""
    return f"{KEY_PREFIX}{spec.namespace}:{spec.name}"


def limits(spec: InstanceSpec) -> dict[str, dict[str, Any]]:
    """Every role's budget: the spec's, else the services' default."""
    defaults: dict[str, dict[str, Any]] = {
        role: limit.model_dump(by_alias=True) for role, limit in DEFAULT_RATE_LIMITS.items()
    }
    return {**defaults, **spec.rate_limits}


def document(spec: InstanceSpec) -> str:
    """The key's value, as the limiter script reads it (`gcra.lua`)."""
    return json.dumps({"generation": spec.generation, "limits": limits(spec)}, sort_keys=True)


@dataclass(frozen=True)
class Write:
    """What a pass writes to Redis: `document` under `key`, on the Redis at `url` (the instance's own)."""

    url: str = field(repr=False)  # may carry a password: never in a log line
    key: str
    document: str
    generation: int
    unusable: tuple[str, str] | None = None  # (reason, message): no URL to write with (its Secret is missing)


@dataclass(frozen=True)
class Written:
    """What Redis answered: the value the key held before (None: absent), or why the write failed."""

    ok: bool
    previous: str | None = None
    reason: str = ""  # CamelCase, when not ok
    error: str = ""


def unusable(write: Write) -> Written | None:
    """The answer when there is nothing to write with, without asking Redis."""
    if write.unusable is None:
        return None
    reason, message = write.unusable
    return Written(ok=False, reason=reason, error=message)


def _limits_of(value: str | None) -> Any:
    try:
        return json.loads(value)["limits"] if value else None
    except (ValueError, KeyError, TypeError):
        return None


def written_state(write: Write, written: Written) -> ConditionState:
    if written.ok:
        message = f"spec.rateLimits of generation {write.generation} is in Redis key {write.key!r}; requests read it."
        return ConditionState(True, "Applied", message)
    message = (
        f"Could not write the rate limits of generation {write.generation} to Redis key {write.key!r} "
        f"({written.error}); the services keep the limits they last read. Retried at the next resync."
    )
    return ConditionState(False, written.reason, message)


def _summary(write: Write) -> str:
    return ", ".join(
        f"{role} {limit['requestsPerSecond']:g}/s burst {limit['burst']}"
        for role, limit in sorted(json.loads(write.document)["limits"].items())
    )


def events(before: Condition | None, write: Write, written: Written) -> list[Event]:
    """A Normal event when Redis now holds limits it did not (a change, or a lost key restored); a Warning when a
    write newly fails (not again at every resync while it keeps failing the same way)."""
    if written.ok:
        if _limits_of(written.previous) == _limits_of(write.document):
            return []
        how = "restored (the key was missing)" if written.previous is None and before is not None else "applied"
        return [Event("Normal", CONDITION, f"Rate limits {how} in Redis key {write.key!r}: {_summary(write)}.")]
    state = written_state(write, written)
    if before is not None and before.get("status") == "False" and before.get("reason") == state.reason:
        return []
    return [Event("Warning", "RateLimitsNotApplied", state.message)]
