"""The disruption suite's traffic generator: a steady, bounded mix of what merchants do, through the NodePorts.

Each worker loops: now and then a new merchant token (`POST /auth/token`), then issue a card (`POST /cards`),
charge it once (`POST /charges` with an Idempotency-Key), and read the charge back (`GET /charges/{id}`). Every
request opens a new connection (no keep-alive), so kube-proxy picks a pod for each one: the answers spread over
the replicas as a merchant's would, and the `GhostPay-Version` header of each says which release served it.

A request is retried only as a careful client retries: on a connection error, a timeout or a 5xx, a few times,
with a short pause — and a charge always with the same Idempotency-Key, so a retry can never charge twice.
Every attempt is recorded: `failed` counts the attempts that got a connection error, a timeout or a 5xx (what a
merchant would notice), `lost` the requests (by kind) that still had no answer after their retries — the client
gave up on them. A charge given up on was never told approved, so it cannot be an approved charge lost; it is
kept in `given_up` (card, body, Idempotency-Key) and `settle_given_up` sends it once more afterwards, as the client
would, so that the database check covers it too: approved at most once, and the client then told so.

Bounded in time (`duration`, and the HTTP timeout per attempt) and in count (`max_iterations` per worker).
Traffic goes to 127.0.0.1 only (kind's port mappings to the NodePorts).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from ghostpay_devtools import kindcluster

PORTS = dict(zip(("auth", "cards", "charges", "analytics"), kindcluster.NODE_PORTS, strict=True))
VERSION_HEADER = "GhostPay-Version"
NO_HEADER = "(no version header)"  # an answer from an image without it: a foreign build, which the report shows
TIMEOUT = 10.0  # per attempt: a request that takes longer counts as failed (and is retried)
RETRIES = 3
RETRY_PAUSE = 0.5
TOKEN_EVERY = 10  # iterations between two new tokens (a token costs an Argon2 hash on the server)


def url(service: str, path: str) -> str:
    return f"http://127.0.0.1:{PORTS[service]}{path}"


@dataclass
class Attempt:
    """One HTTP attempt: what was asked, what came back (status 0: no answer), which version answered, when."""

    kind: str  # token | card | charge | read
    status: int
    version: str | None
    at: float  # seconds since the traffic started
    error: str = ""  # no answer: the exception's name (ConnectError, ReadTimeout, ...)
    code: str = ""  # an error answer's problem code
    remaining: int | None = None  # RateLimit-Remaining
    limit: int | None = None  # RateLimit-Limit

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 500


@dataclass
class Traffic:
    """What one run of traffic saw."""

    attempts: list[Attempt] = field(default_factory=list)
    lost: Counter[str] = field(default_factory=Counter)  # requests without an answer after every retry, by kind
    given_up: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # charges so: (body, Idempotency-Key)
    approved: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # card id -> charge ids
    charges_answered: Counter[int] = field(default_factory=Counter)  # final status of each charge request
    errors: Counter[str] = field(default_factory=Counter)
    duration: float = 0.0

    @property
    def sent(self) -> int:
        return len(self.attempts)

    @property
    def failed(self) -> int:
        return sum(a.failed for a in self.attempts)

    @property
    def double_approvals(self) -> int:
        """Cards the client saw approved by two different charges (a retry returning the same charge is one)."""
        return sum(len(charges) > 1 for charges in self.approved.values())

    @property
    def versions(self) -> Counter[str]:
        return Counter(a.version for a in self.attempts if a.version)

    def versions_between_kinds(self, start: float, end: float, kinds: set[str]) -> Counter[str]:
        return Counter(a.version for a in self.attempts if a.version and a.kind in kinds and start <= a.at < end)

    def failed_kinds(self) -> Counter[str]:
        named = (" ".join(p for p in (a.kind, str(a.status or ""), a.code or a.error) if p) for a in self.attempts)
        return Counter(name for name, attempt in zip(named, self.attempts, strict=True) if attempt.failed)

    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.attempts)


class Generator:
    """Runs `workers` merchant loops until `stop()` or `duration` s, whichever comes first."""

    def __init__(
        self,
        merchant: dict[str, str],
        *,
        workers: int = 4,
        duration: float = 60.0,
        pause: float = 0.2,
        max_iterations: int = 2000,
    ) -> None:
        self.merchant, self.workers, self.duration = merchant, workers, duration
        self.pause, self.max_iterations = pause, max_iterations
        self.result = Traffic()
        self._stop = threading.Event()
        self._started = 0.0
        self._thread: threading.Thread | None = None

    # --- running beside a test that disrupts the cluster ---------------------------------------------------

    def start(self) -> Generator:
        """Runs the traffic in a thread of its own (with its own event loop) while the caller disrupts things."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self.run()), name="traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Traffic:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=self.duration + TIMEOUT * (RETRIES + 2))
        return self.result

    def elapsed(self) -> float:
        return time.monotonic() - self._started if self._started else 0.0

    # --- the traffic itself --------------------------------------------------------------------------------

    async def run(self) -> Traffic:
        self._started = time.monotonic()
        limits = httpx.Limits(max_keepalive_connections=0)  # a new connection (and kube-proxy choice) per request
        async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as http:
            await asyncio.gather(*(self._worker(http, n) for n in range(self.workers)))
        self.result.duration = time.monotonic() - self._started
        return self.result

    def _going(self) -> bool:
        return not self._stop.is_set() and self.elapsed() < self.duration

    async def _worker(self, http: httpx.AsyncClient, number: int) -> None:
        headers: dict[str, str] | None = None
        for iteration in range(self.max_iterations):
            if not self._going():
                return
            if headers is None or iteration % TOKEN_EVERY == 0:
                headers = await self._token(http) or headers
            if headers is not None:
                await self._pay(http, headers, number)
            await asyncio.sleep(self.pause)

    async def _token(self, http: httpx.AsyncClient) -> dict[str, str] | None:
        answer = await self._send(http, "token", "POST", url("auth", "/auth/token"), json=self.merchant)
        if answer is None or answer.status_code != 200:
            return None
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    async def _pay(self, http: httpx.AsyncClient, headers: dict[str, str], number: int) -> None:
        body = {"user_id": f"chaos-{number}", "amount": 1000, "currency": "USD"}
        issued = await self._send(http, "card", "POST", url("cards", "/cards"), json=body, headers=headers)
        if issued is None or issued.status_code != 201:
            return
        card_id = issued.json()["card_id"]
        charge = {"card_id": card_id, "amount": 700, "currency": "USD"}
        keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}  # one key per charge, kept over its retries
        charged = await self._send(http, "charge", "POST", url("charges", "/charges"), json=charge, headers=keyed)
        if charged is None:
            self.result.given_up.append((charge, keyed["Idempotency-Key"]))
            return
        self.result.charges_answered[charged.status_code] += 1
        if charged.status_code != 201 or charged.json().get("status") != "approved":
            return
        charge_id = charged.json()["charge_id"]
        self.result.approved[card_id].add(charge_id)
        await self._send(http, "read", "GET", url("charges", f"/charges/{charge_id}"), headers=headers)

    async def _send(self, http: httpx.AsyncClient, kind: str, method: str, target: str, **kwargs: Any) -> Any:
        """One request with a client's retries; the last answer (None: no answer at all, or a 5xx every time)."""
        for attempt in range(RETRIES + 1):
            if attempt:
                await asyncio.sleep(RETRY_PAUSE)
            at = self.elapsed()
            try:
                answer = await http.request(method, target, **kwargs)
            except httpx.HTTPError as exc:  # connection refused or reset, timeout
                self.result.attempts.append(Attempt(kind, 0, None, at, type(exc).__name__))
                self.result.errors[f"{kind} {type(exc).__name__}"] += 1
                continue
            self.result.attempts.append(_attempt(kind, answer, at))
            if answer.status_code < 500:
                return answer
            self.result.errors[f"{kind} {answer.status_code}"] += 1
        self.result.lost[kind] += 1
        return None


def _attempt(kind: str, answer: httpx.Response, at: float) -> Attempt:
    code = ""
    if answer.status_code >= 400 and answer.headers.get("content-type", "").startswith("application/problem+json"):
        code = str(answer.json().get("code", ""))
    remaining, limit = answer.headers.get("RateLimit-Remaining"), answer.headers.get("RateLimit-Limit")
    return Attempt(
        kind,
        answer.status_code,
        answer.headers.get(VERSION_HEADER, NO_HEADER),
        at,
        code=code,
        remaining=int(remaining) if remaining is not None else None,
        limit=int(limit) if limit is not None else None,
    )


async def settle_given_up(traffic: Traffic, merchant: dict[str, str]) -> Counter[int]:
    """Each charge the traffic gave up on, sent once more with its Idempotency-Key (what the client does once the
    service is back); an approval is recorded in `traffic.approved`. Returns the answers' statuses."""
    statuses: Counter[int] = Counter()
    if not traffic.given_up:
        return statuses
    async with httpx.AsyncClient(timeout=30.0) as http:
        token = (await http.post(url("auth", "/auth/token"), json=merchant)).json()["access_token"]
        for charge, key in traffic.given_up:
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
            answer = await http.post(url("charges", "/charges"), json=charge, headers=headers)
            statuses[answer.status_code] += 1
            if answer.status_code == 201 and answer.json().get("status") == "approved":
                traffic.approved[charge["card_id"]].add(answer.json()["charge_id"])
    return statuses


async def merchant_credentials(admin: dict[str, str], name: str) -> dict[str, str]:
    """A new merchant client (made by the bootstrap admin): its client_id and client_secret."""
    async with httpx.AsyncClient(timeout=30.0) as http:
        token = (await http.post(url("auth", "/auth/token"), json=admin)).json()["access_token"]
        made = await http.post(
            url("auth", "/auth/clients"),
            json={"name": name, "role": "merchant"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert made.status_code == 201, made.text
        merchant = made.json()
        return {"client_id": merchant["client_id"], "client_secret": merchant["client_secret"]}
