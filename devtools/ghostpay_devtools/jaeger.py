"""A local Jaeger (v2, built from its Go module by tools/jaeger/build.sh) for looking at traces: an OTLP HTTP
receiver, in-memory storage, the query API and the UI, every port on 127.0.0.1.

`ghostpay dev --jaeger` starts one beside the services and points their OTLP export at it; the trace export test
(tests/core/test_trace_export.py) sends to one and reads the trace back through the query API.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "jaeger" / "build.sh"
READY_TIMEOUT = 60.0
DEFAULT_UI_PORT = 16686


class JaegerError(RuntimeError):
    """Jaeger could not be built or started (the message says why, with the end of its log)."""


def binary() -> str:
    """The `jaeger` binary: from PATH, or built into the cache by tools/jaeger/build.sh (the first time takes a
    while: it compiles Jaeger)."""
    command = ["bash", str(BUILD_SCRIPT)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)  # noqa: S603 - ours
    for line in result.stdout.splitlines():
        if line.startswith("jaeger="):
            return line.removeprefix("jaeger=")
    raise JaegerError(f"{BUILD_SCRIPT} failed ({result.returncode}):\n{result.stderr[-4000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(otlp_port: int, ui_port: int, grpc_query_port: int, health_port: int) -> str:
    """Jaeger's all-in-one configuration, cut down to OTLP over HTTP into memory, on 127.0.0.1 only."""
    return f"""\
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health_port}
  jaeger_query:
    storage:
      traces: memory
    http:
      endpoint: 127.0.0.1:{ui_port}
    grpc:
      endpoint: 127.0.0.1:{grpc_query_port}
  jaeger_storage:
    backends:
      memory:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_port}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memory
"""


@dataclass
class Jaeger:
    """A running Jaeger: send OTLP to `otlp_endpoint`, browse or query `ui_url` (`/api/traces/<id>`)."""

    process: subprocess.Popen[bytes]
    otlp_port: int
    ui_port: int
    log_path: Path

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def log_tail(self, limit: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-limit:]
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start(directory: Path, ui_port: int | None = None, jaeger: str | None = None) -> Jaeger:
    """Jaeger with its config and log in `directory`, OTLP on a free port, the UI on `ui_port` (else a free one);
    returns once its query API answers, or raises JaegerError."""
    executable = jaeger or binary()
    directory.mkdir(parents=True, exist_ok=True)
    otlp_port, ui = free_port(), ui_port or free_port()
    config_path = directory / "jaeger.yaml"
    config_path.write_text(config(otlp_port, ui, free_port(), free_port()))
    log_path = directory / "jaeger.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - the binary we built
            [executable, "--config", str(config_path)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    running = Jaeger(process, otlp_port, ui, log_path)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise JaegerError(f"jaeger exited ({process.returncode}); log:\n{running.log_tail()}")
        with contextlib.suppress(httpx.HTTPError, OSError):
            if httpx.get(f"{running.ui_url}/api/services", timeout=1.0).status_code == 200:
                socket.create_connection(("127.0.0.1", otlp_port), timeout=1.0).close()  # the receiver too
                return running
        time.sleep(0.2)
    running.stop()
    raise JaegerError(f"jaeger not ready within {READY_TIMEOUT}s; log:\n{running.log_tail()}")
