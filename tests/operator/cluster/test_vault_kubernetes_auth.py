"""The Vault backend's Kubernetes auth login (GHOSTPAY_VAULT_ROLE) against real servers: the OpenBao dev server
and the kube-apiserver of the local control plane, which OpenBao asks (TokenReview) whether a ServiceAccount token
is valid and whose it is.

Each test gets its own namespace, ServiceAccounts, reviewer binding and auth mount; the transit mount is the
shared `transit/` one, as the policies in policies/ name it (tests/transit.py sets it up idempotently).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from ghostpay.core.keys import ring
from ghostpay.core.keys.vault import VaultKeys
from ghostpay.core.settings import Settings
from ghostpay_devtools import localcluster
from tests.operator.support.kube_helpers import wait_for
from tests.support import transit
from tests.support.vault import DevVault

pytestmark = pytest.mark.slow

AUDIENCE = "vault"  # the audience the roles require; the ServiceAccount tokens are requested for it
TOKEN_DURATION = "10m"  # the shortest the API server issues
REVIEWER = "vault-token-reviewer"
AUTH_SA, CARDS_SA, OTHER_SA = "payments-auth", "payments-cards", "payments-other"
AUTH_ROLE, CARDS_ROLE = "ghostpay-auth", "ghostpay-cards"
SIGNING_INPUT = b"x.y"
REVIEW_CACHE_TIMEOUT = 40.0


@dataclass
class KubeAuth:
    vault: DevVault
    cluster: localcluster.Cluster
    namespace: str
    mount: str
    token_dir: Path

    def token_file(self, service_account: str, namespace: str | None = None) -> Path:
        """A fresh, short-lived token of `service_account` (TokenRequest API), in a file like the kubelet's."""
        path = self.token_dir / f"{service_account}-{secrets.token_hex(4)}.jwt"
        path.write_text(service_account_token(self.cluster, namespace or self.namespace, service_account) + "\n")
        return path

    def backend(self, role: str, token_file: Path) -> VaultKeys:
        settings = Settings(
            vault_addr=self.vault.addr,
            vault_role=role,
            vault_auth_mount=self.mount,
            vault_service_account_token_path=token_file,
            vault_transit_mount=transit.MOUNT,
        )
        return VaultKeys(settings)

    def lookup(self, vault_token: str) -> dict[str, Any]:
        root: Any = self.vault.client()
        return dict(root.auth.token.lookup(vault_token)["data"])


def service_account_token(
    cluster: localcluster.Cluster, namespace: str, name: str, audience: str | None = AUDIENCE
) -> str:
    """A token of `name` from the TokenRequest API; `audience=None` asks for the API server's own audience."""
    flags = [f"--duration={TOKEN_DURATION}"] + ([f"--audience={audience}"] if audience else [])
    return cluster.kubectl("create", "token", name, "-n", namespace, *flags).stdout.strip()


def api_server(cluster: localcluster.Cluster) -> tuple[str, str]:
    """The API server's URL and the PEM of the CA its serving certificate chains to, from the kubeconfig."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    current = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    entry = next(c["cluster"] for c in config["clusters"] if c["name"] == current["cluster"])
    if "certificate-authority-data" in entry:
        ca = base64.b64decode(entry["certificate-authority-data"]).decode()
    else:
        ca = Path(entry["certificate-authority"]).read_text()
    return str(entry["server"]), ca


def assert_login_refused(keys: VaultKeys, reason: str) -> None:
    """The login itself is refused (403, for `reason`), reported as KeysUnavailable, and no Vault token is held."""
    with pytest.raises(ring.KeysUnavailable, match="refused") as refused:
        keys.public_keys()
    assert isinstance(refused.value.__cause__, hvac.exceptions.Forbidden)
    assert reason in str(refused.value.__cause__)
    assert not keys._client.token


def backend_token(keys: VaultKeys) -> str:
    """The Vault token the backend logged in with (hvac's client keeps it)."""
    return str(keys._client.token)


@pytest.fixture
def kube_auth(
    vault: DevVault,
    cluster: localcluster.Cluster,
    namespace: str,
    tmp_path: Path,
) -> Iterator[KubeAuth]:
    root: Any = vault.client()
    transit.prepare(root)
    for name in (REVIEWER, AUTH_SA, CARDS_SA, OTHER_SA):
        cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    # OpenBao calls TokenReview with the reviewer's token: system:auth-delegator allows exactly that.
    binding = f"{namespace}-{REVIEWER}"
    cluster.kubectl(
        "create",
        "clusterrolebinding",
        binding,
        "--clusterrole=system:auth-delegator",
        f"--serviceaccount={namespace}:{REVIEWER}",
    )
    mount = f"kubernetes-{secrets.token_hex(4)}"
    root.sys.enable_auth_method("kubernetes", path=mount)
    try:
        host, ca = api_server(cluster)
        reviewer_token = service_account_token(cluster, namespace, REVIEWER, audience=None)
        root.auth.kubernetes.configure(
            kubernetes_host=host,
            kubernetes_ca_cert=ca,
            token_reviewer_jwt=reviewer_token,
            disable_local_ca_jwt=True,  # OpenBao does not run in a pod here: no local CA or token to fall back on
            mount_point=mount,
        )
        for role, service_account, policy in ((AUTH_ROLE, AUTH_SA, "auth"), (CARDS_ROLE, CARDS_SA, "cards")):
            root.auth.kubernetes.create_role(
                role,
                bound_service_account_names=[service_account],
                bound_service_account_namespaces=[namespace],
                policies=[policy],
                audience=AUDIENCE,
                ttl="10m",
                mount_point=mount,
            )
        yield KubeAuth(vault, cluster, namespace, mount, tmp_path)
    finally:
        root.sys.disable_auth_method(mount)
        cluster.kubectl("delete", "clusterrolebinding", binding, "--wait=false", check=False)


def test_the_auth_role_logs_in_with_its_service_account_token_and_signs(kube_auth: KubeAuth) -> None:
    keys = kube_auth.backend(AUTH_ROLE, kube_auth.token_file(AUTH_SA))
    published = keys.public_keys()
    assert published and all(k.kid.startswith(f"{transit.JWT_KEY}-v") for k in published)
    newest = published[-1]
    signature = keys.sign(newest.kid, SIGNING_INPUT)
    # A real RS256 signature by transit's private key, checked against the published public key.
    newest.public_key.verify(signature, SIGNING_INPUT, padding.PKCS1v15(), hashes.SHA256())

    # The backend holds a token from this Kubernetes auth mount, for this ServiceAccount, with the auth policy.
    info = kube_auth.lookup(backend_token(keys))
    assert info["path"] == f"auth/{kube_auth.mount}/login"
    assert info["meta"]["role"] == AUTH_ROLE
    assert info["meta"]["service_account_name"] == AUTH_SA
    assert info["meta"]["service_account_namespace"] == kube_auth.namespace
    assert sorted(info["policies"]) == ["auth", "default"]


def test_the_cards_role_wraps_and_unwraps_but_may_not_sign(kube_auth: KubeAuth) -> None:
    keys = kube_auth.backend(CARDS_ROLE, kube_auth.token_file(CARDS_SA))
    data_key = secrets.token_bytes(32)
    wrapped = keys.wrap(data_key)
    assert wrapped.startswith(b"vault:v") and keys.unwrap(wrapped) == data_key
    kid = keys.public_keys()[-1].kid  # cards may read the public versions (to verify bearer tokens)
    token_before = backend_token(keys)
    with pytest.raises(ring.KeysUnavailable, match="refused"):
        keys.sign(kid, SIGNING_INPUT)
    # The refusal is the policy's and the login still valid, so the backend did not log in again.
    assert backend_token(keys) == token_before
    assert sorted(kube_auth.lookup(backend_token(keys))["policies"]) == ["cards", "default"]
    assert keys.unwrap(wrapped) == data_key


def test_the_auth_role_may_not_wrap(kube_auth: KubeAuth) -> None:
    keys = kube_auth.backend(AUTH_ROLE, kube_auth.token_file(AUTH_SA))
    with pytest.raises(ring.KeysUnavailable, match="refused"):
        keys.wrap(b"0" * 32)


@pytest.mark.parametrize("service_account", [CARDS_SA, OTHER_SA])
def test_a_service_account_the_role_is_not_bound_to_is_refused(kube_auth: KubeAuth, service_account: str) -> None:
    keys = kube_auth.backend(AUTH_ROLE, kube_auth.token_file(service_account))
    assert_login_refused(keys, "service account name not authorized")


def test_the_bound_name_in_another_namespace_is_refused(kube_auth: KubeAuth) -> None:
    other = f"{kube_auth.namespace}-x"
    kube_auth.cluster.kubectl("create", "namespace", other)
    try:
        kube_auth.cluster.kubectl("create", "serviceaccount", AUTH_SA, "-n", other)
        keys = kube_auth.backend(AUTH_ROLE, kube_auth.token_file(AUTH_SA, namespace=other))
        assert_login_refused(keys, "namespace not authorized")
    finally:
        kube_auth.cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_a_token_of_a_deleted_service_account_is_refused_by_the_token_review(kube_auth: KubeAuth) -> None:
    """OpenBao does not trust the JWT on its own: once the ServiceAccount is gone, the API server's TokenReview
    says its token is no longer valid. (The API server caches a successful review for about 10 s.)"""
    token_file = kube_auth.token_file(AUTH_SA)
    kube_auth.backend(AUTH_ROLE, token_file).public_keys()  # valid while the ServiceAccount exists
    kube_auth.cluster.kubectl("delete", "serviceaccount", AUTH_SA, "-n", kube_auth.namespace)

    def refusal() -> BaseException | None:
        try:
            kube_auth.backend(AUTH_ROLE, token_file).public_keys()
        except ring.KeysUnavailable as exc:
            return exc
        return None

    refused = wait_for(refusal, REVIEW_CACHE_TIMEOUT, "the deleted ServiceAccount's login to be refused")
    assert "refused" in str(refused) and isinstance(refused.__cause__, hvac.exceptions.Forbidden)


def test_a_revoked_vault_token_is_replaced_by_a_new_login(kube_auth: KubeAuth) -> None:
    keys = kube_auth.backend(AUTH_ROLE, kube_auth.token_file(AUTH_SA))
    kid = keys.public_keys()[-1].kid
    first = backend_token(keys)
    root: Any = kube_auth.vault.client()
    root.auth.token.revoke(first)
    with pytest.raises(hvac.exceptions.Forbidden):
        kube_auth.lookup(first)

    assert keys.sign(kid, SIGNING_INPUT)  # Vault answers 403; the backend logs in again and retries once
    second = backend_token(keys)
    assert second != first
    assert kube_auth.lookup(second)["meta"]["service_account_name"] == AUTH_SA
    root.auth.token.revoke(second)
    assert keys.public_keys()[-1].kid == kid  # and again, on another kind of call
    assert backend_token(keys) not in (first, second)


def test_each_login_reads_the_token_file_afresh(kube_auth: KubeAuth) -> None:
    """The kubelet rotates the projected token in place: a new login must use what the file holds now."""
    token_file = kube_auth.token_file(AUTH_SA)
    keys = kube_auth.backend(AUTH_ROLE, token_file)
    keys.public_keys()
    root: Any = kube_auth.vault.client()

    token_file.write_text(kube_auth.token_file(AUTH_SA).read_text())  # rotated: another valid token
    root.auth.token.revoke(backend_token(keys))
    assert keys.public_keys()

    token_file.write_text(kube_auth.token_file(OTHER_SA).read_text())  # now a token the role refuses
    root.auth.token.revoke(backend_token(keys))
    with pytest.raises(ring.KeysUnavailable, match="refused") as refused:
        keys.public_keys()
    assert "service account name not authorized" in str(refused.value.__cause__)
