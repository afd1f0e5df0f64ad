"""A real memory limit for a test's child process: a cgroup v1 memory group (the CI runs as root).

The group is made inside the test process's own memory cgroup, so whatever limits the test runner already has
still apply above it. Nothing here skips: without cgroup v1 memory, the test fails and says why.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MEMORY_ROOT = Path("/sys/fs/cgroup/memory")
MiB = 1024 * 1024


def _own_memory_group() -> Path:
    """Where this process sits in the memory hierarchy (`4:memory:/some/path` in /proc/self/cgroup)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            own = MEMORY_ROOT / path.lstrip("/")
            if own.is_dir():
                return own
    return MEMORY_ROOT


class MemoryGroup:
    """One memory cgroup with a hard limit; read its peak usage, limit hits and OOM kills."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self, name: str) -> str:
        return (self.path / name).read_text()

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    @property
    def peak_bytes(self) -> int:
        return int(self._read("memory.max_usage_in_bytes"))

    @property
    def limit_hits(self) -> int:
        return int(self._read("memory.failcnt"))

    @property
    def oom_kills(self) -> int:
        """Processes the kernel killed in this group (`oom_kill` in memory.oom_control, kernels since 4.13)."""
        fields = dict(line.split() for line in self._read("memory.oom_control").splitlines())
        return int(fields.get("oom_kill", 0))


@contextlib.contextmanager
def memory_group(limit_bytes: int, prefix: str = "ghostpay-test") -> Iterator[MemoryGroup]:
    """A fresh memory cgroup limited to `limit_bytes`, removed on exit (its processes must have ended)."""
    if not (MEMORY_ROOT / "memory.limit_in_bytes").exists():
        pytest.fail(
            f"cgroup v1 memory is not mounted at {MEMORY_ROOT}: this test needs it to run a service under a real "
            "memory limit (mount it, e.g. `mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory`, as root)."
        )
    path = _own_memory_group() / f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        path.mkdir()
        (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
    except OSError as exc:
        pytest.fail(f"cannot make a memory cgroup at {path} ({exc}); the test must run as root with cgroup v1.")
    group = MemoryGroup(path)
    try:
        yield group
    finally:
        deadline = time.monotonic() + 10
        while True:
            try:
                path.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def assert_limit_enforced(limit_bytes: int) -> None:
    """A child that allocates 400 MB (and touches it) is killed in a group limited to `limit_bytes`."""
    allocate = "import os; os.read(0, 1); b = b'x' * (400 * 1000 * 1000); print('survived')"
    with memory_group(limit_bytes, "ghostpay-probe") as group:
        child = subprocess.Popen(
            [sys.executable, "-c", allocate], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            group.add(child.pid)
            out, _ = child.communicate(b"x", timeout=60)  # it allocates only once it is in the group
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == -9 and b"survived" not in out, (
            f"a 400 MB allocation was not killed under a {limit_bytes // MiB} MiB memory cgroup "
            f"(exit {child.returncode}): the limit is not enforced, so the test below would prove nothing"
        )
        assert group.oom_kills >= 1 or group.limit_hits >= 1
