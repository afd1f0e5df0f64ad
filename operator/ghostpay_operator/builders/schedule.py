"""The key-rotation schedule (`spec.keyRotation.schedule`): whether a CronJob can run on it, and the longest a
signing key can then live, which the services export so that an overdue rotation pages someone."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from croniter import croniter

# The schedules a CronJob takes besides five cron fields (Kubernetes' parser knows these descriptors).
MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# A missed or slow run is not yet overdue: the Job may start late, retry, and the new key waits before it signs.
MAX_AGE_SLACK = timedelta(hours=1)
# Runs looked at to find the longest gap: a year and a bit (every month length and weekday combination) for a
# daily schedule; a schedule running more often than hourly repeats its pattern well within the cap.
_SPAN = timedelta(days=400)
_MAX_RUNS = 20_000
_FROM = datetime(2025, 1, 1, tzinfo=UTC)  # fixed, so the result (and the pods' config hash) never drifts


def schedule_problem(schedule: str) -> str | None:
    """Why a CronJob could not run on `schedule`, or None. The CRD refuses most bad schedules at apply time; one it
    lets through (say `99 99 * * *`) must become a clear status, not a CronJob the API server keeps refusing."""
    if schedule in MACROS or (len(schedule.split()) == 5 and croniter.is_valid(schedule)):
        return None
    return (
        f"spec.keyRotation.schedule {schedule!r} is not a cron schedule: five fields (minute hour day-of-month "
        f"month day-of-week) or one of {', '.join(MACROS)}."
    )


@functools.lru_cache(maxsize=64)
def key_max_age(schedule: str) -> timedelta | None:
    """The longest gap between two runs of a valid `schedule`, plus MAX_AGE_SLACK: a signing key older than this
    means a rotation was missed. None for a schedule no CronJob can run."""
    if schedule_problem(schedule):
        return None
    runs = croniter(schedule, _FROM)
    previous = runs.get_next(datetime)
    longest = timedelta(0)
    for _ in range(_MAX_RUNS):
        current = runs.get_next(datetime)
        longest = max(longest, current - previous)
        if current - _FROM > _SPAN:
            break
        previous = current
    return longest + MAX_AGE_SLACK
