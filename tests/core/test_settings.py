"""Settings that protect production: plain-HTTP Vault (finding 9 of the security review)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ghostpay.core.settings import Settings


@pytest.mark.parametrize("address", ["http://vault.internal:8200", "http://10.0.0.7:8200", "http://vault"])
def test_finding_9_plain_http_vault_is_refused_outside_development(address: str) -> None:
    with pytest.raises(ValidationError, match="must be an https:// URL"):
        Settings(vault_addr=address, vault_token="t")


@pytest.mark.parametrize(
    ("address", "environment"),
    [
        ("https://vault.internal:8200", "production"),
        ("http://127.0.0.1:8200", "production"),  # a Vault agent or dev server beside the process
        ("http://localhost:8200", "production"),
        ("http://[::1]:8200", "production"),
        ("http://vault.internal:8200", "development"),
    ],
)
def test_https_loopback_or_development_vault_is_accepted(address: str, environment: str) -> None:
    assert Settings(vault_addr=address, vault_token="t", environment=environment).vault_addr == address
