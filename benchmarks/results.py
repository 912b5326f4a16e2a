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

from rakuten_ml.cpus import CPUINFO, cpu_flags, cpuinfo_field

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
log = logging.getLogger(__name__)
HEADER = "# Benchmark results\n\nEach section is rewritten by the benchmark that owns it (`python -m benchmarks.<name>`).\n"


# Widest vector extension first: the CPU figures of two machines compare only with these alike.
_VECTOR_FLAGS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 bf16"), ("avx512_vnni", "AVX-512 VNNI"),
                 ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """``"AMD EPYC, AVX2"``: the CPU's model name and its widest vector extension; empty where unknown."""
    flags = cpu_flags(cpuinfo)
    vector = next((label for flag, label in _VECTOR_FLAGS if flag in flags), "")
    return ", ".join(part for part in (cpuinfo_field("model name", cpuinfo), vector) if part)


def machine_line() -> str:
    cpu = cpu_model()
    return (f"{platform.processor() or platform.machine()}{f' ({cpu})' if cpu else ''}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}")


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
    writes are measured), dropped afterwards; "" (SQLite in the benchmark's home) when PostgreSQL
    is not reachable. ``RAKUTEN_BENCH_PG_URL`` names the server (default: local trust auth)."""
    import sqlalchemy as sa

    server = os.environ.get("RAKUTEN_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"rakuten_bench_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        log.warning("PostgreSQL not reachable (%s): this benchmark writes to SQLite", exc)
        yield ""
        return
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
