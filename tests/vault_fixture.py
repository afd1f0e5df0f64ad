"""The session-scoped Vault fixtures: real Vault API servers (tests/vault.py) for the tests that need one.
Import them where needed, so the suites that do not use Vault never build or start one:

    from tests.vault_fixture import vault  # noqa: F401
    from tests.vault_fixture import persistent_vault  # noqa: F401

Each yields a `DevVault` with `addr`, `root_token`, `client()` (an `hvac.Client`, root token by default),
`log_path` and `stop()` / `start()` (or `with server.stopped():`). A test may stop and restart it mid-test
to see how the product copes with Vault being down; it must leave it running (`stopped()` does, in a
`finally`). Every test sets up its own mounts and keys (under names of its own) rather than relying on an
earlier test's.

- `vault`: dev mode. A restart loses all state (mounts, keys, policies, tokens; the address and root token
  stay), so a test that restarts it sets up again what it needs.
- `persistent_vault`: persistent mode, Integrated Storage on disk, initialized with one unseal key on its first
  start; `root_token` is the generated one. A restart unseals it with the saved key and keeps the address and
  everything stored (mounts, transit keys, policies, tokens): a real Vault outage.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vault import DevVault, server_binary


def _running(persistent: bool) -> Iterator[DevVault]:
    workdir = Path(tempfile.mkdtemp(prefix="gp-vault-", dir="/tmp"))
    server = DevVault(binary=server_binary(), workdir=workdir, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vault() -> Iterator[DevVault]:
    yield from _running(persistent=False)


@pytest.fixture(scope="session")
def persistent_vault() -> Iterator[DevVault]:
    yield from _running(persistent=True)
