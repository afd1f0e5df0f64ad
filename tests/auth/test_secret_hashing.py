"""Finding 2, in the small: the hasher's parameters, its bounded queue, and hashes made with the old parameters."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from argon2 import PasswordHasher, extract_parameters

from ghostpay.auth.hashing import SecretHasher
from ghostpay.core.errors import AuthBusy
from ghostpay.core.settings import Settings
from tests.conftest import Api


def test_finding_2_hashes_and_the_dummy_use_the_configured_low_memory_parameters(settings: Settings) -> None:
    hasher = SecretHasher(settings)
    for made in (hasher._dummy_hash, hasher._hasher.hash("a secret")):
        parameters = extract_parameters(made)
        assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19 * 1024, 2, 1)
        assert parameters.type.name == "ID"


async def test_finding_2_verifications_beyond_the_queue_are_shed_with_auth_busy(settings: Settings) -> None:
    hasher = SecretHasher(settings.model_copy(update={"auth_hash_concurrency": 1, "auth_hash_queue": 2}))
    outcomes = await asyncio.gather(*(hasher.matches(None, f"guess-{i}") for i in range(10)), return_exceptions=True)
    shed = [o for o in outcomes if isinstance(o, AuthBusy)]
    assert len(shed) + outcomes.count(False) == 10, outcomes  # nothing else, and no dummy check ever matches
    assert outcomes.count(False) == 1 + 2  # one running and two waiting were admitted, all at once
    assert shed and shed[0].status == 503 and shed[0].code == "auth_busy"
    assert shed[0].headers["Retry-After"] == "1"


async def test_finding_2_a_hash_made_with_the_old_parameters_verifies_and_is_upgraded(
    api: Api, database_url: str
) -> None:
    client = await api.merchant()
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)  # argon2-cffi's former default
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE clients SET secret_hash = $2 WHERE client_id = $1", client["client_id"], old.hash("old-secret")
        )
        assert await api.token(client["client_id"], "old-secret")
        upgraded = await conn.fetchval("SELECT secret_hash FROM clients WHERE client_id = $1", client["client_id"])
    finally:
        await conn.close()
    assert extract_parameters(upgraded).memory_cost == 19 * 1024
    assert await api.token(client["client_id"], "old-secret")


@pytest.mark.parametrize("bad", ["wrong", ""])
async def test_a_wrong_secret_does_not_match(settings: Settings, bad: str) -> None:
    hasher = SecretHasher(settings)
    made = await hasher.hash("right")
    assert await hasher.matches(made, "right")
    assert not await hasher.matches(made, bad)
