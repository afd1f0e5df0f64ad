"""`bench.disk`: finding the spans a disk completed nothing with requests pending, reading /proc/diskstats, and
watching the real disk under a directory while it is written and synced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bench.disk import DiskSample, DiskWatch, Stalls, device_of, parse_sample, stalls


def _samples(*rows: tuple[float, int, int]) -> list[DiskSample]:
    return [DiskSample(at=at, completed=completed, in_flight=in_flight) for at, completed, in_flight in rows]


def test_a_disk_that_keeps_completing_or_is_idle_never_stalls() -> None:
    assert stalls(_samples((0.0, 1, 2), (0.01, 3, 2), (0.02, 5, 1))) == Stalls(0.0, 0.0)
    assert stalls(_samples((0.0, 7, 0), (0.5, 7, 0), (1.0, 7, 0))) == Stalls(0.0, 0.0)  # nothing asked of it
    assert stalls([]) == Stalls(0.0, 0.0)


def test_a_stall_runs_from_the_last_sample_before_it_to_the_last_within_it() -> None:
    # Pending from 0.10 to past 0.40 with nothing completed; at 0.45 a request completes.
    found = stalls(_samples((0.0, 1, 1), (0.10, 2, 3), (0.20, 2, 3), (0.30, 2, 4), (0.40, 2, 4), (0.45, 5, 1)))
    assert found == Stalls(longest_ms=300.0, stalled_ms=300.0)


def test_two_stalls_give_the_longest_and_their_sum_and_one_open_at_the_end_counts() -> None:
    found = stalls(
        _samples(
            (0.0, 1, 1),
            (0.05, 1, 1),  # stalled 50 ms
            (0.10, 2, 1),
            (0.20, 3, 0),
            (0.30, 3, 2),
            (0.50, 3, 2),
            (0.70, 3, 2),  # stalled 400 ms, still when the phase ended
        )
    )
    assert found == Stalls(longest_ms=400.0, stalled_ms=450.0)


def test_a_diskstats_line_gives_reads_writes_and_flushes_completed_and_requests_in_flight() -> None:
    line = (
        " 254 0 vda 2708111 171200 89545554 55149712 15702902 4806720 1454792920 12597020 3 3282248 69244678"
        " 3925480 152 1077729360 661257 5543569 836687"
    )
    assert parse_sample(line, 1.5) == DiskSample(at=1.5, completed=2708111 + 15702902 + 5543569, in_flight=3)
    older_kernel = " 8 0 sda 10 0 80 5 20 0 160 9 1 12 14"  # no discard or flush fields
    assert parse_sample(older_kernel, 0.0).completed == 30


def test_the_device_is_found_by_the_directorys_major_and_minor_numbers(tmp_path: Path) -> None:
    dev = os.stat(tmp_path).st_dev
    listing = f" 7 0 loop0 0 0 0 0 0 0 0 0 0 0 0\n {os.major(dev)} {os.minor(dev)} mydisk 1 0 8 1 1 0 8 1 0 2 2\n"
    assert device_of(tmp_path, listing) == "mydisk"
    assert device_of(tmp_path, " 7 0 loop0 0 0 0 0 0 0 0 0 0 0 0\n") is None


def test_watching_the_real_disk_while_a_file_is_synced_sees_it_complete_requests(tmp_path: Path) -> None:
    device = device_of(tmp_path)
    if device is None:
        pytest.skip(f"{tmp_path} is on no block device (tmpfs or overlay), so there is no disk to watch")
    with DiskWatch(device) as watch, (tmp_path / "synced").open("wb") as out:
        for _ in range(20):
            out.write(os.urandom(8192))
            out.flush()
            os.fdatasync(out.fileno())
    assert len(watch.samples) >= 2
    assert watch.samples[-1].completed - watch.samples[0].completed >= 1  # the syncs reached the device
    report = watch.report()
    assert set(report) == {"longest_stall_ms", "stalled_ms", "iowait_cores"}
    assert 0 <= report["longest_stall_ms"] <= report["stalled_ms"] + 1e-9
    assert report["iowait_cores"] >= 0
