"""The test Vault servers themselves (tests/vault.py): a persistent one comes back from a stop with its
transit keys, policies and tokens, as after a real outage; a dev one comes back empty.

Each test mounts transit under a name of its own, so it relies on nothing another test left in the
session-scoped servers.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import httpx
import hvac.exceptions
import pytest

from tests.support.vault import DevVault

pytestmark = pytest.mark.slow

KEY = "ghostpay-pan"
PLAINTEXT = b"4111111111111111"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unique_mount() -> str:
    return f"transit-{secrets.token_hex(4)}"


def api(server: DevVault, token: str | None = None) -> Any:
    """`server.client(token)`, untyped: hvac's stubs leave most of its API methods unannotated."""
    return server.client(token)


def mounts(server: DevVault) -> set[str]:
    return set(api(server).sys.list_mounted_secrets_engines()["data"])


def assert_refuses_connections(addr: str) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{addr}/v1/sys/health", timeout=2.0)


def test_persistent_vault_root_token_is_the_generated_one(persistent_vault: DevVault) -> None:
    assert not persistent_vault.root_token.startswith("gp-root-")  # DevVault's own default, used by dev mode
    assert api(persistent_vault).auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_persistent_vault_keeps_transit_keys_policies_and_tokens_across_a_restart(
    persistent_vault: DevVault,
) -> None:
    mount = unique_mount()
    root = api(persistent_vault)
    root.sys.enable_secrets_engine("transit", path=mount)
    root.secrets.transit.create_key(KEY, key_type="aes256-gcm96", mount_point=mount)
    ciphertext = root.secrets.transit.encrypt_data(KEY, plaintext=b64(PLAINTEXT), mount_point=mount)["data"][
        "ciphertext"
    ]
    policy = f"decrypt-{mount}"
    root.sys.create_or_update_policy(policy, f'path "{mount}/decrypt/{KEY}" {{ capabilities = ["update"] }}')
    token = root.auth.token.create(policies=[policy], ttl="1h")["auth"]["client_token"]
    addr, root_token = persistent_vault.addr, persistent_vault.root_token

    with persistent_vault.stopped():
        assert not persistent_vault.running
        assert_refuses_connections(addr)

    assert (persistent_vault.addr, persistent_vault.root_token) == (addr, root_token)
    root = api(persistent_vault)
    assert f"{mount}/" in mounts(persistent_vault)
    decrypted = root.secrets.transit.decrypt_data(KEY, ciphertext=ciphertext, mount_point=mount)["data"]["plaintext"]
    assert base64.b64decode(decrypted) == PLAINTEXT
    assert root.sys.read_policy(policy)["data"]["rules"].startswith(f'path "{mount}/decrypt/{KEY}"')
    # The token made before the outage still works, and its policy still limits it to decrypting.
    transit = api(persistent_vault, token).secrets.transit
    decrypted = transit.decrypt_data(KEY, ciphertext=ciphertext, mount_point=mount)["data"]["plaintext"]
    assert base64.b64decode(decrypted) == PLAINTEXT
    with pytest.raises(hvac.exceptions.Forbidden):
        transit.encrypt_data(KEY, plaintext=b64(PLAINTEXT), mount_point=mount)


def test_dev_vault_loses_its_mounts_on_a_restart(vault: DevVault) -> None:
    mount = unique_mount()
    api(vault).sys.enable_secrets_engine("transit", path=mount)
    assert f"{mount}/" in mounts(vault)
    addr = vault.addr

    with vault.stopped():
        assert_refuses_connections(addr)

    assert vault.addr == addr
    assert f"{mount}/" not in mounts(vault)  # the root token still works: same one, given again on the command line
