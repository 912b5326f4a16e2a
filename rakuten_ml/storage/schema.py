"""The database schema's version: Alembic migrations under ``storage/migrations``, applied by
``rakuten-ml db upgrade`` (and the init task of the DAGs), so a column added in a release reaches a
database made by an earlier one. ``database.py`` holds the tables as the code uses them; a test
checks that the migrations produce exactly them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rakuten_ml.storage.database import database_errors, metadata

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE_REVISION = "0001_baseline"
# Held for the length of one upgrade on PostgreSQL: two tasks starting at once must not both create tables.
_UPGRADE_LOCK_KEY = 0x52414B5554454E  # "RAKUTEN"


def _config(connection: sa.Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextlib.contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic logs each plugin (at import) and context at INFO; the platform logs the upgrade itself, once.
    Hence its modules are imported inside this block, in the functions that use them."""
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


@functools.cache
def head_revision() -> str:
    with _quiet_alembic():
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None  # the package ships its migrations
    return head


def current_revision(engine: Engine) -> str | None:
    with _quiet_alembic(), engine.connect() as conn:
        from alembic.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()


def upgrade_database(engine: Engine, revision: str = "head") -> dict[str, Any]:
    """Bring the database to ``revision``; a database made before migrations existed is stamped at the baseline first.

    Idempotent and safe to run from several processes at once (an advisory lock on PostgreSQL).
    """
    with (
        database_errors(engine, "upgrading the database schema", then="rerun `rakuten-ml db upgrade`"),
        _quiet_alembic(),
        engine.begin() as conn,
    ):
        from alembic import command
        from alembic.migration import MigrationContext

        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK_KEY})
        before = MigrationContext.configure(conn).get_current_revision()
        if before == head_revision() and revision == "head":
            return {"database": engine.url.render_as_string(hide_password=True), "from": before, "to": before}
        if before is None and sa.inspect(conn).has_table("dataset_snapshots"):
            log.info("database predates migrations: stamping it at %s", BASELINE_REVISION)
            command.stamp(_config(conn), BASELINE_REVISION)
            before = BASELINE_REVISION
        command.upgrade(_config(conn), revision)
        after = MigrationContext.configure(conn).get_current_revision()
    if after != before:  # a new database is routine; an existing one changing schema is worth a line
        log.log(logging.DEBUG if before is None else logging.INFO, "database schema upgraded from %s to %s", before, after)
    return {"database": engine.url.render_as_string(hide_password=True), "from": before, "to": after}


def downgrade_database(engine: Engine, revision: str) -> dict[str, Any]:
    """Take the schema back to ``revision`` (a release being rolled back); each migration says what it keeps."""
    with database_errors(engine, "downgrading the database schema", then="rerun the downgrade"), _quiet_alembic(), engine.begin() as conn:
        from alembic import command
        from alembic.migration import MigrationContext

        before = MigrationContext.configure(conn).get_current_revision()
        command.downgrade(_config(conn), revision)
        after = MigrationContext.configure(conn).get_current_revision()
    log.info("database schema downgraded from %s to %s", before, after)
    return {"database": engine.url.render_as_string(hide_password=True), "from": before, "to": after}


def schema_differences(engine: Engine) -> list[Any]:
    """What the database lacks or has beyond the tables in ``database.py`` (empty when they agree)."""
    with _quiet_alembic(), engine.connect() as conn:
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))
