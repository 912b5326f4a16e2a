"""Waiting on services that answer in their own time (a DAG run, a scheduler, a model swap)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(probe: Callable[[], T | None], *, timeout_s: float, interval_s: float, timeout_error: Callable[[], Exception]) -> T:
    """Call ``probe`` every ``interval_s`` until it returns something other than None, and return that.

    ``timeout_error`` builds the exception raised after ``timeout_s`` (late, so it can say what was
    last seen); an exception from ``probe`` itself (a service that died) ends the wait at once.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = probe()
        if outcome is not None:
            return outcome
        if time.monotonic() > deadline:
            raise timeout_error()
        time.sleep(interval_s)
