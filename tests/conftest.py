"""Shared fixtures: real PostgreSQL and Redis (session), a migrated database, an in-process app with helpers to
create clients of each role and get their tokens, and real Vault API servers (`vault`: dev mode, a restart loses
all state; `persistent_vault`: Integrated Storage, a restart keeps everything — a real outage). Session fixtures
start only when a test asks for them, so suites that need no Vault never build or start one. A test may stop and
restart a Vault mid-test (`with server.stopped():`) and must leave it running; every test sets up its own mounts
and keys under names of its own."""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from ghostpay.app import create_app
from ghostpay.core.settings import Settings
from tests.support.procs import KEYS_PASSPHRASE
from tests.support.servers import Servers, fresh_database, running_servers
from tests.support.vault import DevVault, server_binary

ADMIN_ID = "cli_test_admin"
ADMIN_SECRET = "test-admin-secret-" + "x" * 16
GENEROUS_LIMITS = {
    role: {"requestsPerSecond": 10000, "burst": 10000} for role in ("admin", "merchant", "user", "anonymous")
}


# What a test needs beyond PostgreSQL and Redis, read from where it lives and which fixtures it asks for:
# `make fast` runs everything that needs none of these.
_INFRA_DIRECTORIES = {"cluster": ("operator", "cluster"), "docker": ("image",), "helm": ("helm",)}
_INFRA_FIXTURES = {
    "vault": "openbao",
    "persistent_vault": "openbao",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "cluster": "cluster",
    "kind_cluster": "kind",
    "actionlint": "actionlint",
    "jaeger": "jaeger",
}
# What exists once per machine or crowds two cores when started per worker, and so runs on one worker: the kind
# cluster, the local control plane, the Docker image tests (image builds take a machine-wide lock besides).
_WORKER_GROUPS = {"kind": "kind", "cluster": "cluster", "docker": "docker", "helm": "docker"}
_DISRUPTION_SUITE = Path(__file__).parent / "kind" / "test_chaos.py"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the xdist_group marks set here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_root = Path(__file__).parent
    for item in items:
        parts = Path(str(item.path)).relative_to(tests_root).parts[:-1]
        needs = {name for name, where in _INFRA_DIRECTORIES.items() if parts[: len(where)] == where}
        needs |= {_INFRA_FIXTURES[f] for f in getattr(item, "fixturenames", ()) if f in _INFRA_FIXTURES}
        if needs:
            item.add_marker(pytest.mark.infra(*sorted(needs)))
        # `make test` spreads the suite over workers (pytest-xdist, --dist loadgroup), each with its own servers.
        if group := next((_WORKER_GROUPS[need] for need in _WORKER_GROUPS if need in needs), None):
            item.add_marker(pytest.mark.xdist_group(group))
    # The disruption suite last on the kind cluster (a worker runs its group's tests in this order): by then the
    # README block (tests/kind/test_end_to_end.py) has loaded the demo's PostgreSQL and Redis images into every node,
    # so the suite's set-up has only Prometheus's to load.
    items.sort(key=lambda item: Path(str(item.path)) == _DISRUPTION_SUITE)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with running_servers() as running:
        yield running


@pytest.fixture(scope="session")
async def database_url(servers: Servers) -> str:
    return await fresh_database(servers.database_url, "gp_tests")


def make_settings(database_url: str, redis_url: str, keys_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "keys_dir": keys_dir,
        "keys_passphrase": KEYS_PASSPHRASE,
        "admin_client_id": ADMIN_ID,
        "admin_client_secret": ADMIN_SECRET,
        "rate_limits": GENEROUS_LIMITS,
        "analytics_relay_interval_seconds": 0.1,
        # A test process on the loaded CI machine stalls for up to half a second at times (measured under a
        # parallel run): at the shipped 0.5 s such a stall made the limiter fail open mid-test. Tests of the
        # deadline itself set the shipped one.
        "redis_timeout_seconds": 2.0,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def keys_dir(servers: Servers) -> Path:
    return servers.root / "keys"


@pytest.fixture(scope="session")
def settings(database_url: str, servers: Servers, keys_dir: Path) -> Settings:
    return make_settings(database_url, servers.redis_url, keys_dir)


@dataclass
class Api:
    """An HTTP client on the in-process app, with helpers to act as each role."""

    http: httpx.AsyncClient

    async def token(self, client_id: str, client_secret: str) -> str:
        response = await self.http.post("/auth/token", json={"client_id": client_id, "client_secret": client_secret})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(ADMIN_ID, ADMIN_SECRET)}"}

    async def new_client(self, role: str, user_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": f"{role}-{secrets.token_hex(3)}", "role": role}
        if user_id:
            body["user_id"] = user_id
        response = await self.http.post("/auth/clients", json=body, headers=await self.admin())
        assert response.status_code == 201, response.text
        client: dict[str, Any] = response.json()
        client["headers"] = {
            "Authorization": f"Bearer {await self.token(client['client_id'], client['client_secret'])}"
        }
        return client

    async def merchant(self) -> dict[str, Any]:
        return await self.new_client("merchant")

    async def user(self, user_id: str | None = None) -> dict[str, Any]:
        return await self.new_client("user", user_id or f"user_{secrets.token_hex(4)}")

    async def issue_card(self, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
        body = {"user_id": "user_any", "amount": 1000, "currency": "USD", **fields}
        response = await self.http.post("/cards", json=body, headers=headers)
        assert response.status_code == 201, response.text
        card: dict[str, Any] = response.json()
        return card


@pytest.fixture(scope="session")
async def app_settings(settings: Settings) -> Settings:
    return settings


@contextlib.asynccontextmanager
async def in_process_api(
    app_settings: Settings, client_address: str = "127.0.0.1", **create_args: Any
) -> AsyncIterator[Api]:
    """An app started with its lifespan, and an HTTP client talking to it without a socket."""
    app = create_app(app_settings, **create_args)
    # Start-up bounded for a loaded CI machine (LifespanManager's own 5 s bound once failed every test of a worker).
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(client_address, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Api(http)


@pytest.fixture(scope="session")
async def api(app_settings: Settings) -> AsyncIterator[Api]:
    async with in_process_api(app_settings) as client:
        yield client


def _running_vault(persistent: bool) -> Iterator[DevVault]:
    workdir = Path(tempfile.mkdtemp(prefix="gp-vault-", dir="/tmp"))
    server = DevVault(binary=server_binary(), workdir=workdir, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vault() -> Iterator[DevVault]:
    yield from _running_vault(persistent=False)


@pytest.fixture(scope="session")
def persistent_vault() -> Iterator[DevVault]:
    yield from _running_vault(persistent=True)
