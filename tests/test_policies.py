"""The Vault policies in policies/ hold least privilege: loaded into a real dev server, a token of each policy
can do exactly what its service needs with the transit keys and nothing else on the list below.

Transit is mounted at `transit/` with `ghostpay-jwt` (rsa-2048, signs the JWTs) and `ghostpay-pan`
(aes256-gcm96, wraps the PAN data key), as the services and `ghostpay keys rotate` expect.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import hvac
import hvac.exceptions
import pytest

from tests import transit as transit_setup
from tests.transit import JWT_KEY, MOUNT, PAN_KEY, POLICIES, POLICIES_DIR
from tests.vault import DevVault
from tests.vault_fixture import vault  # noqa: F401

pytestmark = pytest.mark.slow


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Transit:
    """What the operations need, prepared with the root token: a token per policy and valid inputs."""

    addr: str
    tokens: dict[str, str]
    pan_ciphertext: str
    jwt_signature: str

    def client(self, policy: str) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.tokens[policy], timeout=5)


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
        JWT_KEY, min_decryption_version=1, mount_point=MOUNT
    ),
    "config-pan": lambda c, t: _transit(c).update_key_configuration(
        PAN_KEY, min_decryption_version=1, mount_point=MOUNT
    ),
    "config-pan-exportable": lambda c, t: _transit(c).update_key_configuration(
        PAN_KEY, exportable=True, mount_point=MOUNT
    ),
    "config-jwt-deletable": lambda c, t: _transit(c).update_key_configuration(
        JWT_KEY, deletion_allowed=True, mount_point=MOUNT
    ),
    "trim-jwt": lambda c, t: _transit(c).trim_key(JWT_KEY, min_version=1, mount_point=MOUNT),
    "trim-pan": lambda c, t: _transit(c).trim_key(PAN_KEY, min_version=1, mount_point=MOUNT),
    "export-pan": lambda c, t: _transit(c).export_key(PAN_KEY, key_type="encryption-key", mount_point=MOUNT),
    "delete-pan": lambda c, t: _transit(c).delete_key(PAN_KEY, mount_point=MOUNT),
    "create-key": lambda c, t: _transit(c).create_key("ghostpay-other", mount_point=MOUNT),
    "list-keys": lambda c, t: _transit(c).list_keys(mount_point=MOUNT),
    "list-policies": lambda c, t: c.sys.list_acl_policies(),
    "write-policy": lambda c, t: c.sys.create_or_update_acl_policy("escalate", 'path "*" { capabilities = ["sudo"] }'),
    "read-secret": lambda c, t: c.secrets.kv.v2.read_secret_version("ghostpay/db", raise_on_deleted_version=True),
    "write-secret": lambda c, t: c.secrets.kv.v2.create_or_update_secret("ghostpay/db", secret={"password": "x"}),
}

ALLOWED: dict[str, set[str]] = {
    "auth": {"sign-jwt", "read-jwt-key"},
    "cards": {"read-jwt-key", "encrypt-pan", "decrypt-pan", "rewrap-pan", "datakey-wrapped-pan"},
    "charges": {"read-jwt-key", "encrypt-pan", "decrypt-pan", "rewrap-pan", "datakey-wrapped-pan"},
    "analytics": {"read-jwt-key"},
    "key-rotation": {
        "read-jwt-key",
        "read-pan-key",
        "rotate-jwt",
        "rotate-pan",
        "config-jwt",
        "config-pan",
        "trim-jwt",
        "trim-pan",
    },
}

CASES = [
    pytest.param(policy, operation, operation in ALLOWED[policy], id=f"{policy}-{operation}")
    for policy in POLICIES
    for operation in OPERATIONS
]


@pytest.fixture(scope="module")
def transit(vault: DevVault) -> Iterator[Transit]:  # noqa: F811
    root = vault.client()
    transit_setup.prepare(root)
    engine = root.secrets.transit
    for key in (JWT_KEY, PAN_KEY):
        # Trimming needs both version floors set. hvac refuses min_encryption_version == min_decryption_version
        # (the server accepts it), so this goes through the adapter.
        root.adapter.post(
            f"/v1/{MOUNT}/keys/{key}/config", json={"min_decryption_version": 1, "min_encryption_version": 1}
        )
    tokens = {policy: transit_setup.token(root, policy, ttl="1h") for policy in POLICIES}

    pan = engine.encrypt_data(PAN_KEY, plaintext=b64(b"4111111111111111"), mount_point=MOUNT)
    signed = engine.sign_data(
        JWT_KEY,
        hash_input=SIGNING_INPUT,
        signature_algorithm="pkcs1v15",
        marshaling_algorithm="jws",
        mount_point=MOUNT,
    )
    yield Transit(vault.addr, tokens, pan["data"]["ciphertext"], signed["data"]["signature"])
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
