"""The charge benchmark's pieces that need no servers: the wrk script's card cycling (run in a Lua 5.1, the
language of wrk's LuaJIT, by lupa), the reading of its report, the profile's ranking, the report's headline
keys, and the PNG."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import lupa.lua51
from bench.environment import card_id
from bench.stats import Summary

from bench import charge_bench, plot, profile, wrk_load


def _wrk_thread(lua: Any, index: int, args: list[str]) -> Any:
    """One wrk thread's Lua state, as wrk sets it up: the script loaded, `index` set, `init(args)` called."""
    lua.execute("wrk = {format = function(method, path, headers, body) return body end}")
    lua.execute(wrk_load.SCRIPT.read_text())
    lua.globals().index = index
    lua.globals().init(lua.table_from({i + 1: a for i, a in enumerate(args)}))
    return lua.globals()


def test_the_wrk_script_charges_each_card_once_across_threads() -> None:
    threads, cards, offset = 2, 10, 3
    args = ["tok", "f", str(offset), str(cards), "1999", "USD", str(threads)]
    seen = []
    for index in range(threads):
        script = _wrk_thread(lupa.lua51.LuaRuntime(), index, args)
        seen += [json.loads(script.request())["card_id"] for _ in range(3)]
        assert script.sent == 3
    assert sorted(seen) == sorted(card_id("f", n) for n in range(offset + 1, offset + 7))
    # Past the batch it wraps around (those charges are declined): thread 1's 4th card is 3 + 3 * 2 + 1 + 1 = 11.
    assert json.loads(script.request()) == {"card_id": card_id("f", 1), "amount": 1999, "currency": "USD"}


def test_the_wrk_script_counts_statuses_and_answers_per_second() -> None:
    script = _wrk_thread(lupa.lua51.LuaRuntime(), 0, ["tok", "s", "0", "5", "1999", "USD", "1"])
    for status in (201, 201, 402):
        script.response(status, None, "")
    assert dict(script.statuses) == {201: 2, 402: 1}
    assert sum(dict(script.per_second).values()) == 3


def _wrk_report() -> dict[str, Any]:
    return {
        "duration_us": 2_000_000,
        "answered": 30,
        "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 1},
        "latency_us": {"p50": 1500, "p95": 4000, "p99": 9000, "mean": 1800.5, "max": 12000},
        "threads": [
            {"sent": 17, "statuses": {"201": 15}, "per_second": {"1000": 10, "1001": 5}},
            {"sent": 16, "statuses": {"201": 14, "402": 1}, "per_second": {"1000": 9, "1001": 6}},
        ],
    }


def test_a_wrk_report_becomes_a_summary() -> None:
    summary = wrk_load.summary_of(_wrk_report(), "floor", 4)
    assert (summary.ok, summary.operations, summary.throughput) == (29, 30, 14.5)
    assert (summary.p50_ms, summary.p99_ms, summary.max_ms) == (1.5, 9.0, 12.0)
    assert summary.outcomes == {"201": 29, "402": 1, "timeout": 1}
    assert summary.timeline == [{"second": 0, "ops": 19}, {"second": 1, "ops": 11}]
    assert summary.unanswered == 3  # 33 sent, 30 answered: the service may have approved those


def test_wrk_gets_the_card_range_and_thread_count() -> None:
    arguments = wrk_load.arguments("http://127.0.0.1:1", "tok", "s", 40, 100, 1, 3)
    assert arguments[-7:] == ["tok", "s", "40", "100", "1999", "USD", "1"]
    assert "--connections=1" in arguments and "--threads=1" in arguments and "--duration=3s" in arguments


def test_the_profile_ranks_frames_by_own_and_inclusive_samples() -> None:
    collapsed = "main;loop;handler;sql 6\nmain;loop;handler;json 2\nmain;loop;idle_check 2\nbroken line\n"
    ranked = profile.costliest(collapsed, top=2)
    assert ranked["samples"] == 10
    assert [(r["frame"], r["share"]) for r in ranked["own"]] == [("sql", 0.6), ("json", 0.2)]
    assert [r["frame"] for r in ranked["inclusive"]] == ["handler", "sql"]  # main and loop are in every sample
    assert "60.0 %  sql" in "\n".join(profile.table(ranked))


def _summary(label: str, throughput: float, service_cpu: float, floor_cpu: float, bare_cpu: float = 0.0) -> Summary:
    used = {"steal": 0.0, "service": service_cpu, "floor": floor_cpu, "bare": bare_cpu, "loadgen": 0.05, "other": 0.0}
    cpu = {name: {"cores": 0.0, "cpu_ms_per_op": value} for name, value in used.items()}
    waited = {"service": service_cpu / 10, "postgres": 0.07}
    cpu_wait = {name: {"cores": 0.0, "cpu_ms_per_op": value} for name, value in waited.items()}
    timeline = [{"second": 0, "ops": throughput}, {"second": 1, "ops": throughput}]
    disk = {"longest_stall_ms": throughput / 10, "stalled_ms": throughput / 5, "iowait_cores": 0.02}
    return Summary(
        label,
        16,
        2.0,
        20,
        20,
        throughput,
        1.0,
        2.0,
        3.0,
        1.2,
        4.0,
        cpu=cpu,
        cpu_wait=cpu_wait,
        timeline=timeline,
        disk=disk,
    )


def _report() -> dict[str, Any]:
    args = argparse.Namespace(concurrency=16, seconds=2, out=Path("x.json"))
    comparison = {
        "concurrency": 16,
        "service": _summary("service", 800, 0.4, 0.0),
        "floor": _summary("floor", 1000, 0.0, 0.3),
        "bare": _summary("bare", 4000, 0.0, 0.0, 0.1),
        "pgbench": _summary("pgbench", 4000, 0.0, 0.0),
    }
    half = {
        "service": _summary("service", 400, 0.5, 0.0),
        "floor": _summary("floor", 400, 0.0, 0.3),
        "bare": _summary("bare", 400, 0.0, 0.0, 0.1),
        "pgbench": _summary("pgbench", 2000, 0.0, 0.0),
    }
    half = {side: Summary(**{**s.__dict__, "target_rate": s.throughput}) for side, s in half.items()}
    check = {"service": {"consistent": True}, "floor": {"consistent": True}, "pgbench": {}}
    return charge_bench._report(args, [comparison], half, check)


def test_the_report_has_the_floor_and_cpu_headlines_at_its_top_level() -> None:
    report = _report()
    assert report["floor_charges_per_second"] == 1000
    assert report["ratio_service_to_floor"] == 0.8
    assert report["service_cpu_ms_per_charge"] == 0.4
    assert report["floor_cpu_ms_per_charge"] == 0.3
    assert report["bare_cpu_ms_per_charge"] == 0.1 and report["ratio_service_to_bare"] == 0.2
    assert report["ratio_service_to_pgbench"] == 0.2
    assert report["service_p99_ms_at_half_max_throughput"] == 3.0
    assert report["floor_p99_ms_at_the_same_rate"] == report["bare_p99_ms_at_the_same_rate"] == 3.0
    lines = "\n".join(charge_bench.table(report))
    assert "floor   POST /charges   c=16" in lines and "ratio service/floor" in lines
    assert "bare    POST /charges   c=16" in lines and "bare route 0.100 ms" in lines


def test_the_report_says_how_long_the_servers_waited_for_a_cpu_at_half_load() -> None:
    report = _report()
    assert report["cpu_wait_ms_per_charge_at_half_max"] == {"service": 0.05, "postgres": 0.07}
    lines = charge_bench.table(report)
    waits = lines[lines.index(next(line for line in lines if line.startswith("waited for a CPU"))) :]
    assert waits[0].split()[-2:] == ["service", "postgres"]
    assert [line.split()[0] for line in waits[1:7]] == ["service", "floor", "bare", "service", "floor", "bare"]
    assert waits[4].split()[-2:] == ["0.050", "0.070"]  # the service at half max


def test_the_picture_is_written_beside_the_json(tmp_path: Path) -> None:
    picture = plot.write_png(_report(), tmp_path / "bench.png")
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert [label for label, _ in plot.phases(_report())][:3] == ["service c=16", "floor c=16", "bare c=16"]


def test_the_report_says_how_the_disk_under_postgresql_stalled_in_each_phase() -> None:
    report = _report()
    assert report["longest_disk_stall_ms_at_half_max"] == {
        "service": 40.0,
        "floor": 40.0,
        "bare": 40.0,
        "pgbench": 200.0,
    }
    lines = charge_bench.table(report)
    disk = lines[lines.index(next(line for line in lines if line.startswith("disk under PostgreSQL"))) :]
    assert disk[0].split()[-5:] == ["stall", "ms", "stalled", "ms", "iowait"]
    assert len(disk) == 1 + 8  # four phases at c=16, four at half load
    service_row = disk[1].split()
    assert service_row[:2] == ["service", "c=16"]
    assert service_row[-3:] == ["80.0", "160.0", "0.020"]


def test_the_report_warns_when_other_processes_or_the_hypervisor_took_cpu_during_a_phase() -> None:
    report = _report()
    report["half_load"]["floor"]["cpu"]["steal"]["cores"] = 0.35
    report["levels"][0]["bare"]["cpu"]["other"]["cores"] = 0.25
    warnings = [line for line in charge_bench.table(report) if line.startswith("WARNING")]
    assert warnings == [
        "WARNING: other processes used 0.25 cores during 'bare c=16'",
        "WARNING: the hypervisor took 0.35 cores away during 'floor at half max'",
    ]


def test_the_report_names_the_interpreter_and_how_it_links_libpython(tmp_path: Path) -> None:
    shared = tmp_path / "shared-maps"
    shared.write_text("7f00-7f01 r-xp 0 08:01 42 /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0\n")
    linked_in = tmp_path / "linked-in-maps"
    linked_in.write_text("5600-5601 r-xp 0 08:01 43 /usr/bin/python3.11\n")
    assert charge_bench.interpreter(shared)["shared_libpython"] is True
    assert charge_bench.interpreter(linked_in)["shared_libpython"] is False
    assert charge_bench.interpreter(linked_in)["interpreter"] == str(Path(sys.executable).resolve())
    report = _report()
    for shared_libpython, told in ((True, "a shared libpython"), (False, "libpython linked in")):
        report["machine"] |= {"interpreter": "/opt/python/bin/python3.11", "shared_libpython": shared_libpython}
        first = charge_bench.table(report)[0]
        assert first.endswith(f"(/opt/python/bin/python3.11, {told})"), first
