"""The services' Redis client: a Redis that stops answering costs a call its deadline, not a hang; the cut-off
connection is closed rather than handed to the next call with a late reply on it; readiness says so in time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import hiredis
import pytest

from ghostpay.core import ops, redis_client, telemetry
from ghostpay.core.errors import Unavailable
from ghostpay.core.ratelimit import RateLimiter
from ghostpay.core.settings import RateLimit, Settings
from tests.conftest import in_process_api, make_settings

POLICY = RateLimit(requests_per_second=5, burst=7)
DEADLINE = Settings.model_fields["redis_timeout_seconds"].default  # the shipped one (the suite's settings raise it)
ANSWERED_REMAINING = 6  # what the scripted Redis's budget reply says is left


class ScriptedRedis:
    """A Unix socket speaking just enough Redis: it answers each connection's handshake; on its first
    `silent_connections` connections it then answers nothing, on later ones a script call with a budget
    (`ANSWERED_REMAINING` left) and anything else (a PING) with PONG."""

    def __init__(self, path: Path, silent_connections: int = 1) -> None:
        self.path = path
        self.silent_connections = silent_connections
        self.connections = 0
        self.first_closed = asyncio.Event()
        self.command_names: set[bytes] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        silent = self.connections <= self.silent_connections
        commands = hiredis.Reader()
        while data := await reader.read(4096):
            commands.feed(data)
            while (command := commands.gets()) is not False:
                self.command_names.add(command[0].upper())
                if command[0].upper() == b"CLIENT":  # the handshake (CLIENT SETINFO)
                    writer.write(b"+OK\r\n")
                elif silent:
                    pass
                elif command[0].upper() == b"EVALSHA":
                    writer.write(b"*5\r\n:1\r\n:%d\r\n:0\r\n:0\r\n:0\r\n" % ANSWERED_REMAINING)
                else:  # the health check's PING
                    writer.write(b"+PONG\r\n")
        if self.connections == 1:
            self.first_closed.set()
        writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        return f"unix://{self.path}"

    async def __aexit__(self, *_: object) -> None:
        self._server.close()


@pytest.mark.parametrize("fail_closed", [False, True])
async def test_a_redis_that_stops_answering_costs_the_limiter_its_deadline(tmp_path: Path, fail_closed: bool) -> None:
    scripted = ScriptedRedis(tmp_path / "redis.sock")
    async with scripted as url:
        client = redis_client.open_client(url, DEADLINE)
        limiter = RateLimiter(client, fail_closed, DEADLINE)
        errors_before = telemetry.RATE_LIMITER_ERRORS._value.get()
        try:
            # The test's own bound is ten deadlines: without the limiter's, the first call would wait for ever.
            async with asyncio.timeout(10 * DEADLINE):
                if fail_closed:
                    with pytest.raises(Unavailable):
                        await limiter.check("client:silent", POLICY)
                else:
                    decision = await limiter.check("client:silent", POLICY)
                    assert decision.allowed and decision.remaining == POLICY.burst  # failed open
                await scripted.first_closed.wait()  # the cut-off connection was dropped, not pooled
                answered = await limiter.check("client:silent", POLICY)
        finally:
            await client.aclose()
        assert telemetry.RATE_LIMITER_ERRORS._value.get() == errors_before + 1
        # The second call's own answer, on a new connection: not a late reply to the first.
        assert answered.remaining == ANSWERED_REMAINING and scripted.connections == 2
        # RESP2 without asking: no HELLO (redis-py 8's RESP3 handshake, which a Redis before 6 refuses).
        assert b"HELLO" not in scripted.command_names


async def test_readiness_answers_within_its_probe_s_time_when_redis_does_not(
    tmp_path: Path, database_url: str, keys_dir: Path
) -> None:
    """A Redis that accepts connections and never answers makes the process degraded (the limiter fails open), and
    `/readyz` says so before the probe's own timeout: not after it, which would take every pod out of its Service."""
    silent = ScriptedRedis(tmp_path / "redis.sock", silent_connections=1_000)
    async with silent as url:
        settings = make_settings(database_url, url, keys_dir, redis_timeout_seconds=DEADLINE)
        async with in_process_api(settings) as api, asyncio.timeout(ops._PROBE_TIMEOUT):
            ready = await api.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["redis"] == "unavailable (TimeoutError)"
