"""Writing benchmark figures into benchmarks/RESULTS.md, one replaceable section per benchmark."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
log = logging.getLogger(__name__)
HEADER = "# Benchmark results\n\nEach section is rewritten by the benchmark that owns it (`python -m benchmarks.<name>`).\n"


def machine_line() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}"


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section delimited by HTML comments named ``name``."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    block = f"<!-- section:{name} -->\n{markdown.rstrip()}\n<!-- /section:{name} -->"
    pattern = re.compile(rf"<!-- section:{re.escape(name)} -->.*?<!-- /section:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one benchmark (production's database, and the one whose bulk
    writes are measured), dropped afterwards; SQLite in the benchmark's home when PostgreSQL is not
    reachable. ``RAKUTEN_BENCH_PG_DSN`` names the admin connection (default: local trust auth)."""
    import psycopg2

    dsn = os.environ.get("RAKUTEN_BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    name = f"rakuten_bench_{uuid.uuid4().hex[:10]}"
    try:
        _admin(dsn, f'CREATE DATABASE "{name}"')
    except psycopg2.OperationalError as exc:
        log.warning("PostgreSQL not reachable (%s): this benchmark writes to SQLite", exc)
        yield ""
        return
    parts = dict(part.partition("=")[::2] for part in dsn.split())
    try:
        yield f"postgresql+psycopg2://{parts.get('user', 'postgres')}@{parts.get('host', '127.0.0.1')}:{parts.get('port', '5432')}/{name}"
    finally:
        _admin(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(dsn: str, sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()
