"""`ghostpay keys rotate` and `ghostpay keys list` as a user runs them, next to a running `ghostpay dev`, on
its local key store and on Vault (GHOSTPAY_VAULT_ADDR).

The rotation is picked up without a restart: the new version is in the JWKS at once, signs once the activation
delay has passed, and every token issued before it keeps working. Bad input is refused with a clear message
and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from ghostpay.core.keys.local import LocalKeyStore
from tests.support import procs, transit
from tests.support.vault import DevVault

pytestmark = pytest.mark.slow
DEV_READY_TIMEOUT = 180.0  # a first start runs initdb
# Quick enough for a test; the defaults are 30 s and 60 s.
FAST_KEYS = {"GHOSTPAY_KEY_REFRESH_SECONDS": "0.5", "GHOSTPAY_KEY_ACTIVATION_DELAY_SECONDS": "1"}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gpk-", dir="/tmp"))  # short: PostgreSQL's socket lives in it
    yield path
    procs.kill_mentioning(str(path))
    shutil.rmtree(path, ignore_errors=True)


def ghostpay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return procs.run_cli(*args, env={**FAST_KEYS, **(env or {})})


async def _admin_token(http: httpx.AsyncClient, data_dir: Path) -> str:
    creds = json.loads((data_dir / "admin-credentials.json").read_text())
    response = await http.post("/auth/token", json=creds)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture(params=["local", "vault"])
def keys_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Nothing for the local store in the data directory; for Vault, its address, a token and a transit mount
    of this test's own (the dev server is shared)."""
    if request.param == "local":
        return {}
    server: DevVault = request.getfixturevalue("vault")
    mount = f"transit-{secrets.token_hex(4)}"
    transit.prepare(server.client(), mount=mount)
    return transit.env(server, server.root_token, mount=mount)


async def test_rotating_next_to_a_running_dev_keeps_every_token_valid(
    data_dir: Path, tmp_path: Path, keys_env: dict[str, str]
) -> None:
    proc = procs.dev(data_dir, tmp_path, env={**FAST_KEYS, **keys_env})
    await asyncio.to_thread(proc.start, DEV_READY_TIMEOUT)
    new_prefix = "ghostpay-jwt-v2-" if keys_env else "local-v2-"
    try:
        async with httpx.AsyncClient(base_url=proc.url, timeout=30.0) as http:
            before = await _admin_token(http, data_dir)
            old_kid = jwt.get_unverified_header(before)["kid"]

            rotated = await asyncio.to_thread(ghostpay, "keys", "rotate", "--data-dir", str(data_dir), env=keys_env)
            assert rotated.returncode == 0, rotated.stderr
            assert rotated.stdout.startswith(f"published {new_prefix}") and "retired: none" in rotated.stdout

            listed = await asyncio.to_thread(ghostpay, "keys", "list", "--data-dir", str(data_dir), env=keys_env)
            assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 2, listed.stdout + listed.stderr

            new_kid, after = old_kid, before
            for _ in range(50):  # bounded: the new version signs about a second after it is published
                after = await _admin_token(http, data_dir)
                new_kid = jwt.get_unverified_header(after)["kid"]
                if new_kid != old_kid:
                    break
                await asyncio.sleep(0.2)
            assert new_kid.startswith(new_prefix), new_kid
            jwks = (await http.get("/.well-known/jwks.json")).json()
            assert {key["kid"] for key in jwks["keys"]} == {old_kid, new_kid}
            for token in (before, after):  # the token from before the rotation still works, as does the new one
                response = await http.get("/cards", headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200, response.text
    finally:
        proc.stop()


def test_a_grace_period_shorter_than_a_token_is_refused(data_dir: Path) -> None:
    env = {"GHOSTPAY_KEYS_PASSPHRASE": procs.KEYS_PASSPHRASE}
    result = ghostpay("keys", "rotate", "--data-dir", str(data_dir), "--grace-period", "1m", env=env)
    assert result.returncode != 0
    assert "GHOSTPAY_KEY_GRACE_PERIOD must be at least the token lifetime" in result.stderr
    assert procs.KEYS_PASSPHRASE not in result.stderr  # a settings error never echoes the settings
    assert list(data_dir.iterdir()) == []  # nothing was created or rotated


def test_a_directory_without_a_dev_store_is_refused_and_left_alone(data_dir: Path) -> None:
    for command in ("rotate", "list"):
        result = ghostpay("keys", command, "--data-dir", str(data_dir))
        assert result.returncode != 0 and "is not a `ghostpay dev` data directory" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert list(data_dir.iterdir()) == []
    (data_dir / "keys-passphrase").write_text(procs.KEYS_PASSPHRASE)  # a passphrase, but no store
    result = ghostpay("keys", "rotate", "--data-dir", str(data_dir))
    assert result.returncode != 0 and "There is no key store" in result.stderr, result.stderr
    assert sorted(p.name for p in data_dir.iterdir()) == ["keys-passphrase"]


def test_a_wrong_passphrase_is_a_clear_error_and_changes_nothing(data_dir: Path) -> None:
    (data_dir / "keys-passphrase").write_text(procs.KEYS_PASSPHRASE)
    LocalKeyStore(data_dir / "keys", procs.KEYS_PASSPHRASE).open()
    files = sorted(p.name for p in (data_dir / "keys").iterdir())
    result = ghostpay("keys", "rotate", "--data-dir", str(data_dir), env={"GHOSTPAY_KEYS_PASSPHRASE": "wrong"})
    assert result.returncode != 0
    assert "wrong GHOSTPAY_KEYS_PASSPHRASE" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in (data_dir / "keys").iterdir()) == files
    assert ghostpay("keys", "list", "--data-dir", str(data_dir)).returncode == 0  # the right one still opens it
