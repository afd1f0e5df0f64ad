"""The bench's own HTTP client for the open loop (`httptools`), against a real aiohttp server on 127.0.0.1: what
it sends, what it reads back, and what it does when an answer never comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from bench.environment import card_id

from bench import http_load

TOKEN = "t0ken"
Handler = Callable[[web.Request], Awaitable[web.Response]]


@asynccontextmanager
async def _server(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/charges", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_each_charge_is_sent_once_with_its_headers_and_answered_with_its_status() -> None:
    seen: list[tuple[str, str, str]] = []

    async def charge(request: web.Request) -> web.Response:
        card = (await request.json())["card_id"]
        seen.append((card, request.headers["Authorization"], request.headers["Content-Type"]))
        approved = int(card[-1]) % 2 == 0
        return web.json_response({"card_id": card}, status=201 if approved else 402)

    cards = http_load.CardSource(10, "s")
    async with _server(charge) as url, http_load.Target(url, TOKEN).poster(3) as post:
        outcomes = await asyncio.gather(*(post(cards.next_body()) for _ in range(10)))

    assert sorted(outcomes) == ["201"] * 5 + ["402"] * 5
    assert sorted(card for card, _, _ in seen) == sorted(card_id("s", n) for n in range(1, 11))
    assert {(auth, kind) for _, auth, kind in seen} == {(f"Bearer {TOKEN}", "application/json")}


async def test_an_answer_that_never_comes_times_out_and_its_connection_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_load, "_TIMEOUT", 0.2)
    calls = 0

    async def first_hangs(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(5)
        return web.json_response({}, status=201)

    async with _server(first_hangs) as url, http_load.Target(url, TOKEN).poster(1) as post:
        first = await post(b"{}")
        second = await post(b"{}")

    assert (first, second) == ("TimeoutError", "201")


async def test_the_open_loop_sends_every_charge_it_scheduled_and_counts_them() -> None:
    cards_seen: set[str] = set()

    async def charge(request: web.Request) -> web.Response:
        cards_seen.add((await request.json())["card_id"])
        return web.json_response({}, status=201)

    async with _server(charge) as url:
        summary = await http_load._open_loop(http_load.Target(url, TOKEN), http_load.CardSource(1000), 200, 0.5, 4)

    assert (summary.operations, summary.ok, summary.target_rate) == (100, 100, 200)
    assert len(cards_seen) == 100
