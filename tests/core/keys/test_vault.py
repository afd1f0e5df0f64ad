"""The Vault backend against a real OpenBao: transit signs the tokens (the private key never leaves it), the
JWKS comes from the key's public versions, PAN data keys are wrapped and rewrapped by transit, and a rotation
retires versions through the version floors. Each test works on its own transit mount."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
import pytest

from ghostpay.core.keys import ring, wrapping
from ghostpay.core.keys.cache import KeyCache
from ghostpay.core.keys.vault import VaultKeys
from ghostpay.core.settings import Settings
from ghostpay.core.tokens import Principal, TokenVerifier, claims_for, issue_token
from tests.support import transit
from tests.support.vault import DevVault

pytestmark = pytest.mark.slow
MERCHANT = Principal("cli_m", "merchant", merchant_id="cli_m")
NO_DELAY = timedelta(0)


@pytest.fixture
def mount(vault: DevVault) -> Iterator[str]:
    name = f"transit-{secrets.token_hex(4)}"
    transit.prepare(vault.client(), mount=name)
    yield name
    vault.client().sys.disable_secrets_engine(name)


def backend(server: DevVault, mount: str, token: str | None = None) -> VaultKeys:
    settings = Settings(vault_addr=server.addr, vault_token=token or server.root_token, vault_transit_mount=mount)
    return VaultKeys(settings)


async def test_transit_signs_tokens_that_verify_against_its_public_versions(vault: DevVault, mount: str) -> None:
    keys = KeyCache(backend(vault, mount), 30, 0, activation_delay=0)
    assert await keys.refresh()
    (published,) = keys.published()
    assert published.version == 1 and published.kid.startswith("ghostpay-jwt-v1-")
    assert published.kid.endswith(ring.thumbprint(published.public_key)[:16])
    token = await issue_token(keys, claims_for(MERCHANT, "ghostpay", "ghostpay", 60))
    assert await TokenVerifier(keys, "ghostpay", "ghostpay").verify(token) == MERCHANT
    assert keys.jwks()["keys"][0]["kid"] == published.kid


def test_a_rotation_publishes_a_version_and_retires_after_the_grace(vault: DevVault, mount: str) -> None:
    keys = backend(vault, mount)
    v1 = keys.public_keys()[0]
    assert keys.rotate(grace=timedelta(hours=1), activation_delay=NO_DELAY) == []
    assert [k.version for k in keys.public_keys()] == [1, 2]
    later = datetime.now(UTC) + timedelta(hours=2)
    assert keys.rotate(grace=timedelta(hours=1), activation_delay=NO_DELAY, now=later) == [v1.kid]
    assert [k.version for k in keys.public_keys()] == [2, 3]
    config = vault.client().secrets.transit.read_key(transit.JWT_KEY, mount_point=mount)["data"]
    assert config["min_decryption_version"] == 2 and config["min_available_version"] == 2  # trimmed for good


def test_pan_data_keys_survive_rotation_and_rewrap(vault: DevVault, mount: str) -> None:
    keys = backend(vault, mount)
    data_key = secrets.token_bytes(32)
    wrapped = keys.wrap(data_key)
    assert wrapped.startswith(b"vault:v1:") and data_key not in wrapped
    assert keys.rewrap(wrapped) == wrapped  # already under the newest version
    keys.rotate(grace=timedelta(hours=1), activation_delay=NO_DELAY)
    assert keys.unwrap(wrapped) == data_key  # an old wrapping still opens
    rewrapped = keys.rewrap(wrapped)
    assert wrapping.version_of(rewrapped) == 2 and keys.unwrap(rewrapped) == data_key
    # Once every stored key is rewrapped, version 1 can go: the rewrapped key no longer needs it.
    vault.client().secrets.transit.update_key_configuration(
        transit.PAN_KEY, min_decryption_version=2, mount_point=mount
    )
    assert keys.unwrap(rewrapped) == data_key
    with pytest.raises(ring.KeysUnavailable):
        keys.unwrap(wrapped)


def test_unwrap_refuses_a_local_wrapping(vault: DevVault, mount: str) -> None:
    with pytest.raises(wrapping.MalformedWrappedKey):
        backend(vault, mount).unwrap(wrapping.encode("local", 1, b"sealed"))


def test_each_policy_gets_only_its_operations(vault: DevVault, mount: str) -> None:
    """The backend reports a refusal as KeysUnavailable (503), not as a crash. The policies name the `transit/`
    mount, so this test uses that one."""
    root = vault.client()
    transit.prepare(root)
    auth = backend(vault, transit.MOUNT, transit.token(root, "auth"))
    cards = backend(vault, transit.MOUNT, transit.token(root, "cards"))
    kid = auth.public_keys()[-1].kid
    assert auth.sign(kid, b"header.payload")
    cards.public_keys()
    with pytest.raises(ring.KeysUnavailable, match="refused"):
        cards.sign(kid, b"header.payload")
    with pytest.raises(ring.KeysUnavailable, match="refused"):
        auth.wrap(b"0" * 32)
    assert cards.unwrap(cards.wrap(b"1" * 32)) == b"1" * 32


def test_an_unreachable_vault_is_keys_unavailable() -> None:
    settings = Settings(vault_addr="http://127.0.0.1:9", vault_token="x", vault_timeout_seconds=1)
    with pytest.raises(ring.KeysUnavailable, match="unreachable"):
        VaultKeys(settings).public_keys()


def test_kubernetes_login_needs_a_role_or_a_token() -> None:
    with pytest.raises(ring.KeysUnavailable, match="GHOSTPAY_VAULT_ROLE"):
        VaultKeys(Settings(vault_addr="http://127.0.0.1:9")).public_keys()


def test_a_token_vault_refuses_is_reported(vault: DevVault, mount: str) -> None:
    with pytest.raises(ring.KeysUnavailable, match="refused"):
        backend(vault, mount, token="not-a-token").public_keys()
    assert isinstance(vault.client(), hvac.Client)


def test_a_missing_service_account_token_is_keys_unavailable(tmp_path: Path) -> None:
    settings = Settings(
        vault_addr="http://127.0.0.1:9", vault_role="ghostpay-auth", vault_service_account_token_path=tmp_path / "none"
    )
    with pytest.raises(ring.KeysUnavailable, match="Cannot read the ServiceAccount token"):
        VaultKeys(settings).public_keys()


def test_vault_token_from_the_environment_is_not_used(
    vault: DevVault,
    mount: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only GhostPay's own settings log in: a root VAULT_TOKEN lying around must not be picked up."""
    monkeypatch.setenv("VAULT_TOKEN", vault.root_token)
    keys = VaultKeys(Settings(vault_addr=vault.addr, vault_role="no-such-role", vault_transit_mount=mount))
    with pytest.raises(ring.KeysUnavailable):
        keys.public_keys()
