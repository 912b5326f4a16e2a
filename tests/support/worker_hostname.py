"""``[core] hostname_callable`` for the Celery test: each worker on this one machine names itself
(``RAKUTEN_TEST_WORKER_NAME``), so a task instance's ``hostname`` says which worker ran it."""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    return os.environ.get("RAKUTEN_TEST_WORKER_NAME") or socket.getfqdn()
