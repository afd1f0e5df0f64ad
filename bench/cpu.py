"""Where the CPU goes: seconds of CPU used by each component during a phase, read from /proc (Linux only).

Components are the charges service, PostgreSQL (the postmaster, its live backends, and the backends it has
already reaped), Redis, the load generator (this process and the children it reaped, i.e. pgbench), and the
whole machine (busy time of all CPUs from /proc/stat).

And how long each server waited for a CPU: seconds its threads were runnable but not running, from
/proc/PID/task/TID/schedstat. On two CPUs shared by the servers, PostgreSQL's backends and the load generator,
that wait is where a tail comes from that no step of a request accounts for. Only live processes keep the figure,
so a process or thread that exits during a phase (pgbench's PostgreSQL backends, an idle worker thread)
takes its wait with it.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (so index 0 is field 3, `state`)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def process_cpu(pid: int, reaped_children: bool = False) -> float:
    """CPU seconds (user + system) of one process; 0 if it is gone."""
    try:
        fields = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    used = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped_children:
        used += int(fields[13]) + int(fields[14])  # cutime, cstime
    return used / _TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
    return found


def process_tree_cpu(pid: int, attempts: int = 10) -> float:
    """A server that forks a process per connection (PostgreSQL): itself, its reaped and its live children.

    Read again if a child was reaped while its siblings were being read, lest its CPU be counted in neither
    (gone from the live children, not yet in the parent's reaped total)."""
    for _ in range(attempts):
        reaped = process_cpu(pid, reaped_children=True)
        live = sum(process_cpu(child) for child in children_of(pid))
        if process_cpu(pid, reaped_children=True) == reaped:
            break
    return reaped + live


def process_waited(pid: int) -> float:
    """Seconds the threads of `pid` have been runnable without a CPU to run on; 0 if it is gone."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    waited_ns = 0
    for thread in threads:
        try:
            waited_ns += int(Path(f"/proc/{pid}/task/{thread}/schedstat").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended while we read
    return waited_ns / 1e9


def process_tree_waited(pid: int) -> float:
    """`process_waited` of a server and its live children (PostgreSQL's backends)."""
    return process_waited(pid) + sum(process_waited(child) for child in children_of(pid))


def load_generator_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


def _all_cpus(stat: str | None = None) -> list[int]:
    """/proc/stat's first line: ticks of all CPUs in user, nice, system, idle, iowait, irq, softirq, steal, ..."""
    text = stat if stat is not None else Path("/proc/stat").read_text()
    return [int(v) for v in text.splitlines()[0].split()[1:]]


def machine_busy_cpu(stat: str | None = None) -> float:
    """CPU seconds all CPUs spent not idle (idle and iowait excluded), stolen time included."""
    values = _all_cpus(stat)
    idle, iowait = values[3], values[4]
    return (sum(values[:8]) - idle - iowait) / _TICKS


def machine_iowait_cpu(stat: str | None = None) -> float:
    """CPU seconds all CPUs sat idle while some I/O they had asked for was pending (`iowait`)."""
    return _all_cpus(stat)[4] / _TICKS


def machine_stolen_cpu(stat: str | None = None) -> float:
    """CPU seconds the hypervisor gave this machine's CPUs to someone else while they had work (`steal`).

    A guest kernel with paravirtual steal accounting (KVM's) leaves it out of processes' own CPU time, so it is
    counted once. Without that, processes' times include it too and `other` comes out negative by as much."""
    return _all_cpus(stat)[7] / _TICKS


@dataclass(frozen=True)
class CpuMeter:
    """Named probes, each returning cumulative CPU seconds; `breakdown` turns a snapshot and now into figures.

    Besides the probed components it reports the whole machine, `steal` (time the hypervisor ran something else
    on this machine's CPUs while they had work: a virtual machine's neighbours) and `other`: what processes outside
    the benchmark used meanwhile. A large `other` or `steal` means the machine was shared and the figures are not
    to be trusted.
    With `whole_machine` False it reports the probes alone (seconds waited for a CPU have no machine total here).
    """

    components: dict[str, Callable[[], float]]
    whole_machine: bool = True

    def snapshot(self) -> dict[str, float]:
        machine = {"machine": machine_busy_cpu(), "steal": machine_stolen_cpu()} if self.whole_machine else {}
        return machine | {name: probe() for name, probe in self.components.items()}

    def breakdown(self, before: dict[str, float], seconds: float, operations: int) -> dict[str, dict[str, float]]:
        """Per component: cores used on average, and CPU milliseconds per operation."""
        after = self.snapshot()
        used = {name: after[name] - start for name, start in before.items()}
        if self.whole_machine:
            used["other"] = used["machine"] - sum(v for k, v in used.items() if k != "machine")
        return {
            name: {
                "cores": round(value / seconds, 3),
                "cpu_ms_per_op": round(1000 * value / operations, 3) if operations else float("nan"),
            }
            for name, value in used.items()
        }
