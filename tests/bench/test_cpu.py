"""`bench.cpu`'s reading of how long a process waited for a CPU, on real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from bench.cpu import (
    _TICKS,
    CpuMeter,
    _stat_fields,
    children_of,
    machine_busy_cpu,
    machine_iowait_cpu,
    machine_stolen_cpu,
    process_cpu,
    process_tree_waited,
    process_waited,
)

_SPIN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"


def test_more_busy_processes_than_cpus_wait_for_one() -> None:
    # One more process spinning than there are CPUs: the kernel cannot run them all at once, so they queue.
    spinners = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range((os.cpu_count() or 1) + 1)]
    waited = [0.0] * len(spinners)
    while any(s.poll() is None for s in spinners):
        waited = [max(w, process_waited(s.pid)) for w, s in zip(waited, spinners, strict=True)]
    assert sum(waited) > 0.05


def test_a_process_that_is_gone_waited_nothing_and_a_tree_counts_its_children() -> None:
    assert process_waited(2**22 + 1) == 0.0  # above Linux's largest pid
    # A sleeping parent and child: neither is runnable, so their figures hold still while they are read.
    child = "import time; time.sleep(3)"
    nap = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {child!r}])\ntime.sleep(3)"
    parent = subprocess.Popen([sys.executable, "-c", nap])
    try:
        while not (children := children_of(parent.pid)) or not _asleep(parent.pid, children[0]):
            time.sleep(0.01)
        assert process_tree_waited(parent.pid) == process_waited(parent.pid) + process_waited(children[0])
    finally:
        for pid in children_of(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def _asleep(*pids: int) -> bool:
    """Whether every one of `pids` is sleeping (state S), not starting up or running."""
    return all(_stat_fields(pid)[0] == "S" for pid in pids)


def test_steal_and_iowait_are_read_from_proc_stat_and_busy_time_counts_steal_but_not_idle_or_iowait() -> None:
    stat = "cpu  100 1 50 1000 30 5 6 40 0 0\ncpu0 50 0 25 500 15 2 3 20 0 0\n"
    assert machine_stolen_cpu(stat) * _TICKS == pytest.approx(40)
    assert machine_iowait_cpu(stat) * _TICKS == pytest.approx(30)
    assert machine_busy_cpu(stat) * _TICKS == pytest.approx(100 + 1 + 50 + 5 + 6 + 40)


def test_the_machine_is_split_into_the_probes_the_hypervisors_steal_and_what_others_used() -> None:
    meter = CpuMeter({"me": lambda: process_cpu(os.getpid())})
    before, started = meter.snapshot(), time.perf_counter()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    used = meter.breakdown(before, time.perf_counter() - started, operations=1000)
    assert set(used) == {"machine", "steal", "me", "other"}
    assert used["me"]["cpu_ms_per_op"] >= 0.29  # 0.3 s of CPU over 1,000 operations
    assert used["machine"]["cpu_ms_per_op"] >= used["me"]["cpu_ms_per_op"] - 0.02  # the clocks tick apart
