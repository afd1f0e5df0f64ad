"""`core.edge`'s pure pieces (the middleware itself is exercised through the app: test_ratelimit, test_body_limits)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders

from ghostpay.core.edge import with_headers


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
