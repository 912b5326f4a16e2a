"""Helpers for the real local services of the tests: free ports, PostgreSQL administration and
waiting for a server process to answer. The fixtures that start the services live in ``tests/conftest.py``."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import psycopg2
import pytest
import requests

PG_ADMIN_DSN = os.environ.get("RAKUTEN_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin_sql(sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE...) on the admin database, outside a transaction."""
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def dsn_part(key: str, default: str) -> str:
    """One ``key=value`` of the admin DSN (host, port, user), or ``default``."""
    for part in PG_ADMIN_DSN.split():
        name, _, value = part.partition("=")
        if name == key:
            return value
    return default


def wait_until_ready(process: subprocess.Popen, url: str, log_path: Path, *, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log when it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}: {log_path.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"server not ready at {url} in {timeout_s:.0f} s: {log_path.read_text()[-3000:]}")
        time.sleep(0.2)
