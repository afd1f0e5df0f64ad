"""The HTTP load generator: `POST /charges` from this process, on uvloop, over the keep-alive connections of
one shared client per phase. Request bodies are small pre-encoded JSON; only the answers' status is read.

The closed-loop phases are driven by wrk (`bench.wrk_load`) unless `--client` asks for a Python one; the open-loop
phase (a fixed rate, which wrk cannot do) always runs here. Its client is `httptools` unless `--client` names
another: uvloop's own connections with the response parser uvicorn serves with, about 0.2 ms of CPU per request on
this path where aiohttp costs 0.4 and httpx about 1.3 (measured in one environment, alternating). The other two
are kept for comparison.

- `closed_loop`: `concurrency` workers, each sending its next charge as soon as its previous one is answered:
  the maximum throughput at that concurrency.
- `open_loop`: charges sent on a fixed schedule (`rate` per second) whatever the answers. Each latency is
  counted from the moment the request was due, so time spent queued behind slow answers counts too (no
  coordinated omission).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import cast

import aiohttp
import httptools
import httpx
import uvloop

from bench.environment import CHARGE_AMOUNT, CURRENCY, SERVICE_BATCH, card_id
from bench.stats import Summary, summarize

APPROVED = 201
_TIMEOUT = 30.0


class CardSource:
    """Request bodies, each charging the next unused card of a batch (the service's or the floor's). Past the end
    of the batch it wraps around, so those charges are declined (402) and show up as such in the outcomes.
    `taken` is shared with `bench.wrk_load`, which moves it past the cards a wrk run used."""

    def __init__(self, cards: int, batch: str = SERVICE_BATCH) -> None:
        self.cards = cards
        self.batch = batch
        self.taken = 0

    def next_body(self) -> bytes:
        number = self.taken % self.cards + 1
        self.taken += 1
        return json.dumps(
            {"card_id": card_id(self.batch, number), "amount": CHARGE_AMOUNT, "currency": CURRENCY}
        ).encode()


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    def record(self, outcome: str, due: float) -> None:
        now = time.perf_counter()
        self.latencies.append(now - due)
        self.finished.append(now)
        self.outcomes[outcome] += 1

    def summary(self, label: str, concurrency: int, seconds: float, target_rate: float | None = None) -> Summary:
        ok = self.outcomes[str(APPROVED)]
        return summarize(
            label, concurrency, self.latencies, self.finished, ok, seconds, self.outcomes, target_rate=target_rate
        )


Post = Callable[[bytes], Awaitable[str]]  # sends one charge; returns the HTTP status, or the error's name


@asynccontextmanager
async def _httpx_poster(base_url: str, headers: dict[str, str], connections: int) -> AsyncIterator[Post]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=_TIMEOUT) as client:

        async def post(body: bytes) -> str:
            try:
                return str((await client.post("/charges", content=body)).status_code)
            except httpx.HTTPError as exc:
                return type(exc).__name__

        yield post


@asynccontextmanager
async def _aiohttp_poster(base_url: str, headers: dict[str, str], connections: int) -> AsyncIterator[Post]:
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT)
    async with aiohttp.ClientSession(base_url, headers=headers, connector=connector, timeout=timeout) as session:

        async def post(body: bytes) -> str:
            try:
                async with session.post("/charges", data=body) as response:
                    await response.read()
                    return str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return type(exc).__name__

        yield post


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time, its answer read by httptools' parser (the one
    uvicorn serves with). The parser calls `on_message_complete` once the whole response is in."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[str] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._answer(type(exc).__name__)

    def on_message_complete(self) -> None:
        self._answer(str(self.parser.get_status_code()))

    def connection_lost(self, exc: Exception | None) -> None:
        self._answer(type(exc).__name__ if exc else "ConnectionClosed")

    def _answer(self, outcome: str) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(outcome)

    def _time_out(self) -> None:
        self._answer("TimeoutError")
        if self.transport is not None:
            self.transport.close()  # its late answer must not be taken for the next request's

    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    async def send(self, request: bytes) -> str:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.answer = loop.create_future()
        timer = loop.call_later(_TIMEOUT, self._time_out)
        self.transport.write(request)
        try:
            return await self.answer
        finally:
            timer.cancel()


@asynccontextmanager
async def _httptools_poster(base_url: str, headers: dict[str, str], connections: int) -> AsyncIterator[Post]:
    """The leanest of the three (about half of aiohttp's CPU per request): the request's head is encoded once,
    and each answer is parsed for its status only."""
    url = httpx.URL(base_url)
    head = f"POST /charges HTTP/1.1\r\nHost: {url.netloc.decode()}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    encoded_head = (head + "Content-Length: ").encode()

    async def connect() -> _Connection:
        _, connection = await asyncio.get_running_loop().create_connection(_Connection, url.host, url.port)
        return connection

    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await connect())

    async def post(body: bytes) -> str:
        connection = await idle.get()
        try:
            if connection.closed:  # the server closed it, or an answer timed out on it
                connection = await connect()
            return await connection.send(b"%s%d\r\n\r\n%s" % (encoded_head, len(body), body))
        except OSError as exc:
            return type(exc).__name__
        finally:
            idle.put_nowait(connection)

    try:
        yield post
    finally:
        while not idle.empty():
            connection = idle.get_nowait()
            if connection.transport is not None:
                connection.transport.close()


CLIENTS = {"httptools": _httptools_poster, "aiohttp": _aiohttp_poster, "httpx": _httpx_poster}


@dataclass(frozen=True)
class Target:
    """Where the charges go, as whom, and with which HTTP client library."""

    base_url: str
    token: str
    client: str = "httptools"

    def poster(self, connections: int) -> AbstractAsyncContextManager[Post]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        return CLIENTS[self.client](self.base_url, headers, connections)


async def _charge(post: Post, cards: CardSource, tally: _Tally, due: float) -> None:
    tally.record(await post(cards.next_body()), due)


async def _closed_loop(target: Target, cards: CardSource, concurrency: int, seconds: float) -> Summary:
    tally = _Tally()
    async with target.poster(concurrency) as post:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await _charge(post, cards, tally, time.perf_counter())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return tally.summary("service", concurrency, elapsed)


async def _open_loop(target: Target, cards: CardSource, rate: float, seconds: float, connections: int) -> Summary:
    tally = _Tally()
    in_flight: set[asyncio.Task[None]] = set()
    async with target.poster(connections) as post:
        started = time.perf_counter()
        for i in range(round(rate * seconds)):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(_charge(post, cards, tally, due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)
        elapsed = time.perf_counter() - started
    return tally.summary("service open loop", connections, elapsed, target_rate=rate)


def _freeze_what_exists() -> None:
    """This process's own full collections (50-80 ms over its ~180,000 objects, measured) would stop its sending
    and count in the latencies it measures: what exists before a phase is kept out of the collector's reach."""
    gc.collect()
    gc.freeze()


def closed_loop(target: Target, cards: CardSource, concurrency: int, seconds: float) -> Summary:
    _freeze_what_exists()
    return uvloop.run(_closed_loop(target, cards, concurrency, seconds))


def open_loop(target: Target, cards: CardSource, rate: float, seconds: float, connections: int) -> Summary:
    _freeze_what_exists()
    return uvloop.run(_open_loop(target, cards, rate, seconds, connections))
