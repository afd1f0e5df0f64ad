"""Charge rules: one approval per single-use card, declines recorded, idempotency keys honoured.

Called by `charges.api`. The rules themselves run inside PostgreSQL (see `charges.store`); this module builds
the attempt, and turns the outcome into a charge or a typed error.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ghostpay.charges import store
from ghostpay.core import faults, money, pagination
from ghostpay.core.errors import (
    CardDeclined,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    NotFound,
)
from ghostpay.core.ids import new_id
from ghostpay.core.runtime import Runtime
from ghostpay.core.telemetry import CHARGED_AMOUNT, CHARGES
from ghostpay.core.tokens import Principal

REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class ChargeResult:
    charge: store.ChargeRow
    replayed: bool


def visibility_of(principal: Principal) -> store.Visibility:
    """Admin sees every charge, a merchant its own, a user the charges on its cards."""
    if principal.role == "merchant":
        return store.Visibility(merchant_id=principal.merchant_id)
    if principal.role == "user":
        return store.Visibility(card_user_id=principal.user_id)
    return store.Visibility()


def request_fingerprint(card_id: str, amount: int, currency: str) -> bytes:
    """What "the same body" means for an idempotency key: the validated fields, canonically encoded."""
    canonical = json.dumps({"amount": amount, "card_id": card_id, "currency": currency}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).digest()


def _declined(charge: store.ChargeRow, replayed: bool) -> CardDeclined:
    return CardDeclined(
        f"The card was declined: {charge.decline_code}.",
        response_headers={REPLAYED_HEADER: "true"} if replayed else None,
        decline_code=charge.decline_code,
        charge_id=charge.charge_id,
    )


async def create_charge(
    runtime: Runtime, principal: Principal, card_id: str, amount: int, currency: str, idempotency_key: str | None
) -> ChargeResult:
    faults.check_charge(runtime.settings)
    attempt = store.ChargeAttempt(
        charge_id=new_id("ch"),
        card_id=card_id,
        merchant_scope=principal.merchant_id if principal.role == "merchant" else None,
        amount=amount,
        currency=currency,
        owner_id=principal.client_id,
        idempotency_key=idempotency_key,
        # Compared only with an earlier use of the same key: without one there is nothing to compare it with.
        request_hash=request_fingerprint(card_id, amount, currency) if idempotency_key is not None else None,
    )
    outcome = await store.charge(runtime.pool, attempt)
    if outcome.kind == "not_found":
        raise NotFound(f"No card {card_id!r}.")
    if outcome.kind == "in_flight":
        raise IdempotencyKeyInFlight("A request with this Idempotency-Key is still being processed; retry later.")
    if outcome.kind == "key_reused":
        raise IdempotencyKeyReused("This Idempotency-Key was used with a different request body.")
    assert outcome.charge is not None
    replayed = outcome.kind == "replayed"
    if not replayed:
        _outcome_series(outcome.charge.status, outcome.charge.decline_code or "").inc()
        if outcome.charge.status == "approved":
            major = outcome.charge.amount / 10 ** money.minor_unit_exponent(outcome.charge.currency)
            _amount_series(outcome.charge.currency).inc(major)
    if outcome.charge.status == "declined":
        raise _declined(outcome.charge, replayed)
    return ChargeResult(outcome.charge, replayed)


# `labels()` validates and looks its series up under a lock on every call; the series stay registered, so
# remembering them loses no count (bounded: statuses and decline codes are few, currencies are ISO 4217's).
@functools.lru_cache(maxsize=256)
def _outcome_series(status: str, decline_code: str) -> Any:
    return CHARGES.labels(status, decline_code)


@functools.lru_cache(maxsize=256)
def _amount_series(currency: str) -> Any:
    return CHARGED_AMOUNT.labels(currency)


async def get_charge(runtime: Runtime, principal: Principal, charge_id: str) -> store.ChargeRow:
    charge = await store.get_charge(runtime.pool, charge_id, visibility_of(principal))
    if charge is None:
        raise NotFound(f"No charge {charge_id!r}.")
    return charge


async def list_charges(
    runtime: Runtime, principal: Principal, card_id: str | None, limit: int, starting_after: str | None
) -> tuple[list[store.ChargeRow], bool]:
    visibility = visibility_of(principal)
    return await pagination.page_after(
        lambda charge_id: store.get_charge(runtime.pool, charge_id, visibility),
        lambda cursor, n: store.list_charges(runtime.pool, visibility, card_id, n, cursor),
        limit,
        starting_after,
        "charge",
    )
