"""Time and peak memory of a function, each run in a fresh process so peaks do not mix."""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from typing import Any


def _child(func: Callable[..., Any], args: tuple, queue: mp.Queue) -> None:
    started = time.perf_counter()
    result = func(*args)
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((elapsed, peak_mb, result))


def measure_in_subprocess(func: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    """(seconds, peak RSS in MiB, return value) of ``func(*args)`` in a forked process."""
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(func, args, queue))
    process.start()
    outcome = queue.get()
    process.join()
    return outcome
