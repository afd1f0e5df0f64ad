"""The committed OpenAPI document fuzzed against a live `ghostpay dev` with schemathesis.

Every operation of `services/openapi.yaml` gets generated requests — valid ones and invalid ones (schemathesis'
positive and negative modes) — sent as each role (admin, merchant, user) and without a token. Each response must
not be a 5xx, must have a documented status code and content type, and must match the documented schema. The run
is bounded (a fixed number of examples per operation and mode) and derandomized, so CI sees the same requests on
every run; it prints how many requests it sent. Rate limits are generous so 429s do not hide the real answers.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import GENEROUS_LIMITS
from tests.support import procs

pytestmark = pytest.mark.slow

OPENAPI = Path(__file__).parent.parent / "services" / "openapi.yaml"
DEV_READY_TIMEOUT = 180.0  # a first start runs initdb
ROLES = ("admin", "merchant", "user", "anonymous")
# Examples per operation, role and generation mode: 14 operations x 4 roles x (positive + negative).
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 20, schemathesis.GenerationMode.NEGATIVE: 10}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class Target:
    url: str
    tokens: dict[str, str]


def _token(http: httpx.Client, client_id: str, client_secret: str) -> str:
    response = http.post("/auth/token", json={"client_id": client_id, "client_secret": client_secret})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _seed(http: httpx.Client, admin_token: str) -> dict[str, str]:
    """A merchant and a user client, and a card charged once, so lists and reads return real rows."""
    tokens = {"admin": admin_token}
    admin = {"Authorization": f"Bearer {admin_token}"}
    for role, extra in (("merchant", {}), ("user", {"user_id": "fuzz-user"})):
        created = http.post("/auth/clients", json={"name": f"fuzz {role}", "role": role, **extra}, headers=admin)
        assert created.status_code == 201, created.text
        tokens[role] = _token(http, created.json()["client_id"], created.json()["client_secret"])
    merchant = {"Authorization": f"Bearer {tokens['merchant']}"}
    card = http.post("/cards", json={"user_id": "fuzz-user", "amount": 500, "currency": "USD"}, headers=merchant)
    assert card.status_code == 201, card.text
    charge = {"card_id": card.json()["card_id"], "amount": 500, "currency": "USD"}
    assert http.post("/charges", json=charge, headers=merchant).status_code == 201
    return tokens


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data_dir = Path(tempfile.mkdtemp(prefix="gpf-", dir="/tmp"))  # short: PostgreSQL's and Redis' sockets live here
    admin_id, admin_secret = "cli_fuzz_admin", secrets.token_urlsafe(24)
    env = {
        "GHOSTPAY_ADMIN_CLIENT_ID": admin_id,
        "GHOSTPAY_ADMIN_CLIENT_SECRET": admin_secret,
        "GHOSTPAY_RATE_LIMITS": json.dumps(GENEROUS_LIMITS),
    }
    proc = procs.dev(data_dir, tmp_path_factory.mktemp("fuzz-logs"), env)
    try:
        proc.start(DEV_READY_TIMEOUT)
        with httpx.Client(base_url=proc.url, timeout=30.0) as http:
            tokens = _seed(http, _token(http, admin_id, admin_secret))
        yield Target(proc.url, tokens)
    finally:
        proc.stop()
        procs.kill_mentioning(str(data_dir))
        shutil.rmtree(data_dir, ignore_errors=True)


def _runner(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode, call: Callable[..., None]) -> None:
    """Run `call(case)` on EXAMPLES[mode] generated cases of `operation`, the same ones on every run."""

    @settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as sent, in bounded time
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        call(case)

    run()


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(target: Target, role: str, capsys: pytest.CaptureFixture[str]) -> None:
    schema = schemathesis.openapi.from_path(OPENAPI, config=schemathesis.Config())  # no schemathesis.toml applies
    headers = {"Authorization": f"Bearer {target.tokens[role]}"} if role in target.tokens else {}
    failures: list[str] = []
    statuses: Counter[tuple[str, int]] = Counter()
    started = time.monotonic()

    def call(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=target.url, headers=headers, checks=CHECKS, timeout=30)
        statuses[(case.operation.label, response.status_code)] += 1

    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in EXAMPLES:
            try:
                _runner(operation, mode, call)
            except Unsatisfiable:
                if mode is not schemathesis.GenerationMode.NEGATIVE:  # negative: an operation with no input to break
                    failures.append(f"--- {role} {operation.label}: no valid request could be generated")
            except (Exception, schemathesis.errors.FailureGroup) as exc:  # fuzz every operation, report all failures
                failures.append(f"--- {role} {operation.label} ({mode.value}):\n{exc}")
    by_class: Counter[str] = Counter()
    for (_, status), count in statuses.items():
        by_class[f"{status // 100}xx"] += count
    with capsys.disabled():  # the count is worth seeing in every run, not only in a failure's output
        print(
            f"\nfuzzed {len(operations)} operations as {role}: {statuses.total()} requests answered as documented "
            f"({', '.join(f'{k} {v}' for k, v in sorted(by_class.items()))}), {len(failures)} failing, "
            f"{time.monotonic() - started:.1f} s"
        )
    assert not failures, "\n".join(failures)
    # The harness itself: a role's token was really used (GET /cards is open to every role), none is anonymous.
    on_cards = {status for (label, status) in statuses if label == "GET /cards"}
    assert (200 in on_cards) if role in target.tokens else (on_cards == {401}), on_cards
