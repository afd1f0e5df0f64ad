"""The operator's vocabulary: every state it reasons about, as a closed type, and the small records it passes.

One name per meaning, defined here once: colours, migration states, analysis verdicts, release outcomes, phases
(of the release plan and of the instance's status, one set), event types, and the records for an event and for a
condition's state. Pure; imports nothing of the operator.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

Color = Literal["blue", "green"]
BLUE: Final = "blue"
GREEN: Final = "green"
COLORS: tuple[Color, Color] = (BLUE, GREEN)


def other(color: Color) -> Color:
    """The colour that is not `color`."""
    return GREEN if color == BLUE else BLUE


# The migration Job of the desired image, as observed (absent: not made yet).
MigrationState = Literal["absent", "running", "succeeded", "failed"]

# Release analysis: the new version within every threshold of spec.release.analysis, or not. None: not measured.
AnalysisVerdict = Literal["pass", "fail"]
PASS: Final = "pass"  # noqa: S105 - an analysis verdict, not a password
FAIL: Final = "fail"
# Which check of the analysis decided: the 5xx share, the decline rate or the charge p99 (each against its
# threshold in spec.release.analysis), or all of them together when the release passes.
AnalysisCheck = Literal["error_rate", "decline_rate", "charge_p99", "all"]

# `status.release.outcome`: a release under way, or the one last rolled back (kept until the spec changes).
ReleaseOutcome = Literal["InProgress", "RolledBack"]
IN_PROGRESS: Final = "InProgress"

# `status.phase`. The release plan speaks a subset of it (ReleasePhase); the status adds Pending and Degraded.
Phase = Literal["Pending", "Healthy", "Progressing", "Paused", "Degraded", "RolledBack"]
ReleasePhase = Literal["Healthy", "Progressing", "Paused", "RolledBack"]
PENDING: Final = "Pending"
HEALTHY: Final = "Healthy"
PROGRESSING: Final = "Progressing"
PAUSED: Final = "Paused"
DEGRADED: Final = "Degraded"
ROLLED_BACK: Final = "RolledBack"  # a phase, and a release outcome

# What the local key store's Secrets need: nothing, or to be made (a refusal is a status.Problem instead).
KeyStoreAction = Literal["ready", "make"]

EventType = Literal["Normal", "Warning"]


class Event(NamedTuple):
    """A Kubernetes Event worth telling a user, posted on the instance."""

    type: EventType
    reason: str
    message: str


class AnalysisResult(NamedTuple):
    """A release analysis' outcome: the verdict, the check that decided it, and a sentence for the status."""

    verdict: AnalysisVerdict
    check: AnalysisCheck
    message: str


class ConditionState(NamedTuple):
    """What one status condition says: whether it holds, and why."""

    holds: bool
    reason: str
    message: str
