"""`core.edge`'s pure pieces (the middleware itself is exercised through the app: test_ratelimit, test_body_limits)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.datastructures import MutableHeaders
from starlette.routing import Match

from ghostpay.core.edge import reaches, with_headers


def test_headers_are_set_as_starlettes_mutable_headers_would_set_them() -> None:
    raw = [(b"content-type", b"application/json"), (b"retry-after", b"1"), (b"retry-after", b"2")]
    extra = {"Retry-After": "3", "RateLimit-Limit": "10", "traceparent": "00-ab-cd-01"}
    expected = {"headers": list(raw)}
    MutableHeaders(scope=expected).update(extra)
    assert sorted(with_headers(raw, extra)) == sorted(expected["headers"])
    # Every duplicate of a replaced name goes; names are matched without regard to case; nothing else is touched.
    assert with_headers(raw, extra) == [
        (b"content-type", b"application/json"),
        (b"retry-after", b"3"),
        (b"ratelimit-limit", b"10"),
        (b"traceparent", b"00-ab-cd-01"),
    ]
    assert raw[1] == (b"retry-after", b"1")  # the response's own list is left as it was


def test_reaches_says_what_a_full_match_says() -> None:
    """`reaches` stands in for `route.matches(scope)` on every request; it must agree with it."""
    router = APIRouter()

    @router.post("/charges")
    async def charge() -> None: ...

    @router.get("/charges/{charge_id}")
    async def show(charge_id: str) -> None: ...

    requests = [
        ("POST", "/charges", ""),
        ("GET", "/charges", ""),
        ("POST", "/charges/", ""),
        ("GET", "/charges/ch_1", ""),
        ("HEAD", "/charges/ch_1", ""),
        ("DELETE", "/charges/ch_1", ""),
        ("GET", "/charges/ch_1/more", ""),
        ("POST", "/api/charges", "/api"),  # served under a root path
        ("POST", "/charges", "/api"),
        ("POST", "/apicharges", "/api"),
    ]
    outcomes = []
    for route in router.routes:
        assert isinstance(route, APIRoute)
        for method, path, root_path in requests:
            scope = {"type": "http", "method": method, "path": path, "root_path": root_path}
            full = route.matches(scope)[0] is Match.FULL
            assert reaches(route, scope) is full, (route.path, method, path, root_path)
            outcomes.append(full)
    assert True in outcomes and False in outcomes
