"""Schema migrations: they build exactly the tables the code uses, and they upgrade a database made by
the previous version (tables from create_all, no version table) without losing a row."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from rakuten_ml.data.snapshot import list_ingest_runs
from rakuten_ml.storage.database import init_db, make_engine, quarantined_rows
from rakuten_ml.storage.schema import (
    BASELINE_REVISION,
    current_revision,
    downgrade_database,
    head_revision,
    schema_differences,
    upgrade_database,
)
from tests.support.services import admin_sql


@pytest.fixture
def pg_engine():
    name = f"rakuten_mig_{uuid.uuid4().hex[:10]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}")
    yield engine
    engine.dispose()
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        yield make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    else:
        yield request.getfixturevalue("pg_engine")


def previous_version_database(engine) -> None:
    """What the previous release left: its tables, made by create_all, and no alembic_version table."""
    upgrade_database(engine, BASELINE_REVISION)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
        manifest = {"quarantine_reasons": {"unknown_label": 2}, "sources": {"s3://raw/X.csv": "etag-1"}, "quarantine_key": "snapshots/snap-a/quarantine.parquet"}
        when = datetime(2026, 11, 1, tzinfo=UTC)
        conn.execute(
            sa.text(
                "INSERT INTO dataset_snapshots (snapshot_id, created_at, last_seen_at, content_hash, n_input, n_accepted,"
                " n_quarantined, store_url, manifest_key, manifest) VALUES (:sid, :at, :at, 'h', 10, 8, 2, 's3://p', 'k', :manifest)"
            ),
            [{"sid": sid, "at": when, "manifest": json.dumps(manifest)} for sid in ("snap-a", "snap-b")],
        )
        conn.execute(
            sa.text(
                "INSERT INTO quarantined_rows (snapshot_id, source, location, reason, productid, detail, raw)"
                " VALUES (:sid, 'files', :loc, 'unknown_label', 7, 'code 4242', '{}')"
            ),
            [{"sid": "snap-a", "loc": "X.csv:line 3"}, {"sid": "snap-a", "loc": "X.csv:line 9"}, {"sid": "snap-b", "loc": "X.csv:line 3"}],
        )


def test_migrations_build_exactly_the_tables_the_code_uses(engine):
    init_db(engine)
    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []


def test_a_database_of_the_previous_version_is_upgraded_without_loss(engine):
    previous_version_database(engine)
    init_db(engine)
    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []
    with engine.connect() as conn:
        rows = conn.execute(sa.select(quarantined_rows.c.ingest_run_id, quarantined_rows.c.snapshot_id, quarantined_rows.c.location)).all()
    assert sorted(rows) == [
        ("legacy-snap-a", "snap-a", "X.csv:line 3"), ("legacy-snap-a", "snap-a", "X.csv:line 9"), ("legacy-snap-b", "snap-b", "X.csv:line 3"),
    ]
    runs = {r["ingest_run_id"]: r for r in list_ingest_runs(engine)}
    assert sorted(runs) == ["legacy-snap-a", "legacy-snap-b"]
    assert (runs["legacy-snap-a"]["n_input"], runs["legacy-snap-a"]["n_quarantined"]) == (10, 2)
    assert runs["legacy-snap-a"]["quarantine_reasons"] == {"unknown_label": 2}


def test_a_downgrade_and_a_second_upgrade_keep_the_rows(engine):
    previous_version_database(engine)
    init_db(engine)
    downgrade_database(engine, BASELINE_REVISION)  # a release rolled back: the way back is a migration too
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM quarantined_rows")).scalar_one() == 3
    command_result = upgrade_database(engine)
    assert (command_result["from"], command_result["to"]) == (BASELINE_REVISION, head_revision())
    assert schema_differences(engine) == []


def test_tasks_that_start_at_once_upgrade_a_fresh_database_once(pg_engine):
    """Airflow starts several tasks at once, each making its engine: the advisory lock lets one migrate."""
    engine = pg_engine
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            init_db(make_engine(engine.url.render_as_string(hide_password=False)))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert current_revision(engine) == head_revision()


def test_the_upgrade_command_reports_the_revisions(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rakuten_ml.cli import app

    monkeypatch.setenv("RAKUTEN_HOME", str(tmp_path / "home"))
    first = CliRunner().invoke(app, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout[first.stdout.index("{"):]) | {"database": None} == {"database": None, "from": None, "to": head_revision()}
