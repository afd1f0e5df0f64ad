"""The merchants of `make load` (Locust users): what a merchant's integration does with the REST API.

- `Merchant` (most users): issues single-use cards, charges each once (with an `Idempotency-Key`, sometimes
  retried, so the replay is exercised), reads cards and charges back, lists them, looks at its analytics; now and
  then it tries a used card again or asks for more than a card allows, and expects the decline.
- `PollingMerchant` (three users on one client): a badly written integration that polls its card list and
  analytics with hardly a pause, so it runs into its rate limit; its 429s are expected (and counted), everyone
  else's are not. A careful merchant that meets a 429 sends the same request again later (same idempotency key).

Every request states the answer it expects; any other answer is a Locust failure. A 429 is never a failure
here: it is the limiter doing its job, and the report counts it separately (by merchant kind). The driver
(`load.run`) sets `credentials` before the run.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import Counter
from typing import Any, ClassVar, Literal

from locust import HttpUser, between, constant, task
from locust.clients import ResponseContextManager
from locust.exception import RescheduleTask

from load import report

CURRENCIES = ("USD", "EUR", "JPY")
_TOKEN_MARGIN = 0.8  # renew a token after this share of its lifetime
Outcome = Literal["expected", "rate limited", "unexpected"]


class Tally:
    """What the clients were told, for the end-of-run comparison with the analytics service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def add(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1


TALLY = Tally()


class _MerchantBase(HttpUser):
    abstract = True
    kind: ClassVar[str] = "merchant"
    credentials: ClassVar[list[dict[str, str]]] = []  # set by load.run: {"client_id", "client_secret"} each
    _next: ClassVar[itertools.count[int]]  # each kind deals its users round-robin over its own clients

    def context(self) -> dict[str, Any]:
        return {"kind": self.kind}  # lets the request listener count 429s by merchant kind

    def on_start(self) -> None:
        credentials = self.credentials[next(self._next) % len(self.credentials)]
        self.client_id, self.secret = credentials["client_id"], credentials["client_secret"]
        self.token: str | None = None
        self.token_renews_at = 0.0

    def _login(self) -> None:
        body = {"client_id": self.client_id, "client_secret": self.secret}
        with self.client.post("/auth/token", json=body, name="/auth/token", catch_response=True) as response:
            if _expect(response, 200) == "expected":
                answer = response.json()
                self.token = answer["access_token"]
                self.token_renews_at = time.monotonic() + answer["expires_in"] * _TOKEN_MARGIN

    def _headers(self, **extra: str) -> dict[str, str]:
        if self.token is None or time.monotonic() >= self.token_renews_at:
            self._login()
        if self.token is None:  # the token endpoint said 429 (its budget is per address): later
            raise RescheduleTask
        return {"Authorization": f"Bearer {self.token}", **extra}

    def _get(self, path: str, name: str, params: dict[str, Any] | None = None) -> Any:
        with self.client.get(path, params=params, headers=self._headers(), name=name, catch_response=True) as r:
            return r.json() if _expect(r, 200) == "expected" else None


class Merchant(_MerchantBase):
    """A well-behaved merchant integration, at a human-ish pace."""

    weight = 1
    wait_time = between(0.2, 1.0)
    _next = itertools.count()

    def on_start(self) -> None:
        super().on_start()
        self.cards: list[dict[str, Any]] = []  # issued, not yet charged
        self.used: list[str] = []  # cards with an approved charge
        self.charges: list[str] = []
        self.last_charge: tuple[str, dict[str, Any]] | None = None  # (idempotency key, body), to retry

    @task(5)
    def issue_card(self) -> None:
        currency = random.choice(CURRENCIES)  # noqa: S311 - the shape of the load, not a secret
        amount = random.randrange(500, 50_000)  # noqa: S311
        body = {"user_id": f"usr_{random.randrange(1000)}", "amount": amount, "currency": currency}  # noqa: S311
        with self.client.post("/cards", json=body, headers=self._headers(), name="/cards", catch_response=True) as r:
            if _expect(r, 201) == "expected":
                TALLY.add("cards_issued")
                self.cards.append({"card_id": r.json()["card_id"], "amount": amount, "currency": currency})

    @task(5)
    def charge(self) -> None:
        if not self.cards:
            return
        card = self.cards[-1]
        if "attempt" not in card:  # after a 429 the same request goes again, with the same key
            amount = random.randrange(1, card["amount"] + 1)  # noqa: S311
            card["attempt"] = (
                str(uuid.uuid4()),
                {"card_id": card["card_id"], "amount": amount, "currency": card["currency"]},
            )
        outcome = self._charge(*card["attempt"], status=201)
        if outcome == "rate limited":
            return
        self.cards.pop()  # charged, or failed (and then not tried again: it may have been charged)
        if outcome == "expected":
            self.used.append(card["card_id"])
            self.last_charge = card["attempt"]

    @task(1)
    def retry_last_charge(self) -> None:
        """A client that lost the answer sends the same request again: the first answer is replayed."""
        if self.last_charge is not None:
            self._charge(*self.last_charge, status=201, replay=True)

    @task(1)
    def charge_a_used_card(self) -> None:
        if self.used:
            body = {"card_id": random.choice(self.used), "amount": 1, "currency": "USD"}  # noqa: S311
            self._charge(str(uuid.uuid4()), body, status=402, decline="card_used")

    @task(1)
    def charge_too_much(self) -> None:
        if self.cards:
            card = self.cards[-1]
            body = {"card_id": card["card_id"], "amount": card["amount"] + 1, "currency": card["currency"]}
            self._charge(str(uuid.uuid4()), body, status=402, decline="amount_exceeds_limit")

    @task(3)
    def read_card(self) -> None:
        if self.used:
            path = f"/cards/{random.choice(self.used)}"  # noqa: S311
            with self.client.get(path, headers=self._headers(), name="/cards/{card_id}", catch_response=True) as r:
                if _expect(r, 200) == "expected" and (status := r.json()["status"]) != "used":
                    r.failure(f"a charged card is {status}")

    @task(2)
    def read_charge(self) -> None:
        if self.charges:
            self._get(f"/charges/{random.choice(self.charges)}", "/charges/{charge_id}")  # noqa: S311

    @task(2)
    def list_cards(self) -> None:
        self._get("/cards", "/cards?limit=20", {"limit": 20})

    @task(1)
    def analytics(self) -> None:
        self._get("/analytics/summary", "/analytics/summary")

    def _charge(self, key: str, body: dict[str, Any], status: int, decline: str = "", replay: bool = False) -> Outcome:
        headers = self._headers(**{"Idempotency-Key": key})
        name = "/charges (replay)" if replay else "/charges"
        with self.client.post("/charges", json=body, headers=headers, name=name, catch_response=True) as response:
            outcome = _expect(response, status)
            if outcome != "expected":
                return outcome
            answer = response.json()
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            if replay != replayed:
                response.failure(f"Idempotent-Replayed is {replayed}, expected {replay}")
                return "unexpected"
            if decline and answer.get("decline_code") != decline:
                response.failure(f"declined with {answer.get('decline_code')}, expected {decline}")
                return "unexpected"
            if not replayed:
                TALLY.add("approved" if status == 201 else "declined")
                self.charges.append(answer["charge_id"])
            return "expected"


class PollingMerchant(_MerchantBase):
    """An integration that polls as fast as it can: it meets its own rate limit, and only it does."""

    kind = "polling merchant"
    fixed_count = 3  # three workers on one client: well over its budget even when the server answers slowly
    wait_time = constant(0.02)
    _next = itertools.count()

    @task(3)
    def poll_cards(self) -> None:
        self._get("/cards", "/cards?limit=20", {"limit": 20})

    @task(1)
    def poll_analytics(self) -> None:
        self._get("/analytics/summary", "/analytics/summary")


def _expect(response: ResponseContextManager, status: int) -> Outcome:
    """Mark the response: the expected status succeeds; a 429 is not a failure, but is kept apart (its latency is
    not that of the work asked for); anything else is a failure."""
    if response.status_code == status:
        response.success()
        return "expected"
    if response.status_code == 429:
        response.request_meta["name"] += report.RATE_LIMITED  # its own line in the statistics
        response.success()
        return "rate limited"
    response.failure(f"expected {status}, got {response.status_code}: {response.text[:200]}")
    return "unexpected"
