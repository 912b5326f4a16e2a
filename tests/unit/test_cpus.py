"""Thread pools are sized by the CPUs a container may use, not by the machine's cores; int8 weights
get 7 bits on the CPUs whose int8 products saturate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rakuten_ml.cpus import available_cpus, cpu_flags, int8_needs_reduced_range


def test_a_process_pinned_to_one_cpu_sizes_its_pools_to_one() -> None:
    """What a container's CPU limit does to a process, shown with the affinity mask (taskset): the count
    follows what the process may use, not the machine (joblib/loky reads the cgroup quota the same way)."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        pytest.skip("needs taskset and at least 2 cores")
    pinned = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", "from rakuten_ml.cpus import available_cpus; print(available_cpus())"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    assert pinned.stdout.strip() == "1"
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
