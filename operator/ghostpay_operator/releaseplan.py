"""The release state machine's records: what it is shown (`ReleaseFacts`, `ColorState`), what it keeps in
`status.release` (`Release`), and what it answers (`Plan`). Pure data; `release.decide` makes the decisions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ghostpay_operator.vocabulary import (
    BLUE,
    COLORS,
    IN_PROGRESS,
    AnalysisResult,
    Color,
    Event,
    MigrationState,
    ReleaseOutcome,
    ReleasePhase,
    other,
)


@dataclass(frozen=True)
class ColorState:
    """One colour's Deployments, all services together."""

    template_hash: str | None  # None: this colour has no Deployments
    version: str | None
    ready: bool  # every service has all its desired pods ready on this template
    # Each service's Deployment's spec.replicas as read: what `ready` was judged against. A canary step counts as
    # Ready only at its own counts — a read of the Deployment from before the step's resize is rolled out too.
    replicas: dict[str, int] = field(default_factory=dict)


NO_DEPLOYMENTS = ColorState(None, None, False)


@dataclass(frozen=True)
class ReleaseFacts:
    """What the release state machine looks at in one pass."""

    colors: dict[Color, ColorState]
    migration: MigrationState = "succeeded"  # the migration Job of the desired image
    analysis: AnalysisResult | None = None  # None: not configured, or not measured yet
    promote: bool = False  # ghostpay.io/promote annotation
    abort: bool = False  # ghostpay.io/abort annotation


@dataclass(frozen=True)
class Release:
    """`status.release`: the release in progress (or the one last rolled back)."""

    target_hash: str
    version: str
    color: Color
    started_at: str
    step: int = 0  # canary: index into canarySteps
    step_started_at: str | None = None
    step_ready_at: str | None = None  # canary: when every pod of the current step was first seen Ready
    switched_at: str | None = None  # blue-green: when the Services moved to the new colour
    outcome: ReleaseOutcome = IN_PROGRESS
    reason: str = ""
    message: str = ""

    def to_status(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @staticmethod
    def from_status(raw: dict[str, Any] | None) -> Release | None:
        if not raw:
            return None
        return Release(**{k: raw[k] for k in Release.__dataclass_fields__ if k in raw})


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What to make true now. `share[color]` is a fraction of each service's desired replicas (0..1).

    Keyword-only: `service_selects` and `preview_selects` have one type, so only their names keep them apart."""

    stable_color: Color
    share: dict[Color, float]  # per colour, the share of each service's replicas
    new_template_color: Color | None  # the colour that runs the desired template (None: no release)
    service_selects: Color | None  # the colour every Service selects; None: both (canary)
    preview_selects: Color | None
    release: Release | None
    phase: ReleasePhase
    reason: str
    message: str
    promoted_version: str | None = None  # set when a release completes: the new stable version
    events: list[Event] = field(default_factory=list)

    @property
    def active_color(self) -> Color:
        """The colour traffic goes to (`status.activeColor`): the one every Service selects, or during a canary the
        one running the larger share of pods (the stable one on a tie)."""
        if self.service_selects is not None:
            return self.service_selects
        new = other(self.stable_color)
        return new if self.share.get(new, 0.0) > self.share.get(self.stable_color, 0.0) else self.stable_color

    @property
    def serving_colors(self) -> tuple[Color, ...]:
        """The colours whose pods receive traffic: one, or both during a canary."""
        return (self.service_selects,) if self.service_selects is not None else COLORS


def stable_color_of(active_color: Color, release: Release | None) -> Color:
    """The stable colour, from the last status: during a release the one it is not on (traffic may already be on
    the new colour), otherwise the active one."""
    if release is not None and release.outcome == IN_PROGRESS:
        return other(release.color)
    return active_color


def stamp(moment: datetime) -> str:
    """A status timestamp (RFC 3339, seconds, UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def elapsed(since: str | None, now: datetime) -> float:
    """Seconds from the timestamp `since` to `now` (0 without one)."""
    return (now - parse_stamp(since)).total_seconds() if since else 0.0


DEFAULT_ACTIVE: Color = BLUE  # the colour of a first install
