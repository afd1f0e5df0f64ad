"""Settings validation that guards against weak configuration: the bootstrap admin's secret (finding 9a)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ghostpay.core.settings import ADMIN_SECRET_MIN_LENGTH, Settings
from tests.conftest import ADMIN_SECRET


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
