"""How the disk under PostgreSQL's data directory behaved during a phase (Linux only).

Every charge commits, and a commit waits for its WAL to reach the disk (`fdatasync`). On a shared virtual disk
the device sometimes completes nothing for a few hundred milliseconds while requests are pending on it; every
commit in flight then waits together, for the service, the floor and pgbench alike, and one such stall makes a
phase's p99. `DiskWatch` samples /proc/diskstats for the device every few milliseconds during a phase and
reports the longest such stall, the time stalled in all, and the CPUs' I/O wait from /proc/stat, so a tail can
be told from the code's own cost.

A stall is measured between samples, so it is known to within the sampling period (`PERIOD_S`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

PERIOD_S = 0.005
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class DiskSample:
    at: float  # time.monotonic() seconds
    completed: int  # reads, writes and flushes the device has completed since boot
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
    return Stalls(longest_ms=round(1000 * max(spans, default=0.0), 1), stalled_ms=round(1000 * sum(spans), 1))


def device_of(path: Path, diskstats: str | None = None) -> str | None:
    """The name /proc/diskstats gives the block device holding `path`; None if it is on none (tmpfs, overlay)."""
    dev = os.stat(path).st_dev
    wanted = (os.major(dev), os.minor(dev))
    text = diskstats if diskstats is not None else Path("/proc/diskstats").read_text()
    for line in text.splitlines():
        fields = line.split()
        if (int(fields[0]), int(fields[1])) == wanted:
            return fields[2]
    return None


def parse_sample(line: str, at: float) -> DiskSample:
    """One /proc/diskstats line: reads completed is field 4, writes 8, in flight 12, flushes 19 (kernels 5.5+)."""
    fields = line.split()
    flushes = int(fields[18]) if len(fields) > 18 else 0
    return DiskSample(at=at, completed=int(fields[3]) + int(fields[7]) + flushes, in_flight=int(fields[11]))


def _iowait_s() -> float:
    return int(Path("/proc/stat").read_text().split(maxsplit=6)[5]) / _TICKS  # "cpu user nice system idle iowait"


class DiskWatch:
    """A thread sampling one device's line of /proc/diskstats every `PERIOD_S` while the `with` block runs."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.samples: list[DiskSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="disk-watch", daemon=True)
        self._iowait_before = self._seconds = 0.0
        self._iowait = 0.0

    def __enter__(self) -> DiskWatch:
        self._iowait_before, self._seconds = _iowait_s(), time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._iowait, self._seconds = _iowait_s() - self._iowait_before, time.monotonic() - self._seconds

    def _sample(self) -> None:
        """Every `PERIOD_S` until stopped, and once more then: a phase shorter than the period has two samples."""
        marker = f" {self.device} "
        with open("/proc/diskstats") as diskstats:
            stopped = False
            while not stopped:
                stopped = self._stop.wait(PERIOD_S) if self.samples else False
                diskstats.seek(0)
                line = next(line for line in diskstats.read().splitlines() if marker in line)
                self.samples.append(parse_sample(line, time.monotonic()))

    def report(self) -> dict[str, float]:
        """The phase's longest stall and time stalled (ms), and the CPUs' I/O wait (cores, on average)."""
        found = stalls(self.samples)
        iowait_cores = round(self._iowait / self._seconds, 3) if self._seconds else 0.0
        return {"longest_stall_ms": found.longest_ms, "stalled_ms": found.stalled_ms, "iowait_cores": iowait_cores}
