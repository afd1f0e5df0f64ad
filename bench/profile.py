"""A profile of a server process under load: py-spy (from PyPI) samples its Python stacks from outside, so the
server runs unchanged; the costliest frames are read from py-spy's collapsed-stack output.

`record` runs py-spy beside a load phase; `costliest` ranks frames by their own samples (time spent in that
very frame) and by their inclusive samples (time spent in it or anything it called), as shares of all samples.
Idle time (the event loop waiting in epoll) is not sampled, so the shares are of the process's busy time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ghostpay.dev import die_with_parent

T = TypeVar("T")
_RATE = 250  # samples per second: py-spy's CPU is taken from the same two cores, so not its default 100 less


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed (`make install` installs the dev extras)")
    return found


def record(pid: int, seconds: float, output: Path, load: Callable[[], T]) -> T:
    """Run `load()` while py-spy records `pid` for `seconds` (the load should last a little longer)."""
    command = [py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    command += ["--rate", str(_RATE), "--format", "raw", "--output", str(output), "--nonblocking"]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=die_with_parent)
    try:
        result = load()
    finally:
        _, err = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-2000:]}")
    return result


def costliest(collapsed: str, top: int = 10) -> dict[str, Any]:
    """The `top` frames by own and by inclusive samples, from collapsed stacks (`frame;frame;… count` lines)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)

    def ranked(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": f, "samples": n, "share": round(n / total, 4)} for f, n in counter.most_common(top)]

    # Inclusive: only frames below the server's loop (every request runs under them), else the top ten is the
    # call chain from main() down to the event loop, all at the share of the busiest thread.
    root = max(inclusive.values(), default=0)
    below_loop = Counter({f: n for f, n in inclusive.items() if n < 0.9 * root})
    return {"samples": total, "own": ranked(own), "inclusive": ranked(below_loop)}


def table(profile: dict[str, Any]) -> list[str]:
    lines = [f"profile of the service under load ({profile['samples']} samples): ten costliest frames, own time"]
    lines += [f"{100 * row['share']:6.1f} %  {row['frame']}" for row in profile["own"]]
    lines.append("... and inclusive (the frame and what it called)")
    lines += [f"{100 * row['share']:6.1f} %  {row['frame']}" for row in profile["inclusive"]]
    return lines
