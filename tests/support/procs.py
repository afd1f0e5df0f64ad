"""Real `ghostpay serve` / `ghostpay dev` processes for the tests that need the operating system: several
replicas on one database, a SIGKILL mid-request, a restart on the same data directory.

Every process listens on 127.0.0.1 only, logs to a file the test can read, and every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# The passphrase of the test key stores (GHOSTPAY_KEYS_PASSPHRASE); a test secret, not a real one.
KEYS_PASSPHRASE = "test-keystore-passphrase"

GHOSTPAY = Path(sys.executable).parent / "ghostpay"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
_START_ATTEMPTS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without any GHOSTPAY_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHOSTPAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, env: Mapping[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One `ghostpay …` command to completion (GHOSTPAY_* only from `env`), its output captured as text."""
    return subprocess.run(
        [str(GHOSTPAY), *args], env=_base_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )


def service_env(
    database_url: str,
    redis_url: str,
    keys_dir: Path,
    admin_id: str,
    admin_secret: str,
    rate_limits: Mapping[str, object],
    **extra: str,
) -> dict[str, str]:
    """GHOSTPAY_* settings for `ghostpay serve` (host and port are added by `Proc`)."""
    return {
        "GHOSTPAY_DATABASE_URL": database_url,
        "GHOSTPAY_REDIS_URL": redis_url,
        "GHOSTPAY_KEYS_DIR": str(keys_dir),
        "GHOSTPAY_KEYS_PASSPHRASE": KEYS_PASSPHRASE,
        "GHOSTPAY_ADMIN_CLIENT_ID": admin_id,
        "GHOSTPAY_ADMIN_CLIENT_SECRET": admin_secret,
        "GHOSTPAY_RATE_LIMITS": json.dumps(rate_limits),
        "GHOSTPAY_ANALYTICS_RELAY_INTERVAL_SECONDS": "0.1",
        **extra,
    }


@dataclass
class Proc:
    """One `ghostpay …` child process on 127.0.0.1:`port`; stderr goes to `log_path` (appended across restarts)."""

    args: list[str]
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    ready_path: str = "/readyz"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.args[0]}-{self.port}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _argv(self) -> list[str]:
        if self.args[0] == "dev":
            return [str(GHOSTPAY), *self.args, "--host", "127.0.0.1", "--port", str(self.port)]
        return [str(GHOSTPAY), *self.args]

    def spawn(self) -> None:
        """Start the process without waiting for it (see `wait_ready`)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        env = {**self.env, "GHOSTPAY_HOST": "127.0.0.1", "GHOSTPAY_PORT": str(self.port)}
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {' '.join(self._argv())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self._argv(), env=_base_env(env), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll GET `ready_path` until 200; fail with the log if the process dies or the time runs out."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self._argv()} exited with {self.process.returncode}:\n{self.logs()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.ready_path).status_code == 200:
                        return
                time.sleep(0.2)
        raise RuntimeError(f"{self._argv()} not ready after {timeout:.0f}s:\n{self.logs()}")

    def start(self, timeout: float = READY_TIMEOUT) -> Proc:
        """Spawn and wait until ready; on a port lost to a race, retry on a new port (a few times)."""
        for attempt in range(_START_ATTEMPTS):
            self.spawn()
            try:
                self.wait_ready(timeout)
                return self
            except RuntimeError:
                lost_port = "address already in use" in self.logs().lower()
                self.stop()
                if not lost_port or attempt == _START_ATTEMPTS - 1:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code (negative: killed by that signal)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind in the child."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)


def serve(service: str, env: Mapping[str, str], log_dir: Path) -> Proc:
    """A `ghostpay serve SERVICE` process logging into `log_dir`, not yet started; its metrics on a free port of
    their own (the default, 9090, would collide between processes and with anything else on the machine)."""
    return Proc(["serve", service], {"GHOSTPAY_METRICS_PORT": str(free_port()), **env}, log_dir)


def dev(data_dir: Path, log_dir: Path, env: Mapping[str, str] | None = None) -> Proc:
    """A `ghostpay dev --data-dir DATA_DIR` process (embedded PostgreSQL and Redis), not yet started."""
    return Proc(["dev", "--data-dir", str(data_dir)], dict(env or {}), log_dir)


@contextlib.contextmanager
def running(*procs: Proc, timeout: float = READY_TIMEOUT) -> Iterator[tuple[Proc, ...]]:
    """Start all of `procs` side by side, wait until each is ready, stop them all on exit."""
    try:
        for proc in procs:
            proc.spawn()
        for proc in procs:
            proc.wait_ready(timeout)
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains `text` (e.g. a data directory), by scanning /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def wait_gone(text: str, timeout: float = STOP_TIMEOUT) -> list[int]:
    """Wait (bounded) until no process mentions `text`; returns the ones still there."""
    deadline = time.monotonic() + timeout
    while (left := pids_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def kill_mentioning(text: str) -> None:
    """Clean-up after a test: SIGKILL the processes it started indirectly (found by their unique data dir)."""
    for pid in pids_mentioning(text):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_gone(text, 5)
