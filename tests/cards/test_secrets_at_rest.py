"""Card secrets at rest and in logs: the PAN is stored only encrypted, the CVV not at all, neither is logged.

(a) Every byte the database holds (each public table read row by row, and a `pg_dump` of the whole database),
    and every value in Redis, is free of the PAN in any common spelling; the CVV has no column and no value.
(b) The stored ciphertext is the PAN under the data key (unwrapped through the key store), bound to its card,
    so the PAN is kept encrypted rather than discarded; the look-up hash is the keyed HMAC.
(c) The card as read back (`GET /cards/{id}`, `GET /cards`) has no `pan` or `cvv`.
(d) Issuing cards (and probing with a PAN in the path) logs neither, raw or formatted; `telemetry.redact`
    scrubs PANs and CVV fields from JSON text.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pgserver
import pytest
import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag

from ghostpay.cards import sealing
from ghostpay.core import telemetry
from ghostpay.core.keys.local import LocalKeyStore
from tests.conftest import Api
from tests.support.procs import KEYS_PASSPHRASE
from tests.support.servers import Servers

CARD_COUNT = 5
CLIENT_SIDE_LOGGERS = ("httpx", "httpcore")  # the test's own HTTP client logs the URLs it requests


def spellings(pan: str) -> list[str]:
    """Ways a PAN could sit in text: plain, grouped by spaces or dashes, ASCII-hex (bytea), base64."""
    groups = [pan[i : i + 4] for i in range(0, len(pan), 4)]
    return [
        pan,
        " ".join(groups),
        "-".join(groups),
        pan.encode().hex(),
        base64.b64encode(pan.encode()).decode(),
        base64.urlsafe_b64encode(pan.encode()).decode().rstrip("="),
    ]


def assert_no_pan(text: str, cards: list[dict[str, Any]], where: str) -> None:
    lowered = text.lower()
    for card in cards:
        for spelling in spellings(card["pan"]):
            assert spelling.lower() not in lowered, f"{where} holds card {card['card_id']}'s PAN as {spelling!r}"


@pytest.fixture(scope="module")
async def cards(api: Api) -> list[dict[str, Any]]:
    merchant = await api.merchant()
    issued = [
        await api.issue_card(merchant["headers"], user_id=f"user_secrets_{i}", amount=1000 + i)
        for i in range(CARD_COUNT)
    ]
    # One of them charged and one closed, so rows in charges, outbox and idempotency_keys exist too.
    charged = await api.http.post(
        "/charges",
        json={"card_id": issued[0]["card_id"], "amount": 500, "currency": "USD"},
        headers={**merchant["headers"], "Idempotency-Key": "secrets-at-rest"},
    )
    assert charged.status_code == 201, charged.text
    closed = await api.http.post(f"/cards/{issued[1]['card_id']}/close", headers=merchant["headers"])
    assert closed.status_code == 200
    return [{**card, "headers": merchant["headers"]} for card in issued]


@pytest.fixture(scope="module")
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def table_dump(conn: asyncpg.Connection) -> dict[str, str]:
    """Every row of every public table as text, with bytea columns also decoded as escaped text."""
    tables = [
        r["table_name"]
        for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    ]
    dump: dict[str, str] = {}
    for table in tables:
        bytea = [
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = $1 AND data_type = 'bytea'",
                table,
            )
        ]
        escaped = "".join(f", encode(t.\"{col}\", 'escape')" for col in bytea)
        rows = await conn.fetch(f'SELECT t::text AS row{escaped} FROM "{table}" t')
        dump[table] = "\n".join(" | ".join(str(v) for v in row.values()) for row in rows)
    return dump


_CVV_WORD = re.compile(r"(?<![a-z0-9+/])cvv(?![a-z0-9+/=])")


# --- (a) nothing in clear, anywhere -------------------------------------------------------------------------


async def test_no_table_holds_a_pan_or_a_cvv(db: asyncpg.Connection, cards: list[dict[str, Any]]) -> None:
    dump = await table_dump(db)
    assert {"cards", "charges", "outbox", "data_keys", "clients", "idempotency_keys"} <= dump.keys()
    card_ids = {card["card_id"] for card in cards}
    assert all(card_id in dump["cards"] for card_id in card_ids)  # the dump does see the cards
    for table, text in dump.items():
        assert_no_pan(text, cards, f"table {table}")
        # A field or key named cvv: the word on its own, not three letters inside base64 (a password hash's salt
        # or a ciphertext may hold them by chance — one did, 1 run in many).
        assert not _CVV_WORD.search(text.lower()), f"table {table} mentions a cvv"

    columns = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND (column_name ILIKE '%cvv%' OR column_name ILIKE '%cvc%' OR column_name ILIKE '%security_code%' "
        "OR column_name ILIKE 'pan' OR column_name ILIKE '%card_number%')"
    )
    assert [tuple(c) for c in columns] == []

    for card in cards:
        row = await db.fetchrow("SELECT * FROM cards WHERE card_id = $1", card["card_id"])
        assert row is not None
        for column, value in dict(row).items():
            as_text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            assert as_text != card["cvv"], f"cards.{column} holds the CVV"
            assert card["pan"] not in as_text, f"cards.{column} holds the PAN"
        assert row["last4"] == card["pan"][-4:]


def test_a_pg_dump_of_the_database_holds_no_pan(database_url: str, cards: list[dict[str, Any]]) -> None:
    pg_dump = Path(pgserver.__file__).parent / "pginstall/bin/pg_dump"
    result = subprocess.run(
        [str(pg_dump), "--no-owner", "--dbname", database_url], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "COPY public.cards" in result.stdout
    assert all(card["card_id"] in result.stdout for card in cards)
    assert_no_pan(result.stdout, cards, "pg_dump")
    assert not re.search(r"(?i)\bcvv\b", result.stdout)


async def test_redis_holds_no_pan(servers: Servers, cards: list[dict[str, Any]]) -> None:
    client = aioredis.from_url(servers.redis_url)
    try:
        values = []
        async for key in client.scan_iter(count=1000):
            kind = (await client.type(key)).decode()
            if kind == "string":
                values.append(await client.get(key))
            elif kind == "hash":
                fields = await client.hgetall(key)
                values.append(json.dumps({k.decode(): v.decode("latin-1") for k, v in fields.items()}))
            values.append(key)
    finally:
        await client.aclose()
    text = "\n".join(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values)
    assert_no_pan(text, cards, "redis")


# --- (b) stored encrypted, not discarded -----------------------------------------------------------------------


async def test_the_stored_ciphertext_decrypts_to_the_pan(
    db: asyncpg.Connection, cards: list[dict[str, Any]], keys_dir: Path
) -> None:
    keys = LocalKeyStore(keys_dir, KEYS_PASSPHRASE).open()
    lookup_key = keys.unwrap(await db.fetchval("SELECT wrapped_key FROM data_keys WHERE purpose = 'lookup'"))
    rows = {
        r["card_id"]: r
        for r in await db.fetch(
            "SELECT c.card_id, c.pan_ciphertext, c.pan_hash, c.data_key_id, k.wrapped_key "
            "FROM cards c JOIN data_keys k ON k.key_id = c.data_key_id WHERE c.card_id = ANY($1::text[])",
            [card["card_id"] for card in cards],
        )
    }
    assert rows.keys() == {card["card_id"] for card in cards}
    for card in cards:
        row = rows[card["card_id"]]
        material = keys.unwrap(row["wrapped_key"])
        assert material not in row["wrapped_key"]  # the data key itself is not stored either
        data_key = sealing.DataKey(row["data_key_id"], material)
        assert sealing.unseal_pan(data_key, card["card_id"], row["pan_ciphertext"]) == card["pan"]
        assert row["pan_hash"] == sealing.pan_lookup_hash(lookup_key, card["pan"])
        # The card id is authenticated data: the ciphertext does not open as another card's.
        with pytest.raises(InvalidTag):
            sealing.unseal_pan(data_key, cards[-1 if card is cards[0] else 0]["card_id"], row["pan_ciphertext"])
    assert len({bytes(r["pan_ciphertext"]) for r in rows.values()}) == len(rows)


# --- (c) never returned again ----------------------------------------------------------------------------------

# fmt: off
CARD_FIELDS = {
    "card_id", "user_id", "merchant_id", "status", "amount", "currency",
    "expires_at", "created_at", "exp_month", "exp_year", "last4",
}
# fmt: on


@pytest.mark.parametrize("how", ["GET /cards/{id}", "GET /cards?user_id=", "GET /cards"])
async def test_a_card_read_back_has_no_pan_or_cvv(api: Api, cards: list[dict[str, Any]], how: str) -> None:
    headers = cards[0]["headers"]
    for card in cards:
        if how == "GET /cards/{id}":
            response = await api.http.get(f"/cards/{card['card_id']}", headers=headers)
            shown = [response.json()]
        else:
            query = f"?user_id={card['user_id']}" if how.endswith("=") else "?limit=100"
            response = await api.http.get(f"/cards{query}", headers=headers)
            shown = [c for c in response.json()["data"] if c["card_id"] == card["card_id"]]
        assert response.status_code == 200 and len(shown) == 1
        assert set(shown[0]) == CARD_FIELDS
        assert shown[0]["last4"] == card["pan"][-4:]
        assert card["cvv"] not in {str(v) for v in shown[0].values()}
        assert_no_pan(response.text, [card], how)


# --- (d) logs ---------------------------------------------------------------------------------------------------


async def test_issuing_cards_logs_no_pan_or_cvv(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    merchant = await api.merchant()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(telemetry.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with caplog.at_level(logging.DEBUG):
            issued = [await api.issue_card(merchant["headers"], user_id="user_logs") for _ in range(3)]
            for card in issued:  # a PAN pasted where an id belongs must not reach a log line either
                await api.http.get(f"/cards/{card['pan']}", headers=merchant["headers"])
                await api.http.post(
                    "/charges",
                    json={"card_id": card["pan"], "amount": 1, "currency": "USD", "cvv": card["cvv"]},
                    headers=merchant["headers"],
                )
    finally:
        root.removeHandler(handler)

    records = [r for r in caplog.records if not r.name.startswith(CLIENT_SIDE_LOGGERS)]
    assert any(r.name == "ghostpay.access" for r in records), "no access log captured: the check is blind"
    for record in records:
        raw = f"{record.getMessage()} {record.__dict__!r}"
        assert_no_pan(raw, issued, f"log record {record.name}")
        assert "cvv" not in raw.lower()
        values = {v for v in [*record.__dict__.values(), *(record.args or ())] if isinstance(v, str)}
        assert not {card["cvv"] for card in issued} & values, f"a CVV is a field of log record {record.name}"

    lines = [line for line in stream.getvalue().splitlines() if line]
    assert lines and all(json.loads(line)["logger"] for line in lines)
    assert_no_pan("\n".join(lines), issued, "JSON log output")


PAN = "4000001234567899"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(json.dumps({"pan": PAN, "cvv": "123", "amount": 1000}), id="json"),
        pytest.param(json.dumps({"card": {"number": PAN, "CVV": "1234"}}), id="nested json, upper-case CVV"),
        pytest.param(json.dumps({"msg": "charged 4000 0012 3456 7899, cvv: 123"}), id="spaced pan in a message"),
        pytest.param(json.dumps({"msg": "card 4000-0012-3456-7899 cvv=123"}), id="dashed pan, cvv="),
        pytest.param('{"cvv":123,"pan":4000001234567899}', id="numbers, not strings"),
        pytest.param(str({"pan": PAN, "cvv": "123"}), id="python repr"),
    ],
)
def test_redact_scrubs_pans_and_cvv_fields(text: str) -> None:
    redacted = telemetry.redact(text)
    digits = re.sub(r"\D", "", PAN)
    assert digits not in re.sub(r"[ -]", "", redacted)
    assert not re.search(r"(?i)cvv\W{0,4}\d{3,4}", redacted), redacted
    assert "REDACTED" in redacted
    if "amount" in text:
        assert json.loads(redacted)["amount"] == 1000  # ordinary numbers survive, and JSON stays JSON


def test_the_json_formatter_redacts_what_a_careless_log_call_leaks() -> None:
    record = logging.LogRecord("ghostpay.test", logging.INFO, __file__, 1, "card %s cvv=%s", (PAN, "123"), None)
    line = telemetry.JsonFormatter().format(record)
    assert PAN not in line and "cvv=[REDACTED]" in line and "cvv=123" not in line
    assert json.loads(line)["logger"] == "ghostpay.test"
