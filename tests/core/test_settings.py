"""Settings that protect production: plain-HTTP Vault and the bootstrap admin's secret (finding 9 of the
security review), and the Redis deadline's bounds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ghostpay.core.settings import ADMIN_SECRET_MIN_LENGTH, Settings
from tests.conftest import ADMIN_SECRET


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


def test_finding_9a_a_short_admin_secret_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    short = "Sh0rtS3cr3t!"  # 12 characters
    monkeypatch.setenv("GHOSTPAY_ADMIN_CLIENT_ID", "cli_admin")
    monkeypatch.setenv("GHOSTPAY_ADMIN_CLIENT_SECRET", short)
    with pytest.raises(ValidationError) as raised:
        Settings()
    message = str(raised.value)
    assert "GHOSTPAY_ADMIN_CLIENT_SECRET must be at least 16 characters" in message
    assert short not in message


@pytest.mark.parametrize("secret", ["x" * ADMIN_SECRET_MIN_LENGTH, ADMIN_SECRET], ids=["16 characters", "the tests'"])
def test_a_long_enough_admin_secret_is_accepted(secret: str) -> None:
    settings = Settings(admin_client_id="cli_admin", admin_client_secret=secret)
    assert settings.admin_client_secret is not None
    assert settings.admin_client_secret.get_secret_value() == secret


def test_no_admin_secret_is_fine() -> None:
    assert Settings(admin_client_secret=None).admin_client_secret is None


@pytest.mark.parametrize("seconds", ["0", "-1", "6", "soon"])
def test_a_redis_deadline_out_of_bounds_is_refused(monkeypatch: pytest.MonkeyPatch, seconds: str) -> None:
    monkeypatch.setenv("GHOSTPAY_REDIS_TIMEOUT_SECONDS", seconds)
    with pytest.raises(ValidationError, match="redis_timeout_seconds"):
        Settings()


def test_the_redis_deadline_is_half_a_second_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().redis_timeout_seconds == 0.5
    monkeypatch.setenv("GHOSTPAY_REDIS_TIMEOUT_SECONDS", "1.5")
    assert Settings().redis_timeout_seconds == 1.5
