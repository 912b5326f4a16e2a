"""Ingestion while its services die: PostgreSQL stopped before and in the middle of indexing a snapshot,
and S3 cut while images are copied. Each run ends with a typed error that says what to do; nothing
half-indexed is visible; the rerun after the outage gives exact counts (no loss, no duplicates)."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

import rakuten_ml.data.snapshot as snapshot_module
from rakuten_ml.data.ingest import ImageChecker, ingest
from rakuten_ml.data.snapshot import latest_snapshot_id, list_ingest_runs, load_products
from rakuten_ml.errors import DatabaseError, ObjectStoreError, SnapshotNotFoundError
from rakuten_ml.settings import IngestSettings
from rakuten_ml.storage.database import dataset_snapshots, ingest_runs, init_db, make_engine, quarantined_rows
from rakuten_ml.storage.object_store import LocalObjectStore, S3ObjectStore
from tests.faults.figures import record_figures
from tests.support.catalogues import good_rows, write_catalogue

pytestmark = pytest.mark.faults

N_ROWS = 40
N_BAD = 4  # rows with an unknown label: the quarantine must be indexed with the snapshot, or not at all
_FIGURES: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield
    record_figures("ingest_outages", {
        "faults_injected": len(_FIGURES),
        "rows_checked": sum(f["rows"] for f in _FIGURES.values()),
        "rows_lost": sum(f["lost"] for f in _FIGURES.values()),
        "duplicates": sum(f["duplicates"] for f in _FIGURES.values()),
        "cases": _FIGURES,
    })


def catalogue_rows() -> list[dict]:
    rows = good_rows(N_ROWS)
    for row in rows[:N_BAD]:
        row["prdtypecode"] = 4242
    return rows


def table_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in (dataset_snapshots, ingest_runs, quarantined_rows)}


def assert_exact_after_rerun(engine, target, result, name: str) -> None:
    """One snapshot, one run record, its quarantine rows exactly once, every product accepted once."""
    assert table_counts(engine) == {"dataset_snapshots": 1, "ingest_runs": 1, "quarantined_rows": N_BAD}
    assert latest_snapshot_id(engine) == result.snapshot_id
    products = load_products(target, result.snapshot_id)
    duplicates = int(products["productid"].duplicated().sum())
    lost = N_ROWS - N_BAD - products["productid"].nunique()
    assert (lost, duplicates) == (0, 0)
    [run] = list_ingest_runs(engine)
    assert (run["n_input"], run["n_accepted"], run["n_quarantined"]) == (N_ROWS, N_ROWS - N_BAD, N_BAD)
    _FIGURES[name] = {"rows": N_ROWS, "lost": lost, "duplicates": duplicates}


def crash_after_image_checks(monkeypatch, server) -> None:
    """PostgreSQL dies once the images are checked: after the store writes begin, before any index write."""
    original_check = ImageChecker.check

    def check_then_crash(self, candidates):
        outcome = original_check(self, candidates)
        server.stop()
        return outcome

    monkeypatch.setattr(ImageChecker, "check", check_then_crash)


@pytest.mark.parametrize("moment", ["before_indexing", "inside_the_index_transaction"])
def test_postgres_stopped_during_ingestion(moment, tmp_path, throwaway_postgres, outage_db_url, monkeypatch):
    source, target = LocalObjectStore(tmp_path / "raw"), LocalObjectStore(tmp_path / "store")
    write_catalogue(source, catalogue_rows())
    engine = make_engine(outage_db_url)
    init_db(engine)
    if moment == "before_indexing":
        crash_after_image_checks(monkeypatch, throwaway_postgres)
    else:
        original_upsert = snapshot_module.upsert_rows

        def upsert_then_crash(conn, table, rows, **kwargs):
            written = original_upsert(conn, table, rows, **kwargs)
            if table is quarantined_rows:  # the snapshot row is in, the run row not yet: crash before commit
                throwaway_postgres.stop()
            return written

        monkeypatch.setattr(snapshot_module, "upsert_rows", upsert_then_crash)
    with pytest.raises(DatabaseError, match="rerun the ingest: it is idempotent"):
        ingest(source_store=source, source_prefix="", target_store=target, engine=engine, ingest_run_id="nightly-1", policy=IngestSettings())
    monkeypatch.undo()
    throwaway_postgres.start()
    engine.dispose()
    # nothing of the failed run is visible: no snapshot named latest without its quarantine
    assert table_counts(engine) == {"dataset_snapshots": 0, "ingest_runs": 0, "quarantined_rows": 0}
    with pytest.raises(SnapshotNotFoundError):
        latest_snapshot_id(engine)
    result = ingest(source_store=source, source_prefix="", target_store=target, engine=engine, ingest_run_id="nightly-1", policy=IngestSettings())
    assert_exact_after_rerun(engine, target, result, f"postgres_{moment}")


def test_the_ingest_command_reports_a_lost_database_in_one_line(tmp_path, throwaway_postgres, outage_db_url, monkeypatch, capsys):
    """What an Airflow task log or a terminal shows: a typed error naming the step and what to do, no traceback."""
    from typer.testing import CliRunner

    from rakuten_ml.cli import app, run

    monkeypatch.setenv("RAKUTEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAKUTEN_DATABASE_URL", outage_db_url)
    source = LocalObjectStore(tmp_path / "raw")
    write_catalogue(source, catalogue_rows())
    assert CliRunner().invoke(app, ["db", "init"]).exit_code == 0
    crash_after_image_checks(monkeypatch, throwaway_postgres)
    monkeypatch.setattr("sys.argv", ["rakuten-ml", "ingest", "--source", str(tmp_path / "raw"), "--no-labelled-table"])
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 1  # a runtime error (2 is for a wrong command or setting)
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: indexing snapshot snap-") and "rerun the ingest: it is idempotent" in stderr
    assert "Traceback" not in stderr and "sqlalchemy" not in stderr
    throwaway_postgres.start()


def test_s3_cut_while_images_are_copied(s3_proxy, s3_bucket, tmp_path, pg_url, monkeypatch):
    """An S3 outage is not a missing image: the run ends with an ObjectStoreError and quarantines nothing."""
    source = S3ObjectStore(s3_bucket, "raw", endpoint_url=s3_proxy.url)
    target = S3ObjectStore(s3_bucket, "platform", endpoint_url=s3_proxy.url)
    write_catalogue(source, catalogue_rows())
    engine = make_engine(pg_url)
    init_db(engine)
    reads = {"n": 0}
    original_get = S3ObjectStore.get_bytes

    def get_then_cut(self, key):
        if "image_train/" in key:
            reads["n"] += 1
            if reads["n"] == 10:
                s3_proxy.cut()
        return original_get(self, key)

    monkeypatch.setattr(S3ObjectStore, "get_bytes", get_then_cut)
    with pytest.raises(ObjectStoreError, match="cannot reach S3 endpoint|S3 error"):
        ingest(source_store=source, source_prefix="", target_store=target, engine=engine, ingest_run_id="nightly-s3", policy=IngestSettings())
    monkeypatch.undo()
    s3_proxy.restore()
    assert table_counts(engine) == {"dataset_snapshots": 0, "ingest_runs": 0, "quarantined_rows": 0}
    result = ingest(source_store=source, source_prefix="", target_store=target, engine=engine, ingest_run_id="nightly-s3", policy=IngestSettings())
    assert result.summary()["quarantine_reasons"] == {"unknown_label": N_BAD}  # no image taken for missing
    assert_exact_after_rerun(engine, target, result, "s3_mid_ingest")
    stored = pd.read_sql(sa.select(quarantined_rows.c.reason), engine)
    assert set(stored["reason"]) == {"unknown_label"}
