"""Finding 3 over real TCP: a 300 MB body sent to a real `ghostpay serve charges` on 127.0.0.1 is refused after
the server read a small part of it, with or without a Content-Length, with or without a token.

The body is generated as it is sent (never held in memory); the client counts the bytes it managed to hand to
the socket before the answer came — what the server read is at most that. The server answers and closes the
connection (`Connection: close`) instead of reading the rest, so the client's next write fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS, Api
from tests.support import procs
from tests.support.servers import Servers

pytestmark = pytest.mark.slow
TOTAL = 300 * 1024 * 1024
CHUNK = 64 * 1024
# What may have been sent before the refusal arrived: the body up to the limit plus what the socket buffers on
# both sides of a loopback connection hold (a few MB) — far from 300 MB.
AT_MOST_SENT = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def charges(
    servers: Servers, database_url: str, keys_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[procs.Proc]:
    env = procs.service_env(database_url, servers.redis_url, keys_dir, ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS)
    proc = procs.serve("charges", env, tmp_path_factory.mktemp("body-limits"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client handed to the socket before it had the answer


def _parse(data: bytes) -> tuple[int, dict[str, str], bytes] | None:
    """The answer in `data`, once it is all there."""
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return None
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    if len(body) < int(headers["content-length"]):
        return None
    return int(status_line.split()[1]), headers, body


def _upload(proc: procs.Proc, headers: dict[str, str], chunked: bool) -> Answer:
    """POST /charges with a 300 MB body made up as it is sent, a thread reading the answer meanwhile (as curl does;
    httpx reads only after its last write, and the reset that follows a refusal can lose the answer)."""
    framing = {"transfer-encoding": "chunked"} if chunked else {"content-length": str(TOTAL)}
    fields = {"host": "127.0.0.1", "content-type": "application/json", **framing, **headers}
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    chunk = b" " * CHUNK
    framed = b"%x\r\n%s\r\n" % (CHUNK, chunk) if chunked else chunk
    received = bytearray()
    with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as sock:

        def read() -> None:
            with contextlib.suppress(OSError):
                while _parse(bytes(received)) is None and (part := sock.recv(65536)):
                    received.extend(part)

        reader = threading.Thread(target=read)
        reader.start()
        sent = 0
        with contextlib.suppress(OSError):  # the server closed the connection after answering
            sock.sendall(f"POST /charges HTTP/1.1\r\n{head}\r\n".encode())
            while sent < TOTAL and reader.is_alive():  # bounded: at most 300 MB
                sock.sendall(framed)
                sent += CHUNK
        reader.join(30)
    answer = _parse(bytes(received))
    assert answer is not None, f"no complete answer; got {bytes(received[:200])!r}"
    return Answer(*answer, sent)


def _check(answer: Answer, status: int, code: str) -> None:
    print(f"\n{code}: the client handed {answer.sent / 2**20:.1f} MiB of 300 MiB to the socket before the answer")
    assert answer.status == status, answer.body
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert json.loads(answer.body)["code"] == code
    assert answer.headers["connection"] == "close"
    assert answer.sent < AT_MOST_SENT


async def _merchant_headers(api: Api) -> dict[str, Any]:
    return dict((await api.merchant())["headers"])


async def test_finding_3_a_300_mb_chunked_body_is_413_after_a_small_part(charges: procs.Proc, api: Api) -> None:
    _check(await asyncio.to_thread(_upload, charges, await _merchant_headers(api), True), 413, "body_too_large")


async def test_finding_3_a_300_mb_content_length_is_413_at_once(charges: procs.Proc, api: Api) -> None:
    _check(await asyncio.to_thread(_upload, charges, await _merchant_headers(api), False), 413, "body_too_large")


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_finding_3_an_unauthenticated_300_mb_body_is_401_after_a_small_part(
    charges: procs.Proc, chunked: bool
) -> None:
    answer = await asyncio.to_thread(_upload, charges, {}, chunked)
    _check(answer, 401, "unauthorized")
    assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_finding_3_the_server_still_serves_after_refusing(charges: procs.Proc, api: Api) -> None:
    merchant = await api.merchant()
    card = await api.issue_card(merchant["headers"])
    async with httpx.AsyncClient(base_url=charges.url, timeout=30.0) as http:
        response = await http.post(
            "/charges", json={"card_id": card["card_id"], "amount": 1, "currency": "USD"}, headers=merchant["headers"]
        )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("size", [100 * 1024, 1024 * 1024])
async def test_finding_3_a_client_that_sends_before_reading_gets_the_413(
    charges: procs.Proc, api: Api, size: int
) -> None:
    """httpx writes the whole body before it reads: a body the socket buffers can hold still gets its 413."""
    headers = await _merchant_headers(api)
    async with httpx.AsyncClient(base_url=charges.url, timeout=30.0) as http:
        response = await http.post("/charges", content=b" " * size, headers=headers)
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"
