"""The session-scoped `vault` fixture: one real dev-mode Vault API server (tests/vault.py) for the tests
that need one. Import it where needed, so the suites that do not use Vault never build or start it:

    from tests.vault_fixture import vault  # noqa: F401

The fixture yields a `DevVault` with `addr`, `root_token`, `client()` (an `hvac.Client`, root token by
default) and `stop()` / `start()` (or `with vault.stopped():`). A test may stop and restart it mid-test to
see how the product copes with Vault being down; it must leave it running (`stopped()` does, in a
`finally`). Dev mode loses all state on restart (mounts, keys, policies, tokens; the address and root
token stay), so such a test sets up again what it needs, and every test sets up its own keys rather than
relying on an earlier test's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vault import DevVault, server_binary


@pytest.fixture(scope="session")
def vault() -> Iterator[DevVault]:
    server = DevVault(binary=server_binary(), workdir=Path(tempfile.mkdtemp(prefix="gp-vault-", dir="/tmp")))
    server.start()
    try:
        yield server
    finally:
        server.stop()
