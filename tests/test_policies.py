"""The Vault policies in policies/ hold least privilege: loaded into a real dev server, a token of each policy
can make exactly the transit calls its workload's code makes (services/ghostpay/core/keys/vault.py) and nothing
else on the list below; and each workload's own code runs with its policy alone.

Transit is mounted at `transit/` with `ghostpay-jwt` (rsa-2048, signs the JWTs) and `ghostpay-pan`
(aes256-gcm96, wraps the PAN data keys), as the services and `ghostpay keys rotate` expect. The server is shared
by the session and key versions only grow, so the operations that name a version use the key's current floors.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import hvac
import hvac.exceptions
import pytest

from ghostpay.core.keys.ring import KeysUnavailable
from ghostpay.core.keys.vault import VaultKeys
from ghostpay.core.settings import Settings
from tests.support import transit as transit_setup
from tests.support.transit import JWT_KEY, MOUNT, PAN_KEY, POLICIES, POLICIES_DIR
from tests.support.vault import DevVault

pytestmark = pytest.mark.slow


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Transit:
    """What the operations need, prepared with the root token: a token per policy and valid inputs."""

    addr: str
    root: hvac.Client
    tokens: dict[str, str]
    pan_ciphertext: str
    jwt_signature: str

    def client(self, policy: str) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.tokens[policy], timeout=5)

    def backend(self, policy: str) -> VaultKeys:
        """The product's own Vault backend, logged in with this policy's token only."""
        return VaultKeys(Settings(vault_addr=self.addr, vault_token=self.tokens[policy]))

    def key(self, name: str) -> dict[str, Any]:
        """What the root token reads of a transit key (versions, floors)."""
        data: dict[str, Any] = self.root.secrets.transit.read_key(name, mount_point=MOUNT)["data"]
        return data

    def floor(self, name: str) -> int:
        """The key's min_decryption_version: setting it again is allowed by Vault whatever earlier tests did."""
        return int(self.key(name)["min_decryption_version"])

    def oldest(self, name: str) -> int:
        """The oldest version still stored: trimming to it is a valid request that deletes nothing."""
        return max(1, int(self.key(name)["min_available_version"]))


Operation = Callable[[hvac.Client, Transit], object]


def _transit(client: hvac.Client) -> hvac.api.secrets_engines.Transit:
    return client.secrets.transit


SIGNING_INPUT = b64(b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0")

# Each operation is one request a service might make; the name says which key and which endpoint.
OPERATIONS: dict[str, Operation] = {
    "sign-jwt": lambda c, t: _transit(c).sign_data(
        JWT_KEY, hash_input=SIGNING_INPUT, signature_algorithm="pkcs1v15", marshaling_algorithm="jws", mount_point=MOUNT
    ),
    "verify-jwt": lambda c, t: _transit(c).verify_signed_data(
        JWT_KEY,
        hash_input=SIGNING_INPUT,
        signature=t.jwt_signature,
        signature_algorithm="pkcs1v15",
        marshaling_algorithm="jws",
        mount_point=MOUNT,
    ),
    "read-jwt-key": lambda c, t: _transit(c).read_key(JWT_KEY, mount_point=MOUNT),
    "read-pan-key": lambda c, t: _transit(c).read_key(PAN_KEY, mount_point=MOUNT),
    "encrypt-pan": lambda c, t: _transit(c).encrypt_data(
        PAN_KEY, plaintext=b64(b"4111111111111111"), mount_point=MOUNT
    ),
    "decrypt-pan": lambda c, t: _transit(c).decrypt_data(PAN_KEY, ciphertext=t.pan_ciphertext, mount_point=MOUNT),
    "rewrap-pan": lambda c, t: _transit(c).rewrap_data(PAN_KEY, ciphertext=t.pan_ciphertext, mount_point=MOUNT),
    "datakey-wrapped-pan": lambda c, t: _transit(c).generate_data_key(PAN_KEY, key_type="wrapped", mount_point=MOUNT),
    "datakey-plaintext-pan": lambda c, t: _transit(c).generate_data_key(
        PAN_KEY, key_type="plaintext", mount_point=MOUNT
    ),
    "encrypt-jwt": lambda c, t: _transit(c).encrypt_data(JWT_KEY, plaintext=b64(b"x"), mount_point=MOUNT),
    "rotate-jwt": lambda c, t: _transit(c).rotate_key(JWT_KEY, mount_point=MOUNT),
    "rotate-pan": lambda c, t: _transit(c).rotate_key(PAN_KEY, mount_point=MOUNT),
    "config-jwt": lambda c, t: _transit(c).update_key_configuration(
        JWT_KEY, min_decryption_version=t.floor(JWT_KEY), mount_point=MOUNT
    ),
    "config-jwt-encryption-floor": lambda c, t: _transit(c).update_key_configuration(
        JWT_KEY, min_encryption_version=t.floor(JWT_KEY), mount_point=MOUNT
    ),
    "config-pan": lambda c, t: _transit(c).update_key_configuration(
        PAN_KEY, min_decryption_version=t.floor(PAN_KEY), mount_point=MOUNT
    ),
    "config-pan-encryption-floor": lambda c, t: _transit(c).update_key_configuration(
        PAN_KEY, min_encryption_version=t.floor(PAN_KEY), mount_point=MOUNT
    ),
    "config-pan-exportable": lambda c, t: _transit(c).update_key_configuration(
        PAN_KEY, exportable=True, mount_point=MOUNT
    ),
    "config-jwt-deletable": lambda c, t: _transit(c).update_key_configuration(
        JWT_KEY, deletion_allowed=True, mount_point=MOUNT
    ),
    "trim-jwt": lambda c, t: _transit(c).trim_key(JWT_KEY, min_version=t.oldest(JWT_KEY), mount_point=MOUNT),
    "trim-pan": lambda c, t: _transit(c).trim_key(PAN_KEY, min_version=t.oldest(PAN_KEY), mount_point=MOUNT),
    "export-pan": lambda c, t: _transit(c).export_key(PAN_KEY, key_type="encryption-key", mount_point=MOUNT),
    "delete-pan": lambda c, t: _transit(c).delete_key(PAN_KEY, mount_point=MOUNT),
    "create-key": lambda c, t: _transit(c).create_key("ghostpay-other", mount_point=MOUNT),
    "list-keys": lambda c, t: _transit(c).list_keys(mount_point=MOUNT),
    "list-policies": lambda c, t: c.sys.list_acl_policies(),
    "write-policy": lambda c, t: c.sys.create_or_update_acl_policy("escalate", 'path "*" { capabilities = ["sudo"] }'),
    "read-secret": lambda c, t: c.secrets.kv.v2.read_secret_version("ghostpay/db", raise_on_deleted_version=True),
    "write-secret": lambda c, t: c.secrets.kv.v2.create_or_update_secret("ghostpay/db", secret={"password": "x"}),
}

# What each workload's code calls (services/ghostpay/core/keys/vault.py), and so what its policy allows:
# - auth signs tokens and publishes the JWKS (VaultKeys.sign, public_keys);
# - cards wraps a data key on its first start, unwraps the stored ones at start-up and rewraps them after
#   every key refresh (wrap, unwrap, rewrap), and verifies tokens (public_keys);
# - charges and analytics only verify tokens (public_keys);
# - the rotation Job (VaultKeys.rotate) reads the JWT key, moves its two floors, trims it and rotates both keys.
ALLOWED: dict[str, set[str]] = {
    "auth": {"sign-jwt", "read-jwt-key"},
    "cards": {"read-jwt-key", "encrypt-pan", "decrypt-pan", "rewrap-pan"},
    "charges": {"read-jwt-key"},
    "analytics": {"read-jwt-key"},
    "key-rotation": {
        "read-jwt-key",
        "rotate-jwt",
        "rotate-pan",
        "config-jwt",
        "config-jwt-encryption-floor",
        "trim-jwt",
    },
}

# Finding 5 of the security review: grants the code never used. Each must now be refused.
FINDING_5_REMOVED = [
    ("key-rotation", "config-pan"),  # raising the PAN key's min_decryption_version loses the PANs under older versions
    ("key-rotation", "config-pan-encryption-floor"),
    ("key-rotation", "trim-pan"),  # deletes PAN key versions for good
    ("key-rotation", "read-pan-key"),
    ("charges", "encrypt-pan"),
    ("charges", "decrypt-pan"),
    ("charges", "rewrap-pan"),
    ("charges", "datakey-wrapped-pan"),
    ("cards", "datakey-wrapped-pan"),  # cards makes its data keys locally and wraps them with encrypt
]

CASES = [
    pytest.param(policy, operation, operation in ALLOWED[policy], id=f"{policy}-{operation}")
    for policy in POLICIES
    for operation in OPERATIONS
]


@pytest.fixture(scope="module")
def transit(vault: DevVault) -> Iterator[Transit]:
    root = vault.client()
    transit_setup.prepare(root)
    engine = root.secrets.transit
    for key in (JWT_KEY, PAN_KEY):
        # Trimming needs both version floors set. hvac refuses min_encryption_version == min_decryption_version
        # (the server accepts it), so this goes through the adapter. The floors stay where they are.
        config = engine.read_key(key, mount_point=MOUNT)["data"]
        floor = int(config["min_decryption_version"])
        floors = {
            "min_decryption_version": floor,
            "min_encryption_version": max(floor, config["min_encryption_version"]),
        }
        root.adapter.post(f"/v1/{MOUNT}/keys/{key}/config", json=floors)
    tokens = {policy: transit_setup.token(root, policy, ttl="1h") for policy in POLICIES}

    pan = engine.encrypt_data(PAN_KEY, plaintext=b64(b"4111111111111111"), mount_point=MOUNT)
    signed = engine.sign_data(
        JWT_KEY,
        hash_input=SIGNING_INPUT,
        signature_algorithm="pkcs1v15",
        marshaling_algorithm="jws",
        mount_point=MOUNT,
    )
    yield Transit(vault.addr, root, tokens, pan["data"]["ciphertext"], signed["data"]["signature"])
    for policy in POLICIES:
        root.sys.delete_acl_policy(policy)


def test_every_service_has_a_policy() -> None:
    assert sorted(path.stem for path in POLICIES_DIR.glob("*.hcl")) == sorted(POLICIES)


@pytest.mark.parametrize(("policy", "operation", "allowed"), CASES)
def test_policy_allows_exactly_what_the_service_needs(
    transit: Transit, policy: str, operation: str, allowed: bool
) -> None:
    client = transit.client(policy)
    if allowed:
        OPERATIONS[operation](client, transit)
    else:
        with pytest.raises(hvac.exceptions.Forbidden):
            OPERATIONS[operation](client, transit)


@pytest.mark.parametrize(("policy", "operation"), FINDING_5_REMOVED, ids=[f"{p}-{o}" for p, o in FINDING_5_REMOVED])
def test_finding_5_grants_the_code_never_uses_are_refused(transit: Transit, policy: str, operation: str) -> None:
    with pytest.raises(hvac.exceptions.Forbidden):
        OPERATIONS[operation](transit.client(policy), transit)


@pytest.mark.parametrize("policy", ["auth", "cards", "charges", "analytics"])
def test_each_service_makes_its_own_calls_with_its_policy_alone(transit: Transit, policy: str) -> None:
    """The allowed side seen from the product's code: every Vault call the service makes goes through."""
    keys = transit.backend(policy)
    newest = keys.public_keys()[-1]  # every service verifies tokens
    if policy == "auth":
        assert keys.sign(newest.kid, b"header.payload")
    if policy == "cards":
        wrapped = keys.wrap(b"k" * 32)
        assert keys.unwrap(keys.rewrap(wrapped)) == b"k" * 32
    if policy != "auth":
        with pytest.raises(KeysUnavailable, match="refused"):
            keys.sign(newest.kid, b"header.payload")
    if policy != "cards":
        with pytest.raises(KeysUnavailable, match="refused"):
            keys.wrap(b"k" * 32)


def test_a_rotation_retires_jwt_versions_with_its_policy_alone_and_keeps_every_pan_key_version(
    transit: Transit,
) -> None:
    """`ghostpay keys rotate` (VaultKeys.rotate) with the key-rotation token: it rotates both keys and retires
    the JWT versions past their grace, and the PAN key keeps every version (floor and trim untouched), so a
    data key wrapped before still opens — whether or not cards has rewrapped it yet."""
    pan_versions_before = set(transit.key(PAN_KEY)["keys"])
    rotation = transit.backend("key-rotation")
    rotation.rotate(grace=timedelta(hours=1), activation_delay=timedelta(0))
    later = datetime.now(UTC) + timedelta(hours=2)
    retired = rotation.rotate(grace=timedelta(hours=1), activation_delay=timedelta(0), now=later)
    assert retired  # the JWT versions older than the grace period went
    jwt = transit.key(JWT_KEY)
    assert jwt["min_decryption_version"] == jwt["min_available_version"] == jwt["latest_version"] - 1
    pan = transit.key(PAN_KEY)
    assert pan["min_decryption_version"] == 1 and "1" in pan["keys"]  # version 1 still opens, none was trimmed
    assert set(pan["keys"]) == pan_versions_before | {str(pan["latest_version"] - 1), str(pan["latest_version"])}
    cards = transit.backend("cards")
    first_wrapping = transit.pan_ciphertext.encode()  # made when the module started, under an older version
    assert cards.unwrap(first_wrapping) == b"4111111111111111"
    assert cards.unwrap(cards.rewrap(first_wrapping)) == b"4111111111111111"
