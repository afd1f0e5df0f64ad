"""The benchmark's picture: latency percentiles by phase, and throughput over time, as a PNG beside the JSON.

Drawn with matplotlib's Agg backend (no display needed) from the report `bench.charge_bench` writes, so a saved
JSON can be drawn again: `python -m bench.plot bench/last-charge-bench.json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after the backend is chosen

_PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")


def phases(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, phase) for every measured phase, in the order the benchmark ran them."""
    found = []
    for level in report["levels"]:
        sides = [side for side in ("service", "floor", "bare", "pgbench") if side in level]  # older reports: no bare
        found += [(f"{side} c={level['concurrency']}", level[side]) for side in sides]
    for side, summary in (report.get("half_load") or {}).items():
        found.append((f"{side} at {summary['target_rate']:.0f}/s", summary))
    return found


def write_png(report: dict[str, Any], path: Path) -> Path:
    measured = phases(report)
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    width = 0.8 / len(_PERCENTILES)
    for i, name in enumerate(_PERCENTILES):
        xs = [n + (i - 1) * width for n in range(len(measured))]
        latency.bar(xs, [phase[name] for _, phase in measured], width, label=name.removesuffix("_ms"))
    latency.set_xticks(range(len(measured)), [label for label, _ in measured], rotation=30, ha="right")
    latency.set_yscale("log")
    latency.set_ylabel("latency (ms, log scale)")
    latency.set_title("Latency percentiles by phase")
    latency.legend()
    for label, phase in measured:
        points = phase.get("timeline") or []
        throughput.plot([p["second"] for p in points], [p["ops"] for p in points], marker=".", label=label)
    throughput.set_xlabel("second of the phase")
    throughput.set_ylabel("answers per second")
    throughput.set_title("Throughput over time")
    throughput.legend(fontsize="small")
    figure.suptitle(
        f"GhostPay charge path: service {report['service_charges_per_second']:.0f}/s, "
        f"floor {report['floor_charges_per_second']:.0f}/s, pgbench {report['pgbench_tps']:.0f} tps; "
        f"service CPU {report['service_cpu_ms_per_charge']:.2f} ms per charge"
    )
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


if __name__ == "__main__":
    source = Path(sys.argv[1])
    print(write_png(json.loads(source.read_text()), source.with_suffix(".png")))
