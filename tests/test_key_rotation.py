"""Live key rotation, end to end, on both key backends: `ghostpay serve auth` signs, `ghostpay serve cards`
verifies (a separate process, so it must learn each new key on its own), and `ghostpay keys rotate` runs as the
CronJob would. Under continuous load of several clients, three rotations cost zero 401s and zero 5xx; a retired
key is refused after its grace period; PANs sealed before a rotation still open after it and after the rewrap;
and (Vault) an outage never fails a verification, while issuance answers 503 and recovers by itself.

Short timings make it quick: verifiers refresh every 0.5 s, a new key signs 1 s after it is published, tokens
live 6 s and so does the grace period. Every loop is bounded in time.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest

from ghostpay.cards import sealing
from ghostpay.core.keys import KeyBackend, wrapping
from ghostpay.core.keys.cache import KeyCache
from ghostpay.core.keys.local import LocalKeyStore
from ghostpay.core.keys.ring import KeysUnavailable
from ghostpay.core.keys.vault import VaultKeys
from ghostpay.core.settings import Settings
from ghostpay.core.tokens import Principal, claims_for, issue_token
from tests.conftest import ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS
from tests.support import procs, transit
from tests.support.servers import Servers, fresh_database
from tests.support.vault import DevVault

pytestmark = pytest.mark.slow

GRACE_SECONDS = 6
FAST_KEYS = {
    "GHOSTPAY_KEY_REFRESH_SECONDS": "0.5",
    "GHOSTPAY_KEY_MIN_REFRESH_SECONDS": "0.2",
    "GHOSTPAY_KEY_ACTIVATION_DELAY_SECONDS": "1",
    "GHOSTPAY_TOKEN_TTL_SECONDS": str(GRACE_SECONDS),
    "GHOSTPAY_KEY_GRACE_PERIOD": f"{GRACE_SECONDS}s",
}
CLIENTS = 4
TOKEN_RENEWAL_SECONDS = 2.0
ROTATIONS = 3
ROTATION_INTERVAL_SECONDS = 3.0
LOAD_CAP_SECONDS = 90.0


@dataclass
class Backend:
    """One key backend as the services see it (their env), as `keys rotate` sees it, and as the test sees it."""

    name: str
    service_env: dict[str, str]
    rotation_env: dict[str, str]
    keys: KeyBackend
    vault: DevVault | None = None


@dataclass
class Stack:
    backend: Backend
    auth: procs.Proc
    cards: procs.Proc
    database_url: str
    merchant: dict[str, str] = field(default_factory=dict)


@pytest.fixture(params=["local", "vault"], scope="module")
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    if request.param == "local":
        keys_dir = tmp_path_factory.mktemp("rotation-keys")
        env = {"GHOSTPAY_KEYS_DIR": str(keys_dir), "GHOSTPAY_KEYS_PASSPHRASE": procs.KEYS_PASSPHRASE}
        return Backend("local", env, env, LocalKeyStore(keys_dir, procs.KEYS_PASSPHRASE).open())
    vault: DevVault = request.getfixturevalue("persistent_vault")
    root = vault.client()
    transit.prepare(root)
    service_token = transit.token(root, *transit.SERVICE_POLICIES)
    rotation_token = transit.token(root, "key-rotation")
    keys = VaultKeys(Settings(vault_addr=vault.addr, vault_token=vault.root_token))
    return Backend("vault", transit.env(vault, service_token), transit.env(vault, rotation_token), keys, vault)


@pytest.fixture(scope="module")
async def stack(backend: Backend, servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    # A database per backend: data keys wrapped by one backend mean nothing to the other.
    database_url = await fresh_database(servers.database_url, f"gp_rotation_{backend.name}")
    env = procs.service_env(
        database_url, servers.redis_url, Path("/nonexistent"), ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS
    )
    env = {**env, **FAST_KEYS, **backend.service_env}
    logs = tmp_path_factory.mktemp(f"rotation-{backend.name}")
    with procs.running(procs.serve("auth", env, logs), procs.serve("cards", env, logs)) as (auth, cards):
        running = Stack(backend, auth, cards, database_url)
        running.merchant = await _new_merchant(auth.url)
        yield running


async def _token(http: httpx.AsyncClient, auth_url: str, client_id: str, secret: str) -> httpx.Response:
    return await http.post(f"{auth_url}/auth/token", json={"client_id": client_id, "client_secret": secret})


async def _new_merchant(auth_url: str) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=10) as http:
        admin = (await _token(http, auth_url, ADMIN_ID, ADMIN_SECRET)).json()["access_token"]
        created = await http.post(
            f"{auth_url}/auth/clients",
            json={"name": "rotation-merchant", "role": "merchant"},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert created.status_code == 201, created.text
        return dict(created.json())


def rotate(backend: Backend, *extra: str) -> subprocess.CompletedProcess[str]:
    """`ghostpay keys rotate`, as the CronJob runs it (its own credentials: the key-rotation policy in Vault)."""
    env = {**FAST_KEYS, **backend.rotation_env}
    return procs.run_cli("keys", "rotate", "--grace-period", f"{GRACE_SECONDS}s", *extra, env=env, timeout=60)


async def long_lived_token(stack: Stack) -> str:
    """A token valid for an hour, signed by the key that signs now (the test holds the backend's keys)."""
    keys = KeyCache(stack.backend.keys, 30, 0, activation_delay=1)
    assert await keys.refresh()
    principal = Principal(stack.merchant["client_id"], "merchant", merchant_id=stack.merchant["client_id"])
    return await issue_token(keys, claims_for(principal, "ghostpay", "ghostpay", 3600))


@dataclass
class Load:
    stop_at: float  # moved closer by the rotations once they are done
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    kids: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


async def _client(http: httpx.AsyncClient, stack: Stack, load: Load) -> None:
    """Renew a token every TOKEN_RENEWAL_SECONDS (so old tokens stay in use across rotations) and use it."""
    token, renewed_at = "", float("-inf")
    while time.monotonic() < load.stop_at:
        if time.monotonic() - renewed_at >= TOKEN_RENEWAL_SECONDS:
            response = await _token(http, stack.auth.url, stack.merchant["client_id"], stack.merchant["client_secret"])
            load.statuses["token", response.status_code] += 1
            if response.status_code == 200:
                token, renewed_at = response.json()["access_token"], time.monotonic()
                load.kids.add(jwt.get_unverified_header(token)["kid"])
            else:
                load.failures.append(f"token {response.status_code}: {response.text[:200]}")
        if token:
            used = await http.get(f"{stack.cards.url}/cards?limit=1", headers={"Authorization": f"Bearer {token}"})
            load.statuses["use", used.status_code] += 1
            if used.status_code != 200:
                load.failures.append(f"use {used.status_code}: {used.text[:200]}")
        await asyncio.sleep(0.05)


async def _rotations(backend: Backend, outputs: list[subprocess.CompletedProcess[str]], load: Load) -> None:
    for _ in range(ROTATIONS):
        await asyncio.sleep(ROTATION_INTERVAL_SECONDS)
        outputs.append(await asyncio.to_thread(rotate, backend))
    # Long enough for the last version to start signing and for every client to renew its token with it.
    load.stop_at = min(load.stop_at, time.monotonic() + 1 + 2 * TOKEN_RENEWAL_SECONDS)


async def test_three_rotations_under_load_fail_no_request(stack: Stack) -> None:
    first_key_token = await long_lived_token(stack)
    headers = {"Authorization": f"Bearer {first_key_token}"}
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{stack.cards.url}/cards", headers=headers)).status_code == 200
        first_kid = jwt.get_unverified_header(first_key_token)["kid"]

        load, outputs = Load(stop_at=time.monotonic() + LOAD_CAP_SECONDS), []
        await asyncio.gather(
            _rotations(stack.backend, outputs, load), *(_client(http, stack, load) for _ in range(CLIENTS))
        )

        assert [o.returncode for o in outputs] == [0] * ROTATIONS, [o.stderr for o in outputs]
        assert load.failures == [], load.failures[:5]
        assert {status for _, status in load.statuses} == {200}, load.statuses
        assert load.statuses["use", 200] > 50 * CLIENTS // 10, load.statuses  # it was load, not a handful
        assert len(load.kids) == ROTATIONS + 1, load.kids  # tokens really were signed by each new version

        # Once its grace period is over, a rotation retires the first key (maybe one of the three already did):
        # its kid leaves the JWKS and even a token of it that has not expired is refused.
        await asyncio.sleep(GRACE_SECONDS + 1)
        outputs.append(rotate(stack.backend))
        assert outputs[-1].returncode == 0, outputs[-1].stderr
        retired_lines = [line for o in outputs for line in o.stdout.splitlines() if line.startswith("retired:")]
        assert any(first_kid in line for line in retired_lines), retired_lines
        deadline = time.monotonic() + 10
        refused = await http.get(f"{stack.cards.url}/cards", headers=headers)
        while refused.status_code == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            refused = await http.get(f"{stack.cards.url}/cards", headers=headers)
        assert refused.status_code == 401 and "unknown key" in refused.json()["detail"], refused.text
        jwks = (await http.get(f"{stack.auth.url}/.well-known/jwks.json")).json()
        assert first_kid not in {key["kid"] for key in jwks["keys"]}


async def _stored_pan(database_url: str, backend: KeyBackend, card_id: str) -> tuple[str, bytes]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT c.pan_ciphertext, c.data_key_id, k.wrapped_key FROM cards c "
            "JOIN data_keys k ON k.key_id = c.data_key_id WHERE c.card_id = $1",
            card_id,
        )
    finally:
        await conn.close()
    data_key = sealing.DataKey(row["data_key_id"], backend.unwrap(row["wrapped_key"]))
    return sealing.unseal_pan(data_key, card_id, row["pan_ciphertext"]), bytes(row["wrapped_key"])


async def test_pans_sealed_before_a_rotation_open_after_it_and_after_the_rewrap(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        merchant = stack.merchant
        token = (await _token(http, stack.auth.url, merchant["client_id"], merchant["client_secret"])).json()
        card = await http.post(
            f"{stack.cards.url}/cards",
            json={"user_id": "usr_rotation", "amount": 500, "currency": "EUR"},
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert card.status_code == 201, card.text
    card_id, pan = card.json()["card_id"], card.json()["pan"]
    opened, wrapped_before = await _stored_pan(stack.database_url, stack.backend.keys, card_id)
    assert opened == pan

    assert rotate(stack.backend).returncode == 0
    stack.backend.keys.public_keys()  # the test's own copy of the store reads the rotation
    newest = wrapping.version_of(stack.backend.keys.wrap(b"probe"))  # the newest key-encryption version
    assert wrapping.version_of(wrapped_before) < newest
    deadline = time.monotonic() + 15
    opened, wrapped_after = await _stored_pan(stack.database_url, stack.backend.keys, card_id)
    while wrapping.version_of(wrapped_after) < newest and time.monotonic() < deadline:
        await asyncio.sleep(0.2)  # the cards service rewraps on its next key refresh
        opened, wrapped_after = await _stored_pan(stack.database_url, stack.backend.keys, card_id)
    assert wrapping.version_of(wrapped_after) == newest, wrapped_after[:20]
    assert opened == pan
    if stack.backend.vault is not None:  # every stored key is rewrapped, so the old versions can go
        stack.backend.vault.client().secrets.transit.update_key_configuration(
            transit.PAN_KEY, min_decryption_version=newest, mount_point=transit.MOUNT
        )
        assert (await _stored_pan(stack.database_url, stack.backend.keys, card_id))[0] == pan


@pytest.mark.parametrize("backend", ["vault"], indirect=True)  # the local backend has no server to lose
async def test_verification_survives_a_vault_outage_and_issuance_recovers(stack: Stack) -> None:
    vault = stack.backend.vault
    assert vault is not None
    merchant = stack.merchant
    async with httpx.AsyncClient(timeout=10) as http:
        asked_at = time.monotonic()
        token = (await _token(http, stack.auth.url, merchant["client_id"], merchant["client_secret"])).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        # Tokens live GRACE_SECONDS here: use this one only while it is surely unexpired (a slow machine may take a
        # while to stop Vault), for a token past its exp rightly gets 401.
        valid_until = asked_at + token["expires_in"] - 1
        uses: Counter[int] = Counter()
        issuance: Counter[int] = Counter()
        with vault.stopped():
            stop_at = min(time.monotonic() + 3, valid_until)  # several key refreshes fail meanwhile
            while time.monotonic() < stop_at:
                uses[(await http.get(f"{stack.cards.url}/cards?limit=1", headers=headers)).status_code] += 1
                refused = await _token(http, stack.auth.url, merchant["client_id"], merchant["client_secret"])
                issuance[refused.status_code] += 1
                await asyncio.sleep(0.1)
        assert set(uses) == {200} and uses[200] >= 3, uses
        assert set(issuance) == {503}, issuance
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "keys_unavailable"
        assert vault.addr.split("//")[1] not in refused.text  # the client learns no internal address

        deadline = time.monotonic() + 20
        recovered = await _token(http, stack.auth.url, merchant["client_id"], merchant["client_secret"])
        while recovered.status_code != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            recovered = await _token(http, stack.auth.url, merchant["client_id"], merchant["client_secret"])
        assert recovered.status_code == 200, recovered.text
        fresh = {"Authorization": f"Bearer {recovered.json()['access_token']}"}
        assert (await http.get(f"{stack.cards.url}/cards", headers=fresh)).status_code == 200


@pytest.mark.parametrize("backend", ["vault"], indirect=True)  # local keys have no separate credentials
def test_the_rotation_job_cannot_sign(backend: Backend) -> None:
    """Least privilege seen from outside: the key-rotation credentials rotate, and a sign attempt is refused."""
    assert backend.vault is not None
    settings = Settings(vault_addr=backend.vault.addr, vault_token=backend.rotation_env["GHOSTPAY_VAULT_TOKEN"])
    rotation = VaultKeys(settings)
    kid = rotation.public_keys()[-1].kid
    with pytest.raises(KeysUnavailable, match="refused"):
        rotation.sign(kid, b"header.payload")
