"""`bench.disk`: finding the spans a disk completed nothing with requests pending, reading a disk's counters and
finding its disk from a directory, and watching the real disk under a directory while it is written and synced."""

from __future__ import annotations

import os
import tempfile
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


def test_a_disks_stat_file_gives_reads_writes_discards_and_flushes_completed_and_requests_in_flight() -> None:
    stat = " 2743874 172208 90024962 56167051 16643172 4819639 1499652360 12861747 3 3396864 70555245 3951100 152"
    stat += " 1097800096 666027 5906647 860419\n"
    assert parse_sample(stat, 1.5) == DiskSample(at=1.5, completed=2743874 + 16643172 + 3951100 + 5906647, in_flight=3)
    older_kernel = " 10 0 80 5 20 0 160 9 1 12 14\n"  # no discard or flush fields
    assert parse_sample(older_kernel, 0.0) == DiskSample(at=0.0, completed=30, in_flight=1)


def _sys_dev_block(root: Path, path: Path, *, partition: bool) -> Path:
    """A /sys/dev/block with `path`'s device number linked to a disk's directory, or to a partition within one."""
    dev = os.stat(path).st_dev
    disk = root / "devices" / "virtio1" / "block" / "sdz"
    node = disk / "sdz1" if partition else disk
    node.mkdir(parents=True)
    if partition:
        (node / "partition").write_text("1\n")
    (root / "dev" / "block").mkdir(parents=True)
    (root / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}").symlink_to(node)
    return root / "dev" / "block"


def test_the_disk_is_found_by_the_directorys_device_number_and_a_partition_is_watched_through_its_disk(
    tmp_path: Path,
) -> None:
    whole = _sys_dev_block(tmp_path / "a", tmp_path, partition=False)
    assert device_of(tmp_path, whole) == (tmp_path / "a" / "devices" / "virtio1" / "block" / "sdz").resolve()
    part = _sys_dev_block(tmp_path / "b", tmp_path, partition=True)
    assert device_of(tmp_path, part) == (tmp_path / "b" / "devices" / "virtio1" / "block" / "sdz").resolve()
    assert device_of(tmp_path, tmp_path / "nothing") is None  # no such device: a tmpfs, an overlay


def test_a_sampler_that_cannot_read_the_disk_fails_the_phase_rather_than_report_no_stalls(tmp_path: Path) -> None:
    watch = DiskWatch(tmp_path / "no-such-disk")
    with pytest.raises(RuntimeError, match="could not watch"), watch:
        pass
    with pytest.raises(RuntimeError, match="after the watched block"):
        DiskWatch(tmp_path).report()


def test_watching_the_real_disk_while_a_file_is_synced_sees_it_complete_requests(tmp_path: Path) -> None:
    # The temporary directory may be a tmpfs (Fedora, Arch); the home directory is then on a disk.
    with tempfile.TemporaryDirectory(dir=Path.home()) as home:
        candidates = [(directory, device_of(directory)) for directory in (tmp_path, Path(home))]
        directory, disk = next(((d, disk) for d, disk in candidates if disk is not None), (tmp_path, None))
        assert disk is not None, f"neither {tmp_path} nor {home} is on a block device: no disk to watch"
        with DiskWatch(disk) as watch, (directory / "synced").open("wb") as out:
            for _ in range(20):
                out.write(os.urandom(8192))
                out.flush()
                os.fdatasync(out.fileno())
    assert len(watch.samples) >= 2
    assert watch.samples[-1].completed - watch.samples[0].completed >= 20  # each sync reached the disk
    assert set(watch.report()) == {"longest_stall_ms", "stalled_ms", "iowait_cores"}
