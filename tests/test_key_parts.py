"""Finding 4 of the security review: each service starts and works holding only its part of the local key
store — auth the signing keys, cards the PAN keys, charges and analytics the public keys and no passphrase —
laid out as the operator's projected Secret volumes give them, on one real PostgreSQL and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ghostpay.core.keys.local import LocalKeyStore, Part, split_files
from ghostpay.core.settings import Settings
from tests.conftest import ADMIN_ID, ADMIN_SECRET, in_process_api, make_settings
from tests.support.procs import KEYS_PASSPHRASE
from tests.support.servers import Servers, fresh_database

GIVEN: dict[str, tuple[tuple[Part, ...], bool]] = {  # the part Secrets and whether the passphrase, per service
    "auth": (("public", "signing"), True),
    "cards": (("public", "pan"), True),
    "charges": (("public",), False),
    "analytics": (("public",), False),
}


def _settings_for(
    service: str, tmp_path: Path, database_url: str, redis_url: str, files: dict[str, bytes]
) -> Settings:
    parts, passphrase = GIVEN[service]
    directory = tmp_path / service
    directory.mkdir()
    for part, part_files in split_files(files).items():
        for name, content in part_files.items() if part in parts else ():
            (directory / name).write_bytes(content)
    return make_settings(database_url, redis_url, directory, keys_passphrase=KEYS_PASSPHRASE if passphrase else None)


@pytest.mark.slow
async def test_finding_4_each_service_works_with_only_its_part(servers: Servers, tmp_path: Path) -> None:
    files = LocalKeyStore(tmp_path / "full", KEYS_PASSPHRASE).open().files()
    database_url = await fresh_database(servers.database_url, "gp_key_parts")
    settings = {s: _settings_for(s, tmp_path, database_url, servers.redis_url, files) for s in GIVEN}
    assert not any(p.name.endswith(".key") for s in ("charges", "analytics") for p in settings[s].keys_dir.iterdir())

    async with (
        in_process_api(settings["auth"], services=["auth"]) as auth,
        in_process_api(settings["cards"], services=["cards"]) as cards,
        in_process_api(settings["charges"], services=["charges"]) as charges,
        in_process_api(settings["analytics"], services=["analytics"]) as analytics,
    ):
        admin = {"Authorization": f"Bearer {await auth.token(ADMIN_ID, ADMIN_SECRET)}"}
        made = await auth.http.post("/auth/clients", json={"name": "shop", "role": "merchant"}, headers=admin)
        merchant: dict[str, Any] = made.json()
        headers = {"Authorization": f"Bearer {await auth.token(merchant['client_id'], merchant['client_secret'])}"}

        card = await cards.issue_card(headers, amount=500)
        charged = await charges.http.post(
            "/charges", json={"card_id": card["card_id"], "amount": 500, "currency": "USD"}, headers=headers
        )
        assert charged.status_code == 201, charged.text
        read = await cards.http.get(f"/cards/{card['card_id']}", headers=headers)
        assert read.json()["status"] == "used"
        summary = await analytics.http.get("/analytics/summary", headers=headers)
        assert summary.status_code == 200 and "cards_issued" in summary.json()
