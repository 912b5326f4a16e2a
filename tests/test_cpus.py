"""Thread pools are sized by the CPUs a container may use, not by the machine's cores; int8 weights
get 7 bits on the CPUs whose int8 products saturate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rakuten_ml.cpus import available_cpus, cgroup_cpu_limit, cpu_flags, int8_needs_reduced_range, usable_cpus


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


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) == frozenset({"fpu", "sse2", "avx2", "fma"})
    assert cpu_flags(tmp_path / "absent") == frozenset()  # not Linux


@pytest.mark.parametrize(
    "machine, flags, reduced",
    [
        ("x86_64", {"avx2", "fma"}, True),  # AVX2 only: vpmaddubsw saturates
        ("x86_64", {"avx2", "avx512f", "avx512bw"}, True),  # AVX-512 without VNNI saturates the same way
        ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, False),
        ("x86_64", {"avx2", "avx_vnni"}, False),  # AVX-VNNI (Alder Lake and later)
        ("AMD64", {"avx2"}, True),  # Windows spelling
        ("aarch64", set(), False),  # ARM has no such saturation
    ],
)
def test_int8_weights_get_7_bits_only_on_x86_without_vnni(machine: str, flags: set[str], reduced: bool) -> None:
    assert int8_needs_reduced_range(machine, frozenset(flags)) is reduced
