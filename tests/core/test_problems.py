"""Every error is an RFC 9457 problem: unknown routes, wrong methods, bad JSON, missing tokens, and crashes —
which never show a stack trace to the client."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager

from ghostpay.app import create_app
from ghostpay.core.settings import Settings
from tests.conftest import Api

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/route", 404, "not_found"),
        ("GET", "/cards/", 404, "not_found"),  # no redirect to /cards
        ("DELETE", "/cards", 405, "method_not_allowed"),
        ("PUT", "/charges", 405, "method_not_allowed"),
        ("GET", "/cards", 401, "unauthorized"),
        ("POST", "/auth/token", 422, "invalid_request"),
    ],
)
async def test_errors_are_problem_documents(api: Api, method: str, path: str, status: int, code: str) -> None:
    response = await api.http.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body.keys() >= PROBLEM_FIELDS and body["status"] == status and body["code"] == code


@pytest.mark.parametrize(("path", "allowed"), [("/cards", "GET, POST"), ("/charges/ch_1", "GET")])
async def test_a_wrong_method_names_every_method_the_path_answers(api: Api, path: str, allowed: str) -> None:
    response = await api.http.request("DELETE", path)
    assert response.status_code == 405 and response.headers["allow"] == allowed


async def test_a_missing_token_asks_for_bearer(api: Api) -> None:
    response = await api.http.get("/charges")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_malformed_json_is_a_validation_problem(api: Api) -> None:
    merchant = await api.merchant()
    response = await api.http.post(
        "/charges", content=b"{not json", headers={**merchant["headers"], "content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["code"] == "validation_error"


# Found by tests/test_fuzz_openapi.py: a NUL character (which PostgreSQL text cannot hold) reached the database and
# came back as a 500; it is invalid input, so a 422 validation problem, wherever it is sent.
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/auth/token", {"client_id": "cli_\x00", "client_secret": "s"}),
        ("POST", "/auth/clients", {"name": "shop\x00", "role": "merchant"}),
        ("POST", "/cards", {"user_id": "u\x00", "amount": 100, "currency": "USD"}),
        ("POST", "/charges", {"card_id": "card_\x00", "amount": 100, "currency": "USD"}),
        ("GET", "/cards/card_%00", None),
        ("POST", "/cards/card_%00/close", None),
        ("GET", "/charges/ch_%00", None),
        ("GET", "/cards?user_id=%00", None),
        ("GET", "/charges?card_id=%00", None),
        ("GET", "/cards?starting_after=card_%00", None),
    ],
)
async def test_a_nul_character_is_a_validation_problem_not_a_500(
    api: Api, method: str, path: str, body: dict[str, object] | None
) -> None:
    response = await api.http.request(method, path, json=body, headers=await api.admin())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/cards", b'{"user_id": "u\\ud800", "amount": 100, "currency": "USD"}'),
        ("/auth/clients", b'{"name": "\\udfff", "role": "merchant"}'),
        ("/auth/token", b'{"client_id": "cli_\\ud800", "client_secret": "s"}'),
        ("/auth/token", b'{"client_id": "cli_nobody", "client_secret": "\\ud800"}'),
    ],
)
async def test_an_unpaired_surrogate_is_a_validation_problem_not_a_500(api: Api, path: str, body: bytes) -> None:
    """Valid JSON, but text UTF-8 (and PostgreSQL, and the secret hasher) cannot hold; it was a 500."""
    response = await api.http.post(
        path, content=body, headers={**await api.admin(), "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_body_that_is_not_utf8_is_a_documented_400_problem(api: Api) -> None:
    """Found by the fuzzer: FastAPI answers 400 for a JSON body it cannot decode; the OpenAPI document now says so."""
    response = await api.http.post(
        "/cards", content=b"\xff\xfe{", headers={**await api.admin(), "content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["code"] == "bad_request"
    assert response.headers["content-type"].startswith("application/problem+json")
    documented = create_app(Settings()).openapi()["paths"]
    for path, method in [("/auth/token", "post"), ("/auth/clients", "post"), ("/cards", "post"), ("/charges", "post")]:
        assert "application/problem+json" in documented[path][method]["responses"]["400"]["content"], path


async def test_validation_errors_do_not_echo_the_input(api: Api) -> None:
    merchant = await api.merchant()
    secret_looking = "4111111111111111"
    response = await api.http.post(
        "/cards", json={"user_id": "u", "amount": secret_looking, "currency": "USD"}, headers=merchant["headers"]
    )
    assert response.status_code == 422 and secret_looking not in response.text


async def test_a_crash_is_a_500_problem_without_a_stack_trace(settings: Settings) -> None:
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("secret internals at /srv/app.py line 42")

    app.add_api_route("/boom", boom)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get("/boom")
    assert response.status_code == 500 and response.json()["code"] == "internal_error"
    assert "secret internals" not in response.text and "Traceback" not in response.text
