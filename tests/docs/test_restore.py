"""docs/operations.md, "Back up and restore the database", done for real: the page's pg_dump and pg_restore
commands on a GhostPay database (PostgreSQL and the tools from the pgserver wheel), then a new app on the restored
database. What the page warns of holds — a card charged after the backup is active again and can be charged
again — and its remedy works: closing that card makes the next charge a `card_closed` decline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pgserver
import pytest

from ghostpay.core import db
from tests.conftest import in_process_api, make_settings
from tests.support.servers import Servers, fresh_database

pytestmark = pytest.mark.slow

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"
CHARGE = {"amount": 500, "currency": "USD"}


def _tool(*argv: str) -> None:
    result = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


async def test_restore_as_documented(servers: Servers, tmp_path: Path) -> None:
    page = OPERATIONS.read_text()
    # The commands this test runs are the page's (a changed page must change this test).
    assert 'pg_dump --format=custom --file="ghostpay-$(date -u +%Y%m%dT%H%MZ).dump" "$DSN"' in page
    assert "pg_restore --clean --if-exists --no-owner --single-transaction --dbname=" in page

    url = await fresh_database(servers.database_url, "gp_restore_doc")
    settings = make_settings(url, servers.redis_url, servers.root / "keys")
    dump = tmp_path / "ghostpay.dump"
    async with in_process_api(settings) as api:
        merchant = await api.merchant()
        headers = merchant["headers"]
        cards = [(await api.issue_card(headers, amount=500))["card_id"] for _ in range(2)]
        _tool("pg_dump", "--format=custom", f"--file={dump}", url)
        for card in cards:  # both charged after the backup
            charged = await api.http.post("/charges", json={**CHARGE, "card_id": card}, headers=headers)
            assert charged.status_code == 201, charged.text

    _tool("pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", f"--dbname={url}", str(dump))
    await db.migrate(url)  # what the instance's migration Job does when it comes back (nothing to do here)

    async with in_process_api(settings) as api:
        charged_again, to_close = cards
        shown = await api.http.get(f"/cards/{charged_again}", headers=headers)
        assert shown.json()["status"] == "active"  # the charge after the backup is forgotten...
        again = await api.http.post("/charges", json={**CHARGE, "card_id": charged_again}, headers=headers)
        assert again.status_code == 201, again.text  # ...so the single-use card is charged a second time
        closed = await api.http.post(f"/cards/{to_close}/close", headers=headers)
        assert closed.status_code == 200, closed.text  # the page's remedy, before traffic comes back
        refused = await api.http.post("/charges", json={**CHARGE, "card_id": to_close}, headers=headers)
        assert refused.status_code == 402 and refused.json()["decline_code"] == "card_closed", refused.text
