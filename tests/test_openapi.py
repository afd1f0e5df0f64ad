"""The committed OpenAPI document (services/openapi.yaml) is exactly what the app serves."""

from __future__ import annotations

from pathlib import Path

import yaml

from ghostpay.app import create_app
from ghostpay.core.settings import Settings

COMMITTED = Path(__file__).parent.parent / "services" / "openapi.yaml"


def test_the_committed_document_matches_the_app() -> None:
    served = create_app(Settings()).openapi()
    committed = yaml.safe_load(COMMITTED.read_text())
    assert committed == served, "services/openapi.yaml is stale: run `make openapi` and commit it"


def test_it_is_openapi_3_1_with_every_contract_path() -> None:
    document = yaml.safe_load(COMMITTED.read_text())
    assert document["openapi"].startswith("3.1")
    assert {
        "/auth/token",
        "/auth/clients",
        "/.well-known/jwks.json",
        "/cards",
        "/cards/{card_id}",
        "/charges",
        "/charges/{charge_id}",
        "/analytics/summary",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= document["paths"].keys()
