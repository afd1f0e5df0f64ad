"""Vault over TLS with a private CA (GHOSTPAY_VAULT_CA_CERT, what the operator mounts from vault.caSecretRef): the
key backend trusts exactly that CA. A real OpenBao dev server on 127.0.0.1 with a TLS listener whose certificate a
throwaway CA signed."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ghostpay.core.keys import ring
from ghostpay.core.keys.vault import VaultKeys
from ghostpay.core.settings import Settings
from tests.support.procs import free_port
from tests.support.vault import server_binary

pytestmark = [pytest.mark.slow, pytest.mark.infra("openbao")]
ROOT_TOKEN = "tls-test-root"
READY_TIMEOUT = 30.0


Signed = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _certificate(subject: str, issuer_key: ec.EllipticCurvePrivateKey | None = None,
                 issuer: x509.Certificate | None = None) -> Signed:  # fmt: skip
    """A CA (no issuer) or a server certificate for 127.0.0.1 signed by it."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer.subject if issuer else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def tls_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(https address, the CA's PEM file) of a dev OpenBao with transit's ghostpay-jwt key."""
    directory = tmp_path_factory.mktemp("vault-tls")
    ca, ca_key = _certificate("test CA")
    server, server_key = _certificate("openbao", ca_key, ca)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    plain, tls = free_port(), free_port()
    (directory / "tls.hcl").write_text(
        f'listener "tcp" {{\n  address = "127.0.0.1:{tls}"\n  cluster_address = "127.0.0.1:{free_port()}"\n'
        f'  tls_cert_file = "{directory}/tls.crt"\n  tls_key_file = "{directory}/tls.key"\n}}\n'
    )
    command = [str(server_binary()), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
               f"-dev-listen-address=127.0.0.1:{plain}", f"-config={directory / 'tls.hcl'}"]  # fmt: skip
    log = (directory / "bao.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = hvac.Client(url=f"http://127.0.0.1:{plain}", token=ROOT_TOKEN)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if client.sys.is_initialized():
                    break
            except Exception:  # not listening yet
                pass
            assert time.monotonic() < deadline and process.poll() is None, (directory / "bao.log").read_text()
            time.sleep(0.2)
        client.sys.enable_secrets_engine("transit")
        client.secrets.transit.create_key("ghostpay-jwt", key_type="rsa-2048")
        yield f"https://127.0.0.1:{tls}", directory / "ca.crt"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_the_key_backend_trusts_vaults_private_ca_when_named(tls_vault: tuple[str, Path]) -> None:
    address, ca = tls_vault
    keys = VaultKeys(Settings(vault_addr=address, vault_token=ROOT_TOKEN, vault_ca_cert=ca))
    assert [key.version for key in keys.public_keys()] == [1]


def test_without_the_ca_vaults_certificate_is_refused(tls_vault: tuple[str, Path]) -> None:
    address, _ = tls_vault
    with pytest.raises(ring.KeysUnavailable):
        VaultKeys(Settings(vault_addr=address, vault_token=ROOT_TOKEN)).public_keys()
