"""Role-based access and visibility, table-driven.

1. The matrix: every role (admin, merchant, user, anonymous) against every endpoint, with the contract's status:
   401 without a token (with `WWW-Authenticate: Bearer`), 403 for a role that may not call the endpoint, and
   the success status otherwise. Callers act on their own things here (the merchant issued the card, the user
   owns it), so the table tests the role rule alone; a refused mutation must change nothing.
2. Visibility: what is not yours is 404 (never 403, and indistinguishable from what does not exist), for point
   reads, charges and closes; lists are filtered by the same rule; admin sees everything.
3. `POST /auth/clients` validation.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import Api

ROLES = ("admin", "merchant", "user", "anonymous")
PROBLEM = "application/problem+json"


def expect(admin: int, merchant: int, user: int) -> dict[str, int]:
    return {"admin": admin, "merchant": merchant, "user": user, "anonymous": 401}


# endpoint -> (method, path template, body template, expected status by role)
ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None, dict[str, int]]] = {
    "POST /auth/clients": ("POST", "/auth/clients", {"name": "rbac", "role": "merchant"}, expect(201, 403, 403)),
    "DELETE /auth/clients/{id}": ("DELETE", "/auth/clients/{victim_id}", None, expect(204, 403, 403)),
    "POST /auth/clients/{id}/secret": ("POST", "/auth/clients/{victim_id}/secret", None, expect(201, 403, 403)),
    "POST /cards": (
        "POST",
        "/cards",
        {"user_id": "{fresh_user}", "amount": 500, "currency": "USD"},
        expect(201, 201, 403),
    ),
    "GET /cards/{id}": ("GET", "/cards/{card_id}", None, expect(200, 200, 200)),
    "GET /cards": ("GET", "/cards?user_id={user_id}", None, expect(200, 200, 200)),
    "POST /cards/{id}/close": ("POST", "/cards/{card_id}/close", None, expect(200, 200, 403)),
    "POST /charges": (
        "POST",
        "/charges",
        {"card_id": "{card_id}", "amount": 100, "currency": "USD"},
        expect(201, 201, 403),
    ),
    "GET /charges/{id}": ("GET", "/charges/{charge_id}", None, expect(200, 200, 200)),
    "GET /charges": ("GET", "/charges?card_id={used_card_id}", None, expect(200, 200, 200)),
    "GET /analytics/summary": ("GET", "/analytics/summary", None, expect(200, 200, 403)),
}
MATRIX = [
    pytest.param(endpoint, role, statuses[role], id=f"{endpoint} as {role} -> {statuses[role]}")
    for endpoint, (_, _, _, statuses) in ENDPOINTS.items()
    for role in ROLES
]


@dataclass
class World:
    """Clients of every role, and the headers each presents (anonymous presents none)."""

    admin: dict[str, str]
    merchant_a: dict[str, Any]
    merchant_b: dict[str, Any]
    user_u: dict[str, Any]
    user_v: dict[str, Any]
    things: dict[str, str] = field(default_factory=dict)  # names -> card and charge ids, see `visibility`

    def headers(self, who: str) -> dict[str, str]:
        return {
            "admin": self.admin,
            "merchant": self.merchant_a["headers"],
            "merchant_a": self.merchant_a["headers"],
            "merchant_b": self.merchant_b["headers"],
            "user": self.user_u["headers"],
            "user_u": self.user_u["headers"],
            "user_v": self.user_v["headers"],
            "anonymous": {},
        }[who]


@pytest.fixture(scope="module")
async def world(api: Api) -> World:
    return World(
        admin=await api.admin(),
        merchant_a=await api.merchant(),
        merchant_b=await api.merchant(),
        user_u=await api.user(),
        user_v=await api.user(),
    )


def fill(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        return template.format(**values)
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    return template


async def charge(api: Api, headers: dict[str, str], card_id: str, amount: int = 100) -> httpx.Response:
    body = {"card_id": card_id, "amount": amount, "currency": "USD"}
    return await api.http.post("/charges", json=body, headers=headers)


async def card_state(api: Api, world: World, card_id: str) -> tuple[str, list[str]]:
    """(status, charge ids) of a card, as the admin sees it."""
    card = await api.http.get(f"/cards/{card_id}", headers=world.admin)
    charges = await api.http.get(f"/charges?card_id={card_id}&limit=100", headers=world.admin)
    return card.json()["status"], [c["charge_id"] for c in charges.json()["data"]]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


# --- 1. the role matrix ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "role", "status"), MATRIX)
async def test_role_matrix(api: Api, world: World, endpoint: str, role: str, status: int) -> None:
    method, path, body, _ = ENDPOINTS[endpoint]
    # Fresh things owned by the caller: merchant A issues a card to user U; another of its cards is charged.
    card = await api.issue_card(world.merchant_a["headers"], user_id=world.user_u["user_id"])
    used = await api.issue_card(world.merchant_a["headers"], user_id=world.user_u["user_id"])
    charged = await charge(api, world.merchant_a["headers"], used["card_id"])
    assert charged.status_code == 201, charged.text
    victim = await api.merchant() if "{victim_id}" in path else {"client_id": "", "client_secret": ""}
    values = {
        "victim_id": victim["client_id"],
        "card_id": card["card_id"],
        "used_card_id": used["card_id"],
        "charge_id": charged.json()["charge_id"],
        "user_id": world.user_u["user_id"],
        "fresh_user": f"user_{secrets.token_hex(4)}",
    }

    response = await api.http.request(method, fill(path, values), json=fill(body, values), headers=world.headers(role))

    assert response.status_code == status, response.text
    if status == 401:
        assert_problem(response, 401)
        assert response.headers.get("www-authenticate", "").startswith("Bearer")
    elif status == 403:
        assert assert_problem(response, 403)["code"] == "forbidden"
    elif endpoint == "POST /charges":
        assert response.json()["status"] == "approved"
    elif endpoint == "POST /cards/{id}/close":
        assert response.json()["status"] == "closed"
    elif endpoint.startswith("GET /cards"):
        listed = response.json().get("data", [response.json()])
        assert listed and all(c["user_id"] == world.user_u["user_id"] for c in listed)
    elif endpoint == "GET /charges":
        assert [c["charge_id"] for c in response.json()["data"]] == [values["charge_id"]]
    elif endpoint == "POST /auth/clients/{id}/secret":
        assert response.json()["client_id"] == victim["client_id"] and response.json()["client_secret"]

    if status in (401, 403):  # a refused call changes nothing
        assert await card_state(api, world, card["card_id"]) == ("active", [])
        if endpoint == "POST /cards":
            created = await api.http.get(f"/cards?user_id={values['fresh_user']}", headers=world.admin)
            assert created.json()["data"] == []
        if victim["client_id"]:  # neither disabled nor re-secreted: its secret still gets a token
            assert await api.token(victim["client_id"], victim["client_secret"])


# --- 2. visibility -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def visibility(api: Api, world: World) -> World:
    """Merchant A: `a_card` (active) and `a_used` (charged: `a_charge`), both to user U.
    Merchant B: `b_to_u` to user U, and `b_to_v` to user V (charged: `b_charge`)."""
    a, b = world.merchant_a["headers"], world.merchant_b["headers"]
    u, v = world.user_u["user_id"], world.user_v["user_id"]
    things = world.things
    things["a_card"] = (await api.issue_card(a, user_id=u))["card_id"]
    things["a_used"] = (await api.issue_card(a, user_id=u))["card_id"]
    things["b_to_u"] = (await api.issue_card(b, user_id=u))["card_id"]
    things["b_to_v"] = (await api.issue_card(b, user_id=v))["card_id"]
    things["a_charge"] = (await charge(api, a, things["a_used"])).json()["charge_id"]
    things["b_charge"] = (await charge(api, b, things["b_to_v"])).json()["charge_id"]
    return world


NOT_YOURS = [
    # (who, method, path template, body template)
    ("merchant_b", "GET", "/cards/{a_card}", None),
    ("merchant_b", "POST", "/cards/{a_card}/close", None),
    ("merchant_b", "POST", "/charges", {"card_id": "{a_card}", "amount": 100, "currency": "USD"}),
    ("merchant_b", "GET", "/charges/{a_charge}", None),
    ("merchant_a", "GET", "/cards/{b_to_u}", None),
    ("merchant_a", "POST", "/cards/{b_to_u}/close", None),
    ("merchant_a", "POST", "/charges", {"card_id": "{b_to_u}", "amount": 100, "currency": "USD"}),
    ("merchant_a", "GET", "/charges/{b_charge}", None),
    ("user_v", "GET", "/cards/{a_card}", None),
    ("user_v", "GET", "/charges/{a_charge}", None),
    ("user_u", "GET", "/cards/{b_to_v}", None),
    ("user_u", "GET", "/charges/{b_charge}", None),
]


@pytest.mark.parametrize(("who", "method", "path", "body"), NOT_YOURS, ids=[f"{w} {m} {p}" for w, m, p, _ in NOT_YOURS])
async def test_what_is_not_yours_is_404_like_what_does_not_exist(
    api: Api, visibility: World, who: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    things = visibility.things
    before = {name: await card_state(api, visibility, things[name]) for name in ("a_card", "b_to_u")}
    headers = visibility.headers(who)

    response = await api.http.request(method, fill(path, things), json=fill(body, things), headers=headers)

    problem = assert_problem(response, 404)
    missing = {name: f"{things[name].split('_')[0]}_{secrets.token_hex(12)}" for name in things}
    absent = await api.http.request(method, fill(path, missing), json=fill(body, missing), headers=headers)
    assert absent.status_code == 404
    assert (problem["code"], problem["title"]) == (absent.json()["code"], absent.json()["title"])
    # Not charged, not closed.
    assert {name: await card_state(api, visibility, things[name]) for name in before} == before


YOURS = [
    ("merchant_a", "/cards/{a_card}"),
    ("merchant_a", "/charges/{a_charge}"),
    ("merchant_b", "/cards/{b_to_u}"),
    ("user_u", "/cards/{a_card}"),
    ("user_u", "/cards/{b_to_u}"),
    ("user_u", "/charges/{a_charge}"),
    ("user_v", "/cards/{b_to_v}"),
    ("user_v", "/charges/{b_charge}"),
    ("admin", "/cards/{a_card}"),
    ("admin", "/cards/{b_to_v}"),
    ("admin", "/charges/{a_charge}"),
    ("admin", "/charges/{b_charge}"),
]


@pytest.mark.parametrize(("who", "path"), YOURS, ids=[f"{w} GET {p}" for w, p in YOURS])
async def test_what_is_yours_is_visible(api: Api, visibility: World, who: str, path: str) -> None:
    response = await api.http.get(fill(path, visibility.things), headers=visibility.headers(who))
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown.get("card_id") in {visibility.things[p] for p in ("a_card", "a_used", "b_to_u", "b_to_v")}


LISTS = [
    # (who, path template, ids that must be listed, ids that must not)
    ("merchant_a", "/cards", {"a_card", "a_used"}, {"b_to_u", "b_to_v"}),
    ("merchant_b", "/cards", {"b_to_u", "b_to_v"}, {"a_card", "a_used"}),
    ("merchant_b", "/cards?user_id={user_u}", {"b_to_u"}, {"a_card", "a_used", "b_to_v"}),
    ("user_u", "/cards", {"a_card", "a_used", "b_to_u"}, {"b_to_v"}),
    ("user_u", "/cards?user_id={user_v}", set(), {"a_card", "a_used", "b_to_u", "b_to_v"}),
    ("user_v", "/cards", {"b_to_v"}, {"a_card", "a_used", "b_to_u"}),
    ("admin", "/cards?user_id={user_u}", {"a_card", "a_used", "b_to_u"}, {"b_to_v"}),
    ("admin", "/cards?user_id={user_v}", {"b_to_v"}, {"a_card", "a_used", "b_to_u"}),
    ("merchant_a", "/charges", {"a_charge"}, {"b_charge"}),
    ("merchant_b", "/charges", {"b_charge"}, {"a_charge"}),
    ("merchant_b", "/charges?card_id={a_used}", set(), {"a_charge"}),
    ("user_u", "/charges", {"a_charge"}, {"b_charge"}),
    ("user_v", "/charges", {"b_charge"}, {"a_charge"}),
    ("user_v", "/charges?card_id={a_used}", set(), {"a_charge"}),
    ("admin", "/charges?card_id={a_used}", {"a_charge"}, set()),
    ("admin", "/charges?card_id={b_to_v}", {"b_charge"}, set()),
]


@pytest.mark.parametrize(("who", "path", "listed", "hidden"), LISTS, ids=[f"{w} GET {p}" for w, p, *_ in LISTS])
async def test_lists_are_filtered_by_visibility(
    api: Api, visibility: World, who: str, path: str, listed: set[str], hidden: set[str]
) -> None:
    things = visibility.things
    values = {**things, "user_u": visibility.user_u["user_id"], "user_v": visibility.user_v["user_id"]}
    separator = "&" if "?" in path else "?"
    response = await api.http.get(fill(path, values) + f"{separator}limit=100", headers=visibility.headers(who))
    assert response.status_code == 200, response.text
    items = response.json()["data"]
    ids = {item.get("charge_id") or item["card_id"] for item in items}
    assert {things[name] for name in listed} <= ids
    assert not {things[name] for name in hidden} & ids
    if who.startswith("merchant"):
        merchant_id = getattr(visibility, who)["merchant_id"]
        assert all(item["merchant_id"] == merchant_id for item in items)
    if who.startswith("user") and path.startswith("/cards"):
        assert all(item["user_id"] == getattr(visibility, who)["user_id"] for item in items)


async def test_a_foreign_cursor_is_refused_like_an_unknown_one(api: Api, visibility: World) -> None:
    """`starting_after` must not become an oracle for another merchant's card ids."""
    headers = visibility.headers("merchant_b")
    foreign = await api.http.get(f"/cards?starting_after={visibility.things['a_card']}", headers=headers)
    unknown = await api.http.get(f"/cards?starting_after=card_{secrets.token_hex(12)}", headers=headers)
    assert foreign.status_code == unknown.status_code
    assert foreign.status_code in (404, 422)
    assert foreign.json()["code"] == unknown.json()["code"]


# --- 3. POST /auth/clients validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "u", "role": "user"}, id="user role without user_id"),
        pytest.param({"name": "u", "role": "user", "user_id": None}, id="user role with null user_id"),
        pytest.param({"name": "u", "role": "user", "user_id": ""}, id="user role with empty user_id"),
        pytest.param({"name": "m", "role": "merchant", "user_id": "u1"}, id="merchant role with a user_id"),
        pytest.param({"name": "a", "role": "admin", "user_id": "u1"}, id="admin role with a user_id"),
        pytest.param({"name": "x", "role": "superadmin"}, id="unknown role"),
        pytest.param({"name": "x", "role": "Admin"}, id="role is case-sensitive"),
        pytest.param({"name": "x"}, id="no role"),
        pytest.param({"role": "merchant"}, id="no name"),
        pytest.param({"name": "", "role": "merchant"}, id="empty name"),
    ],
)
async def test_invalid_client_requests_get_422(api: Api, world: World, body: dict[str, Any]) -> None:
    response = await api.http.post("/auth/clients", json=body, headers=world.admin)
    problem = assert_problem(response, 422)
    assert "client_secret" not in problem and "client_id" not in problem


@pytest.mark.parametrize("role", ["admin", "merchant", "user"])
async def test_a_valid_client_request_creates_a_client_of_that_role(api: Api, world: World, role: str) -> None:
    body = {"name": f"ok-{role}", "role": role, **({"user_id": "user_rbac"} if role == "user" else {})}
    response = await api.http.post("/auth/clients", json=body, headers=world.admin)
    assert response.status_code == 201, response.text
    client = response.json()
    assert client["role"] == role and client["client_id"].startswith("cli_") and client["client_secret"]
    assert client.get("merchant_id") == (client["client_id"] if role == "merchant" else None)
    assert client.get("user_id") == ("user_rbac" if role == "user" else None)
