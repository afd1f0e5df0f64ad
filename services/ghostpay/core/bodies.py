"""Request bodies read under a size limit (`GHOSTPAY_MAX_BODY_BYTES`), counted as they arrive.

Used by the edge middleware, which hands the app a `LimitedBody` in place of the server's `receive`: past the
limit it raises `BodyTooLarge`, which the problem handlers answer with a 413 problem, so a body is never read
whole before it is refused. After such an early answer the connection is closed if the rest of the body is
large or unknown, so the server does not go on reading it.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

# After an early answer the server may read and drop this much of a body rather than close the connection:
# closing with unread data resets it, and a client that reads only once it has sent everything (most do) would
# then see the reset instead of the answer.
DRAIN_AT_MOST = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body read so far passes the limit. An HTTPException because FastAPI's
    body parsing re-raises those (any other error becomes a 400); the problem handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the limit of {limit} bytes.")


class LimitedBody:
    """The request's `receive`, counting body bytes: `BodyTooLarge` past `limit`; `complete` once all was read."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.limit = limit
        self.received = 0
        self.complete = False

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise BodyTooLarge(self.limit)
            self.complete = not message.get("more_body", False)
        return message

    def should_close(self, headers: Headers) -> bool:
        """Whether the connection should close after the response rather than let the server read the rest of
        the body (and drop it): when that rest is unknown (chunked) or more than `DRAIN_AT_MOST`."""
        if self.complete or "transfer-encoding" in headers:
            return not self.complete
        length = declared_length(headers)
        return length is not None and length - self.received > DRAIN_AT_MOST


def declared_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None  # absent, or malformed (which the HTTP server refuses before the app sees it)
