"""Thread pools are sized by the CPUs a container may use, not by the machine's cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rakuten_ml.cpus import available_cpus, cgroup_cpu_limit, usable_cpus


def _cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    return tmp_path


@pytest.mark.parametrize(
    "files, limit",
    [
        ({"cpu.max": "200000 100000"}, 2.0),  # cgroup v2, `--cpus 2` / limits.cpu: 2
        ({"cpu.max": "150000 100000"}, 1.5),
        ({"cpu.max": "max 100000"}, None),  # v2 without a quota
        ({"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000"}, 0.5),  # cgroup v1
        ({"cpu,cpuacct/cpu.cfs_quota_us": "300000", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, 3.0),
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),  # v1 without a quota
        ({"cpu.max": "garbage"}, None),
        ({}, None),  # no cgroup files at all (macOS, a bare VM)
    ],
)
def test_cgroup_quota_is_read_in_both_versions(tmp_path: Path, files: dict[str, str], limit: float | None) -> None:
    assert cgroup_cpu_limit(_cgroup(tmp_path, files)) == limit


def test_usable_cpus_is_the_quota_rounded_up_never_above_the_affinity(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(_cgroup(tmp_path / "a", {"cpu.max": "50000 100000"})) == 1  # half a CPU still gets a thread
    assert usable_cpus(_cgroup(tmp_path / "b", {"cpu.max": "150000 100000"})) == min(2, affinity)
    assert usable_cpus(_cgroup(tmp_path / "c", {"cpu.max": f"{1000 * 100000} 100000"})) == affinity
    assert usable_cpus(_cgroup(tmp_path / "d", {})) == affinity
    assert 1 <= available_cpus() <= (os.cpu_count() or 1)
