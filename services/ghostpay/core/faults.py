"""Test-only faults: how a broken release misbehaves, so rollback and analysis can be tried on real processes.

`GHOSTPAY_FAULT` (off by default, refused with `GHOSTPAY_ENVIRONMENT=production` by `Settings`) picks one:

- `never-ready`: `/readyz` always answers 503, so the release's pods never turn Ready;
- `crash-after-start`: the process serves normally, then exits with status 70 after `GHOSTPAY_FAULT_DELAY_SECONDS`
  (Ready first, then a crash loop: what a bad version that fails under real use looks like);
- `charges-5xx`: `POST /charges` answers a 500 problem without touching the database;
- `decline-charges`: `POST /charges` declines every charge (402 `card_declined`, decline code `fault_injected`,
  counted in `ghostpay_charges_total` like any decline) without touching the database: no 5xx, but a version
  a payment-aware analysis must refuse.
"""

from __future__ import annotations

import asyncio
import os

from ghostpay.core.errors import CardDeclined, DomainError
from ghostpay.core.settings import Settings
from ghostpay.core.telemetry import CHARGES

DECLINE_CODE = "fault_injected"
CRASH_STATUS = 70  # EX_SOFTWARE


class InjectedFault(DomainError):
    status, code, title = 500, "fault_injected", "Injected fault"


def check_charge(settings: Settings) -> None:
    """Raises what a charge answers under the charge faults; nothing otherwise (called before any round trip)."""
    if settings.fault == "charges-5xx":
        raise InjectedFault("GHOSTPAY_FAULT=charges-5xx: this test release fails every charge.")
    if settings.fault == "decline-charges":
        CHARGES.labels("declined", DECLINE_CODE).inc()
        raise CardDeclined(f"The card was declined: {DECLINE_CODE}.", decline_code=DECLINE_CODE)


def blocks_readiness(settings: Settings) -> bool:
    return settings.fault == "never-ready"


async def crash_later(settings: Settings) -> None:
    """The `crash-after-start` fault's background task: exit the whole process, as an unhandled crash would."""
    await asyncio.sleep(settings.fault_delay_seconds)
    os._exit(CRASH_STATUS)
