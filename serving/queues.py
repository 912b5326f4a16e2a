"""What the serving app's background writers (prediction log, shadow scoring) share about their queues."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any


def wait_drained(work: queue.Queue[Any], thread: threading.Thread | None, timeout: float) -> bool:
    """Wait until every queued item is done (``task_done``); False on timeout or when the thread died."""
    deadline = time.monotonic() + timeout
    while work.unfinished_tasks:
        if time.monotonic() > deadline or thread is None or not thread.is_alive():
            return False
        time.sleep(0.01)
    return True
