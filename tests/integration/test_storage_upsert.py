"""Upserts: the bulk COPY path on PostgreSQL and bound-parameter batches on SQLite give the same rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from rakuten_ml.storage.database import COPY_MIN_ROWS, init_db, predictions, quarantined_rows, upsert

AWKWARD_TEXT = ['comma, "quoted" and\nnewline', "", "accentué ✓", "back\\slash", "NULL", "\\N"]


def _engine(kind: str, pg_url: str, tmp_path) -> sa.Engine:  # noqa: ANN001
    url = pg_url if kind == "postgresql" else f"sqlite:///{tmp_path / 'upsert.db'}"
    engine = sa.create_engine(url)
    init_db(engine)
    return engine


def _prediction_rows(n: int, code: int, at: datetime) -> list[dict]:
    return [
        {"run_id": "run-1", "productid": i, "model_name": "m", "model_version": "3", "variant": "champion",
         "prdtypecode": code, "confidence": float(i % 100) / 100, "decision": "auto", "modality": "fused", "scored_at": at}
        for i in range(n)
    ]


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_bulk_upsert_overwrites_by_key_and_never_duplicates(kind, pg_url, tmp_path) -> None:  # noqa: ANN001
    engine = _engine(kind, pg_url, tmp_path)
    n = COPY_MIN_ROWS * 3 + 7  # above the COPY threshold, and not a multiple of any chunk
    first_at = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    assert upsert(engine, predictions, _prediction_rows(n, 10, first_at)) == n
    upsert(engine, predictions, _prediction_rows(n, 2583, first_at + timedelta(days=1)))  # the rerun overwrites
    with engine.connect() as conn:
        rows = conn.execute(sa.select(predictions).order_by(predictions.c.productid)).all()
    assert len(rows) == n
    assert {r.prdtypecode for r in rows} == {2583}
    assert rows[42].confidence == pytest.approx(0.42) and rows[42].productid == 42
    assert rows[0].scored_at.replace(tzinfo=UTC) == first_at + timedelta(days=1)


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_bulk_upsert_round_trips_text_json_and_nulls(kind, pg_url, tmp_path) -> None:  # noqa: ANN001
    engine = _engine(kind, pg_url, tmp_path)
    rows = [
        {"ingest_run_id": "run-1", "snapshot_id": "s1", "source": "x.csv", "location": f"line {i}", "reason": "empty_text",
         "productid": None if i % 2 else i, "detail": AWKWARD_TEXT[i % len(AWKWARD_TEXT)],
         "raw": {"designation": AWKWARD_TEXT[(i + 1) % len(AWKWARD_TEXT)], "n": i, "none": None}}
        for i in range(COPY_MIN_ROWS + 1)
    ]
    upsert(engine, quarantined_rows, rows)
    kept = [dict(r, detail="changed") for r in rows]
    upsert(engine, quarantined_rows, kept, update=False)  # keep what is stored
    with engine.connect() as conn:
        stored = {r.location: r for r in conn.execute(sa.select(quarantined_rows))}
    assert len(stored) == len(rows)
    for row in rows:
        got = stored[row["location"]]
        assert got.detail == row["detail"]  # '' stays an empty string, 'NULL' and '\N' stay text
        assert got.productid == row["productid"]
        assert got.raw == row["raw"]
