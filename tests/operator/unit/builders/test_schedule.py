"""The key-rotation schedule: which schedules a CronJob can run, and how old a key may get under each."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ghostpay_operator.builders import schedule as schedules


@pytest.mark.parametrize("schedule", ["0 3 * * *", "*/15 * * * *", "0 3 * * 1-5", "0 0 1 JAN MON", "@daily", "@hourly"])
def test_a_cron_schedule_or_descriptor_is_accepted(schedule: str) -> None:
    assert schedules.schedule_problem(schedule) is None


@pytest.mark.parametrize(
    "schedule", ["not a cron", "99 99 * * *", "", "* * * * * *", "0 3 * *", "@reboot", "@every 1h"]
)
def test_anything_else_is_a_problem_that_names_the_field(schedule: str) -> None:
    problem = schedules.schedule_problem(schedule)
    assert problem is not None and "spec.keyRotation.schedule" in problem and repr(schedule) in problem


HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("schedule", "longest_gap"),
    [
        ("0 3 * * *", timedelta(days=1)),
        ("@daily", timedelta(days=1)),
        ("*/15 * * * *", timedelta(minutes=15)),
        ("@hourly", HOUR),
        ("0 3 * * 1-5", timedelta(days=3)),  # Friday 03:00 to Monday 03:00
        ("0 0 1 * *", timedelta(days=31)),  # the longest month
        ("0 3 * * 0", timedelta(days=7)),
        ("0 0 29 2 *", timedelta(days=4 * 365 + 1)),  # leap days: one gap past the span looked at still counts
    ],
)
def test_a_key_may_live_the_longest_gap_between_runs_plus_an_hour(schedule: str, longest_gap: timedelta) -> None:
    max_age = schedules.key_max_age(schedule)
    assert max_age == longest_gap + HOUR


def test_a_schedule_no_cronjob_can_run_has_no_max_age() -> None:
    assert schedules.key_max_age("99 99 * * *") is None
