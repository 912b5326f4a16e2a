"""How many CPUs this process may really use, and what kind they are.

``os.cpu_count()`` is the machine's cores. In a container with a CPU limit (Kubernetes
``resources.limits.cpu``, ``docker run --cpus``) the kernel lets the process use only a share of
them; thread pools sized by the machine's count then oversubscribe that share and the scheduler
throttles the whole process (a 2-CPU pod on a 32-core node would run 32 torch threads). joblib's
(loky's) count is the smallest of the CPU affinity mask and the cgroup quota (v1 and v2), rounded up.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
from pathlib import Path

import joblib

log = logging.getLogger(__name__)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


@functools.cache
def available_cpus() -> int:
    """The CPUs this process can keep busy (affinity, cgroup quota), read once: limits do not change under it."""
    cpus = max(1, joblib.cpu_count(only_physical_cores=False))
    if cpus < (os.cpu_count() or 1):
        log.info("%d of the machine's %d CPUs are usable (affinity or cgroup CPU quota): thread pools are sized to %d",
                 cpus, os.cpu_count(), cpus)
    return cpus


CPUINFO = Path("/proc/cpuinfo")
_X86 = frozenset({"x86_64", "amd64", "i386", "i686"})


def cpuinfo_field(field: str, cpuinfo: Path = CPUINFO) -> str:
    """The first CPU's ``field`` in ``cpuinfo`` (Linux: ``model name``, ``flags``); empty where unknown."""
    for line in (_read(cpuinfo) or "").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == field:
            return value.strip()
    return ""


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags of the first CPU in ``cpuinfo``; empty where unknown."""
    return frozenset(cpuinfo_field("flags", cpuinfo).split())


def int8_needs_reduced_range(machine: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """Whether int8 weights must be quantized to 7 bits on this CPU.

    x86 CPUs without VNNI multiply uint8 activations by int8 weights with an instruction that
    saturates its 16-bit pair sums (``vpmaddubsw``): full 8-bit weights overflow and the network
    computes something else. ONNX Runtime's quantizer documents ``reduce_range=True`` for them.
    """
    machine = (machine or platform.machine()).lower()
    if machine not in _X86:
        return False
    flags = cpu_flags() if flags is None else flags
    return not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}
