"""Finding 3 (outside security review): request bodies are limited while they are read, a caller without a valid
token is refused before its body is read, and hostile JSON is a 400/422 problem on every JSON endpoint.

In process here (the app's `receive` is driven by httpx, so what the app consumed can be counted); against a
real `ghostpay serve charges` process over TCP in `test_body_limits_served.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Api

LIMIT = 64 * 1024  # the default GHOSTPAY_MAX_BODY_BYTES
CHUNK = 1024


class CountedBody:
    """An async request body of `chunks` chunks of 1 KiB that counts how many chunks the server pulled."""

    def __init__(self, chunks: int, fill: bytes = b" ") -> None:
        self.chunks = chunks
        self.fill = fill
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield self.fill * CHUNK


def assert_problem(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == response.status_code
    return problem


@pytest.mark.parametrize(("chunks", "closes"), [(200, False), (1025, True)], ids=["200 KiB", "1025 KiB"])
async def test_finding_3_a_declared_length_over_the_limit_is_413_without_reading(
    api: Api, chunks: int, closes: bool
) -> None:
    merchant = await api.merchant()
    body = CountedBody(chunks)
    headers = {**merchant["headers"], "content-type": "application/json", "content-length": str(chunks * CHUNK)}
    response = await api.http.post("/cards", content=body, headers=headers)
    problem = assert_problem(response, 413)
    assert problem["code"] == "body_too_large" and str(LIMIT) in problem["detail"]
    assert body.pulled == 0
    assert "RateLimit-Limit" in response.headers
    # Over 1 MiB left unread, the server closes rather than read it; less it reads and drops, keeping the
    # connection (closing on unread data resets it, which a client still sending would see instead of the 413).
    assert (response.headers.get("connection") == "close") is closes


@pytest.mark.parametrize("path", ["/cards", "/charges", "/auth/token"])
async def test_finding_3_a_chunked_body_over_the_limit_is_413_part_way(api: Api, path: str) -> None:
    merchant = await api.merchant()
    body = CountedBody(1000)  # 1 MB, no Content-Length
    headers = {**merchant["headers"], "content-type": "application/json"}
    response = await api.http.post(path, content=body, headers=headers)
    assert assert_problem(response, 413)["code"] == "body_too_large"
    assert body.pulled == LIMIT // CHUNK + 1  # read up to the chunk that passed the limit, not one more
    assert response.headers["connection"] == "close"  # the rest is of unknown length: not read


async def test_finding_3_a_form_body_over_the_limit_is_413(api: Api) -> None:
    body = CountedBody(1000, b"a")
    headers = {"content-type": "application/x-www-form-urlencoded"}
    response = await api.http.post("/auth/token", content=body, headers=headers)
    assert assert_problem(response, 413)["code"] == "body_too_large"
    assert body.pulled == LIMIT // CHUNK + 1


@pytest.mark.parametrize("path", ["/cards", "/charges", "/auth/clients"])
async def test_finding_3_no_token_is_401_before_the_body_is_read(api: Api, path: str) -> None:
    body = CountedBody(16)  # under the limit: only authentication can refuse it
    response = await api.http.post(path, content=body, headers={"content-type": "application/json"})
    assert assert_problem(response, 401)["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert body.pulled == 0


async def test_finding_3_a_bad_token_is_401_before_the_body_is_read(api: Api) -> None:
    body = CountedBody(16)
    headers = {"authorization": "Bearer not.a.token", "content-type": "application/json"}
    response = await api.http.post("/charges", content=body, headers=headers)
    assert assert_problem(response, 401)["code"] == "unauthorized"
    assert body.pulled == 0


async def test_finding_3_a_body_within_the_limit_is_read_as_before(api: Api) -> None:
    merchant = await api.merchant()
    padded = b'{"user_id": "u1", "amount": 100, "currency": "USD"}' + b" " * (LIMIT - 100)
    response = await api.http.post(
        "/cards", content=padded, headers={**merchant["headers"], "content-type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert "connection" not in response.headers


DEPTH = 50_000  # far past Python's recursion limit, yet under the 64 KiB body limit
HOSTILE_JSON = {
    "deep arrays": b"[" * DEPTH,
    "deep objects": b'{"a":' * (DEPTH // 5),
    "deep but closed": b"[" * 20_000 + b"]" * 20_000,
    "invalid UTF-8": b'{"client_id": "\xff\xfe", "client_secret": "x"}',
    "a 5000-digit number": b'{"client_id": "a", "client_secret": "b", "amount": ' + b"9" * 5000 + b"}",
    "NaN": b'{"user_id": "u", "amount": NaN, "currency": "USD"}',
    "a lone surrogate": b'{"user_id": "\\ud800", "amount": 1, "currency": "USD"}',
    "duplicate keys": b'{"client_id": "a", "client_id": {"x": 1}, "client_secret": "b"}',
}


@pytest.mark.parametrize("path", ["/auth/token", "/cards", "/charges", "/auth/clients"])
@pytest.mark.parametrize("kind", list(HOSTILE_JSON))
async def test_finding_3_hostile_json_is_a_400_or_422_problem(api: Api, path: str, kind: str) -> None:
    admin = await api.admin()
    headers = {**admin, "content-type": "application/json"}
    response = await api.http.post(path, content=HOSTILE_JSON[kind], headers=headers)
    assert_problem(response, 400, 422)


@pytest.mark.parametrize(
    "form",
    [
        b"client_id=%ff%fe&client_secret=x",  # invalid UTF-8 once decoded
        b"client_id=a&client_secret=b&" + b"&".join(b"f%d=1" % i for i in range(5000)),  # too many fields
        b"%%%&&&===",
    ],
)
async def test_finding_3_hostile_forms_on_the_token_endpoint_are_problems(api: Api, form: bytes) -> None:
    response = await api.http.post(
        "/auth/token", content=form, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert_problem(response, 400, 401, 422)


async def test_finding_3_a_broken_multipart_body_is_a_problem(api: Api) -> None:
    response = await api.http.post(
        "/auth/token", content=b"--x\r\nno headers", headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert_problem(response, 400, 422)
