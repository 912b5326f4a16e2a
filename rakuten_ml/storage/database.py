"""The platform's relational tables (SQLAlchemy Core) and the few operations on them.

SQLite is the embedded default; PostgreSQL in production. Every write is an upsert keyed
by a natural id (snapshot id, run id + product id) so reruns never duplicate rows.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, NoSuchTableError, OperationalError, ProgrammingError

from rakuten_ml.errors import DatabaseError

log = logging.getLogger(__name__)

metadata = sa.MetaData()

dataset_snapshots = sa.Table(
    "dataset_snapshots",
    metadata,
    sa.Column("snapshot_id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # Bumped by every ingest that lands on this same content, so "latest" follows the data.
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("n_input", sa.Integer, nullable=False),
    sa.Column("n_accepted", sa.Integer, nullable=False),
    sa.Column("n_quarantined", sa.Integer, nullable=False),
    sa.Column("store_url", sa.Text, nullable=False),
    sa.Column("manifest_key", sa.Text, nullable=False),
    sa.Column("manifest", sa.JSON, nullable=False),
)

ingest_runs = sa.Table(
    "ingest_runs",
    metadata,
    # One row per ingest run, whether or not its accepted content was new: a run that only adds rejected
    # rows lands on an existing snapshot id, and still accounts for its own input (input = accepted +
    # quarantined). A rerun with the same run id (an Airflow retry) replaces its row and its quarantine.
    sa.Column("ingest_run_id", sa.String(250), primary_key=True),
    sa.Column("snapshot_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_snapshot", sa.Boolean, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("n_input", sa.Integer, nullable=False),
    sa.Column("n_accepted", sa.Integer, nullable=False),
    sa.Column("n_quarantined", sa.Integer, nullable=False),
    sa.Column("quarantine_reasons", sa.JSON, nullable=False),
    sa.Column("sources", sa.JSON, nullable=False),
    sa.Column("quarantine_key", sa.Text, nullable=False),
)

quarantined_rows = sa.Table(
    "quarantined_rows",
    metadata,
    # Rows an ingest run refused, keyed by that run: the same bad row in two runs is two entries, each
    # run's entries match its quarantine file, and snapshot_id says which snapshot the run produced.
    sa.Column("ingest_run_id", sa.String(250), primary_key=True),
    sa.Column("source", sa.String(512), primary_key=True),
    sa.Column("location", sa.String(512), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    sa.Column("snapshot_id", sa.String(64), nullable=False, index=True),
    sa.Column("productid", sa.BigInteger, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("raw", sa.JSON, nullable=False),
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("productid", sa.BigInteger, primary_key=True),
    sa.Column("model_name", sa.String(250), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("variant", sa.String(32), nullable=False),
    sa.Column("prdtypecode", sa.Integer, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("modality", sa.String(16), nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
)

feedback = sa.Table(
    "feedback",
    metadata,
    # True labels for a sample of predictions (human review); one current label per product.
    sa.Column("productid", sa.BigInteger, primary_key=True),
    sa.Column("prdtypecode", sa.Integer, nullable=False),
    sa.Column("source", sa.String(64), nullable=False, server_default="human"),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)

prediction_log = sa.Table(
    "prediction_log",
    metadata,
    # Online (serving) predictions, so A/B evaluation and drift monitoring see live traffic.
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("productid", sa.BigInteger, nullable=True),
    sa.Column("model_name", sa.String(250), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("variant", sa.String(32), nullable=False),
    sa.Column("prdtypecode", sa.Integer, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("modality", sa.String(16), nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

drift_checks = sa.Table(
    "drift_checks",
    metadata,
    # One row per daily drift statistic (monitoring.checks): Grafana/Prometheus read it, and the
    # 3-consecutive-days rule reads yesterday's rows. Keyed by day so a rerun overwrites, never doubles.
    sa.Column("check_date", sa.Date, primary_key=True),
    sa.Column("model_version", sa.String(32), primary_key=True),
    sa.Column("metric", sa.String(32), primary_key=True),
    sa.Column("feature", sa.String(128), primary_key=True),
    sa.Column("statistic", sa.Float, nullable=True),
    sa.Column("p_value", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
)

retrain_requests = sa.Table(
    "retrain_requests",
    metadata,
    # Every retraining DAG run, started or skipped, with the drift alert that caused it: the
    # cool-down reads it, so an alert that fires daily does not retrain daily.
    sa.Column("dag_run_id", sa.String(250), primary_key=True),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("alert_ids", sa.JSON, nullable=False),
    sa.Column("alerts", sa.JSON, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("force", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("snapshot_id", sa.String(64), nullable=True),
    sa.Column("model_version", sa.String(32), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
)

promotion_events = sa.Table(
    "promotion_events",
    metadata,
    # Audit of every registry alias move and gate/A-B verdict (rakuten_ml.promotion.audit): MLflow
    # keeps only the current aliases, this keeps who moved what, when and why.
    sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(250), nullable=False, index=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_version", sa.String(32), nullable=True),
    sa.Column("to_version", sa.String(32), nullable=True),
    sa.Column("actor", sa.String(250), nullable=False),
    sa.Column("dag_run_id", sa.String(250), nullable=True),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

promotion_lock = sa.Table(
    "promotion_lock",
    metadata,
    # One row per registered model; an alias move updates it first and holds that row lock until it
    # commits, so concurrent moves (DAGs, CLI) serialise: MLflow itself has no transactions.
    sa.Column("model_name", sa.String(250), primary_key=True),
    sa.Column("holder", sa.String(250), nullable=True),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
)

scoring_partitions = sa.Table(
    "scoring_partitions",
    metadata,
    # One row per (scoring run, partition): a killed run resumes without rescoring finished ones.
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("partition_id", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("n_scored", sa.Integer, nullable=False, server_default="0"),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

scoring_runs = sa.Table(
    "scoring_runs",
    metadata,
    # The run's pinned model versions and final counts, shown in the DAG run summary.
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("snapshot_id", sa.String(64), nullable=False),
    sa.Column("models", sa.JSON, nullable=False),
    sa.Column("n_partitions", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)

image_scores = sa.Table(
    "image_scores",
    metadata,
    # The image model's class probabilities per (model version, precision, image content): the nightly
    # run re-scores the whole catalogue, but an unchanged photo under an unchanged model gives the
    # same output, so only new photos go through the backbones (rakuten_ml.scoring.image_cache).
    sa.Column("model_name", sa.String(250), primary_key=True),
    sa.Column("model_version", sa.String(50), primary_key=True),
    sa.Column("precision", sa.String(32), primary_key=True),
    sa.Column("image_sha256", sa.String(64), primary_key=True),
    sa.Column("proba", sa.LargeBinary, nullable=False),  # float32, one per class in the label mapping's order
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

paired_predictions = sa.Table(
    "paired_predictions",
    metadata,
    # Champion and challenger predictions of one product in one scoring (a nightly run scores the whole
    # catalogue with both; serving shadow-scores live traffic off the response path): the paired A/B
    # test reads the products that got a label, the disagreement rate reads them all.
    # source_id: the scoring run id, or the serving request id.
    sa.Column("source_id", sa.String(250), primary_key=True),
    sa.Column("productid", sa.BigInteger, primary_key=True),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("model_name", sa.String(250), nullable=False),
    sa.Column("champion_version", sa.String(32), nullable=False),
    sa.Column("challenger_version", sa.String(32), nullable=False),
    sa.Column("champion_code", sa.Integer, nullable=False),
    sa.Column("challenger_code", sa.Integer, nullable=False),
    sa.Column("champion_confidence", sa.Float, nullable=False),
    sa.Column("challenger_confidence", sa.Float, nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

confusion_sums = sa.Table(
    "confusion_sums",
    metadata,
    # Per scoring partition and model version, the expected confusion counts of its fused probabilities
    # (rakuten_ml.monitoring.performance_estimate): summed over a run they give the label-free estimate
    # of accuracy and weighted F1 the drift check compares with its baseline. Keyed by partition so a
    # retried partition overwrites its own sums.
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("partition_id", sa.Integer, primary_key=True),
    sa.Column("model_version", sa.String(32), primary_key=True),
    sa.Column("model_name", sa.String(250), nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("sums", sa.JSON, nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

review_labels = sa.Table(
    "review_labels",
    metadata,
    # Every reviewer's label of a product (serving/review): a reviewer's second label of the same product
    # replaces their first, two reviewers who disagree stay two rows (inter-annotator agreement reads them).
    # The latest one is also the product's row in feedback and in the labelled-products table.
    sa.Column("productid", sa.BigInteger, primary_key=True),
    sa.Column("reviewer", sa.String(64), primary_key=True),
    sa.Column("prdtypecode", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String(32), nullable=True),
    sa.Column("predicted_code", sa.Integer, nullable=True),
    sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

review_skips = sa.Table(
    "review_skips",
    metadata,
    # Products a reviewer skipped: kept out of that reviewer's queue, still in everyone else's.
    sa.Column("productid", sa.BigInteger, primary_key=True),
    sa.Column("reviewer", sa.String(64), primary_key=True),
    sa.Column("skipped_at", sa.DateTime(timezone=True), nullable=False),
)

# --- tables added by feature modules go above this line (one concept each, with a why-comment) ---


def labelled_products_table(name: str = "labelled_products", meta: sa.MetaData | None = None) -> sa.Table:
    """Schema of the human-labelled products table that ingestion reads (feedback, corrections)."""
    return sa.Table(
        name,
        meta if meta is not None else sa.MetaData(),
        sa.Column("productid", sa.BigInteger, primary_key=True),
        sa.Column("imageid", sa.BigInteger, nullable=True),
        sa.Column("designation", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("prdtypecode", sa.Integer, nullable=True),
        sa.Column("image_key", sa.Text, nullable=True),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def make_engine(url: str) -> Engine:
    """Engine for ``url``; fails fast with a clear error when the database is unreachable."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "future": True}
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": 5}
    elif url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    engine = sa.create_engine(url, **kwargs)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot reach database {engine.url.render_as_string(hide_password=True)}: {exc.orig}; "
            "check RAKUTEN_DATABASE_URL and that the server is running"
        ) from exc
    return engine


# What a lost server looks like to SQLAlchemy: refused or dropped connections (OperationalError) and
# a connection closed under a running statement (InterfaceError, psycopg2's "connection already closed").
CONNECTION_ERRORS = (OperationalError, InterfaceError)


def driver_message(exc: sa.exc.DBAPIError) -> str:
    """The driver's own message on one line: SQLAlchemy's adds the statement and every bound row."""
    return " ".join(str(exc.orig).split()) or type(exc.orig).__name__


@contextlib.contextmanager
def database_errors(engine: Engine, action: str, *, then: str = "retry") -> Iterator[None]:
    """Turn a lost database connection inside the block into a :class:`DatabaseError` naming ``action``.

    ``then`` says what the user should do once the server is back (e.g. "rerun the ingest: it is
    idempotent"). Only the driver's message is kept: SQLAlchemy's would echo every bound row.
    """
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise DatabaseError(
            f"{action} failed: the database {engine.url.render_as_string(hide_password=True)} went away "
            f"({driver_message(exc)}); check that the server is running, then {then}"
        ) from exc


def init_db(engine: Engine) -> None:
    """Create the platform's tables, or bring them up to this version's schema (Alembic migrations; idempotent)."""
    from rakuten_ml.storage.schema import upgrade_database

    upgrade_database(engine)


def upsert(
    engine: Engine,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    update: bool = True,
    chunk_size: int = 5000,
) -> int:
    """Insert ``rows`` in a transaction of their own; on a primary-key conflict overwrite (``update``) or
    keep the stored row. A lost server is a :class:`DatabaseError` (nothing of the batch is written)."""
    if not rows:
        return 0
    # The server may have gone away after the engine was made (restart, failover, dropped database).
    with database_errors(engine, f"writing to {table.name!r}"), engine.begin() as conn:
        return upsert_rows(conn, table, rows, update=update, chunk_size=chunk_size)


def upsert_rows(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    update: bool = True,
    chunk_size: int = 5000,
) -> int:
    """:func:`upsert` inside the caller's transaction, so several tables can be written all or nothing.

    On PostgreSQL, batches of ``COPY_MIN_ROWS`` or more go through ``COPY`` into a temporary table
    and one ``INSERT ... SELECT ... ON CONFLICT``: a scoring partition of 20,000 predictions is
    written in a fraction of a second instead of seconds of bound-parameter statements.
    """
    if not rows:
        return 0
    keys = [c.name for c in table.primary_key.columns]
    dialect = conn.dialect.name
    insert: Callable[[sa.Table], Any]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise DatabaseError(f"upsert supports PostgreSQL and SQLite, not {dialect}")
    if dialect == "postgresql" and len(rows) >= COPY_MIN_ROWS and _copy_upsert(conn, table, rows, keys, update):
        return len(rows)
    stmt = insert(table)
    if update:
        others = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=others)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    for start in range(0, len(rows), chunk_size):
        conn.execute(stmt, [dict(row) for row in rows[start : start + chunk_size]])  # compiled once, executemany
    return len(rows)


COPY_MIN_ROWS = 500


def _copy_upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], keys: list[str], update: bool) -> bool:
    """``COPY`` into a transaction-scoped staging table, then upsert from it; False when the driver
    has no ``copy_expert`` (the caller then uses bound-parameter batches)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    if not hasattr(cursor, "copy_expert"):
        return False
    quote = conn.dialect.identifier_preparer.quote
    columns = [c.name for c in table.columns]
    column_list = ", ".join(quote(c) for c in columns)
    staging = quote(f"staging_{table.name}")
    conn.exec_driver_sql(f"CREATE TEMP TABLE {staging} (LIKE {quote(table.name)}) ON COMMIT DROP")
    json_columns = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    buffer = io.StringIO()
    for row in rows:
        buffer.write(",".join(_copy_field(row.get(name), name in json_columns) for name in columns))
        buffer.write("\n")
    buffer.seek(0)
    cursor.copy_expert(f"COPY {staging} ({column_list}) FROM STDIN WITH (FORMAT csv)", buffer)
    conflict = ", ".join(quote(k) for k in keys)
    others = [c for c in columns if c not in keys]
    action = (
        "DO UPDATE SET " + ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in others)
        if update and others
        else "DO NOTHING"
    )
    conn.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({column_list}) SELECT {column_list} FROM {staging} "  # noqa: S608 - quoted identifiers
        f"ON CONFLICT ({conflict}) {action}"
    )
    conn.exec_driver_sql(f"DROP TABLE {staging}")  # a second upsert in the same transaction recreates it
    return True


def _copy_field(value: Any, is_json: bool) -> str:
    """One CSV field for COPY: ``None`` unquoted and empty (NULL); every other value quoted, so an
    empty string stays an empty string. JSON is serialised, timestamps are ISO 8601, and a float
    NaN stays NaN, as a bound parameter would."""
    if is_json:
        text = json.dumps(value)
    elif value is None:
        return ""
    elif isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, bytes | bytearray | memoryview):
        text = "\\x" + bytes(value).hex()  # bytea's hex input format; CSV COPY keeps backslashes as they are
    elif isinstance(value, bool | np.bool_):
        text = "true" if value else "false"
    elif isinstance(value, float | np.floating):
        text = repr(float(value))
    else:
        text = str(value.item() if isinstance(value, np.generic) else value)
    return '"' + text.replace('"', '""') + '"'


def reflect_table(engine: Engine, name: str) -> sa.Table:
    """A table that must already exist (a source table), with a clear error when it does not."""
    try:
        return sa.Table(name, sa.MetaData(), autoload_with=engine)
    except NoSuchTableError:
        raise DatabaseError(
            f"table {name!r} does not exist in {engine.url.render_as_string(hide_password=True)}; "
            "create it (rakuten-ml db init --with-labelled-products) or fix RAKUTEN_LABELLED_PRODUCTS_TABLE"
        ) from None
    except (OperationalError, ProgrammingError) as exc:
        raise DatabaseError(f"cannot read table {name!r}: {exc.orig}") from exc


def fetch_all(engine: Engine, statement: sa.Executable) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(statement)]


def count_rows(engine: Engine, table: sa.Table, **where: Any) -> int:
    stmt = sa.select(sa.func.count()).select_from(table)
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
