"""Transit as the services expect it, on a real Vault (tests/vault.py): the mount, the two keys, the policies in
policies/ and tokens carrying them. Shared by the policy tests, the Vault backend tests and the rotation tests.

Idempotent, so a test may call it on a server another test already set up (the persistent one keeps state).
"""

from __future__ import annotations

from pathlib import Path

import hvac

from tests.support.vault import DevVault

POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"
MOUNT = "transit"
JWT_KEY = "ghostpay-jwt"
PAN_KEY = "ghostpay-pan"
POLICIES = ("auth", "cards", "charges", "analytics", "key-rotation")
SERVICE_POLICIES = ("auth", "cards", "charges", "analytics")


def prepare(root: hvac.Client, mount: str = MOUNT) -> None:
    """Mount transit at `mount` with `ghostpay-jwt` (rsa-2048) and `ghostpay-pan` (aes256-gcm96), and load the
    policies (they name the `transit/` mount)."""
    if f"{mount}/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("transit", path=mount)
    engine = root.secrets.transit
    engine.create_key(JWT_KEY, key_type="rsa-2048", mount_point=mount)
    engine.create_key(PAN_KEY, key_type="aes256-gcm96", mount_point=mount)
    for policy in POLICIES:
        root.sys.create_or_update_acl_policy(policy, (POLICIES_DIR / f"{policy}.hcl").read_text())


def token(root: hvac.Client, *policies: str, ttl: str = "2h") -> str:
    """A token carrying exactly `policies` (no default policy rights beyond Vault's own `default`)."""
    created = root.auth.token.create(policies=list(policies), ttl=ttl, display_name="test-" + "-".join(policies))
    return str(created["auth"]["client_token"])


def env(vault: DevVault, vault_token: str, mount: str = MOUNT) -> dict[str, str]:
    """GHOSTPAY_* settings that put a process on the Vault backend."""
    return {
        "GHOSTPAY_VAULT_ADDR": vault.addr,
        "GHOSTPAY_VAULT_TOKEN": vault_token,
        "GHOSTPAY_VAULT_TRANSIT_MOUNT": mount,
    }
