"""How the disk under PostgreSQL's data directory behaved during a phase (Linux only).

Every charge commits, and a commit waits for its WAL to reach the disk (`fdatasync`). On a shared virtual disk
the device sometimes completes nothing for a few hundred milliseconds while requests are pending on it; every
commit in flight then waits together, for the service, the floor and pgbench alike, and one such stall makes a
phase's p99. `DiskWatch` samples the device's counters (/sys/dev/block/M:m/stat) every few milliseconds during
a phase and reports the longest such stall, the time stalled in all, and the CPUs' I/O wait from /proc/stat, so
a tail can be told from the code's own cost.

A stall is seen between samples, so each is short by up to a sampling period at either end (`PERIOD_S`, longer
when the sampler waits for the interpreter's lock). A directory on a partition is watched through its whole disk:
the kernel counts cache flushes, which `fdatasync` sends, on the whole disk only.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from bench.cpu import machine_iowait_cpu

PERIOD_S = 0.01  # the stalls that make a tail last 50 ms and more


@dataclass(frozen=True)
class DiskSample:
    at: float  # time.monotonic() seconds
    completed: int  # reads, writes, discards and flushes the disk has completed since boot
    in_flight: int  # requests issued to the device and not yet completed


@dataclass(frozen=True)
class Stalls:
    longest_ms: float  # the longest span with requests pending and none completed
    stalled_ms: float  # all such spans together


def stalls(samples: Iterable[DiskSample]) -> Stalls:
    """Spans over which requests stayed pending on the device and none completed, each from the last sample
    before it to the last sample within it."""
    spans: list[float] = []
    began: float | None = None
    ended = 0.0
    for before, after in pairwise(samples):
        if before.in_flight and after.in_flight and after.completed == before.completed:
            began = before.at if began is None else began
            ended = after.at
        elif began is not None:
            spans.append(ended - began)
            began = None
    if began is not None:
        spans.append(ended - began)
    return Stalls(longest_ms=round(1000 * max(spans, default=0.0), 1), stalled_ms=round(1000 * sum(spans, 0.0), 1))


def device_of(path: Path, sys_dev_block: Path = Path("/sys/dev/block")) -> Path | None:
    """The sysfs directory of the disk holding `path` (the whole disk for a partition); None when `path` is on no
    block device (tmpfs, overlay, a network file system)."""
    dev = os.stat(path).st_dev
    node = sys_dev_block / f"{os.major(dev)}:{os.minor(dev)}"
    if not node.exists():
        return None
    node = node.resolve()
    return node.parent if (node / "partition").exists() else node


def parse_sample(stat: str, at: float) -> DiskSample:
    """A disk's `stat` file (the kernel's Documentation/block/stat.rst): reads completed are its field 1, writes 5,
    requests in flight 9, discards 12 (kernels 4.18+), flushes 16 (5.5+)."""
    fields = [int(field) for field in stat.split()]
    discards = fields[11] if len(fields) > 11 else 0
    flushes = fields[15] if len(fields) > 15 else 0
    return DiskSample(at=at, completed=fields[0] + fields[4] + discards + flushes, in_flight=fields[8])


class DiskWatch:
    """A thread sampling one disk's counters every `PERIOD_S` while the `with` block runs; `report()` after it.

    The thread's CPU counts as the load generator's (the bench's own process): one `pread` per sample, about
    0.01-0.02 cores here, most of it the thread's wake-ups."""

    def __init__(self, disk: Path) -> None:
        self.stat = disk / "stat"
        self.samples: list[DiskSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="disk-watch", daemon=True)
        self._failed: BaseException | None = None
        self._started = self._iowait_before = 0.0
        self._seconds: float | None = None  # set when the block ends
        self._iowait = 0.0

    def __enter__(self) -> DiskWatch:
        self._started, self._iowait_before = time.monotonic(), machine_iowait_cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._iowait, self._seconds = machine_iowait_cpu() - self._iowait_before, time.monotonic() - self._started
        if self._failed is not None:
            raise RuntimeError(f"could not watch {self.stat}") from self._failed

    def _sample(self) -> None:
        """Every `PERIOD_S` until stopped, and once more then: a phase shorter than the period has two samples."""
        try:
            fd = os.open(self.stat, os.O_RDONLY)
            try:
                stopped = False
                while not stopped:
                    stopped = self._stop.wait(PERIOD_S) if self.samples else False
                    self.samples.append(parse_sample(os.pread(fd, 4096, 0).decode(), time.monotonic()))
            finally:
                os.close(fd)
        except Exception as exc:  # handed to the caller by __exit__: a thread has no one else to tell
            self._failed = exc

    def report(self) -> dict[str, float]:
        """The phase's longest stall and time stalled (ms), and the CPUs' I/O wait (cores, on average)."""
        if self._seconds is None:
            raise RuntimeError("report() is for after the watched block")
        found = stalls(self.samples)
        iowait_cores = round(self._iowait / self._seconds, 3)
        return {"longest_stall_ms": found.longest_ms, "stalled_ms": found.stalled_ms, "iowait_cores": iowait_cores}
