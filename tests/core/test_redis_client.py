"""The services' Redis client: a Redis that accepts and never answers costs a call its deadline, not a hang, and
the cut-off connection is closed rather than handed to the next call with a late reply on it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ghostpay.core import redis_client, telemetry
from ghostpay.core.errors import Unavailable
from ghostpay.core.ratelimit import RateLimiter
from ghostpay.core.settings import RateLimit

POLICY = RateLimit(requests_per_second=5, burst=7)


class SilentRedis:
    """A Unix socket that reads whatever is sent and never answers; `closed` is set when a client hangs up."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.closed = asyncio.Event()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass
        self.closed.set()
        writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        return f"unix://{self.path}"

    async def __aexit__(self, *_: object) -> None:
        self._server.close()


@pytest.mark.parametrize("fail_closed", [False, True])
async def test_a_silent_redis_costs_the_limiter_its_deadline(tmp_path: Path, fail_closed: bool) -> None:
    silent = SilentRedis(tmp_path / "silent.sock")
    async with silent as url:
        client = redis_client.open_client(url)
        limiter = RateLimiter(client, fail_closed)
        errors_before = telemetry.RATE_LIMITER_ERRORS._value.get()
        try:
            # The test's own bound is ten deadlines: without the limiter's, the call would wait for ever.
            async with asyncio.timeout(10 * redis_client.TIMEOUT_SECONDS):
                if fail_closed:
                    with pytest.raises(Unavailable):
                        await limiter.check("client:silent", POLICY)
                else:
                    decision = await limiter.check("client:silent", POLICY)
                    assert decision.allowed and decision.limit == POLICY.burst  # failed open
                await silent.closed.wait()  # the interrupted connection was dropped, not pooled
        finally:
            await client.aclose()
        assert telemetry.RATE_LIMITER_ERRORS._value.get() == errors_before + 1
