"""Ingestion on the production services: a catalogue and snapshots in S3 (moto server), labels and the
snapshot index in PostgreSQL, and the clear errors of a missing bucket or labelled table."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from rakuten_ml.data.ingest import ingest
from rakuten_ml.data.snapshot import load_products, read_manifest
from rakuten_ml.errors import DatabaseError, ObjectStoreError
from rakuten_ml.settings import IngestSettings
from rakuten_ml.storage.database import dataset_snapshots, init_db, labelled_products_table, make_engine
from rakuten_ml.storage.object_store import LocalObjectStore, S3ObjectStore
from tests.support.catalogues import good_rows, jpeg_bytes, write_catalogue


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    init_db(engine)
    return engine


def test_s3_source_and_target_with_postgres_labels(s3_endpoint, s3_bucket, pg_url):
    """The production path: catalogue in S3, snapshot in S3, human labels and index in PostgreSQL."""
    source = S3ObjectStore(s3_bucket, "raw/catalogue", endpoint_url=s3_endpoint)
    target = S3ObjectStore(s3_bucket, "platform", endpoint_url=s3_endpoint)
    rows = good_rows(8)
    rows[2]["_image"] = "missing"
    write_catalogue(source, rows)
    engine = make_engine(pg_url)
    init_db(engine)
    labelled = labelled_products_table("labelled_products")
    labelled.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            labelled.insert(),
            [
                # a human correction of product 1001 (catalogue says 2583): latest source wins
                {"productid": 1001, "imageid": 500001, "designation": "Coussin de piscine gonflable", "description": None, "prdtypecode": 1560, "image_key": None, "labelled_at": pd.Timestamp("2026-11-01", tz="UTC")},
                # a new product labelled by a person, its image uploaded by key
                {"productid": 9001, "imageid": 9001, "designation": "Roman policier poche", "description": "occasion", "prdtypecode": 10, "image_key": "feedback/9001.jpg", "labelled_at": pd.Timestamp("2026-11-02", tz="UTC")},
                {"productid": 9002, "imageid": 9002, "designation": "Label inconnu", "description": "", "prdtypecode": 77, "image_key": None, "labelled_at": pd.Timestamp("2026-11-03", tz="UTC")},
            ],
        )
    source.put_bytes("feedback/9001.jpg", jpeg_bytes((10, 10, 200)))
    result = ingest(
        source_store=source, source_prefix="", target_store=target, engine=engine,
        labelled_engine=engine, policy=IngestSettings(),
    )
    manifest = result.manifest
    assert manifest.n_input == 11
    assert manifest.quarantine_reasons == {"duplicate_superseded": 1, "missing_image": 1, "unknown_label": 1}
    products = load_products(target, result.snapshot_id)
    assert products.loc[products["productid"] == 1001, "prdtypecode"].item() == 1560
    assert products.loc[products["productid"] == 1001, "source"].item() == "postgres"
    assert 9001 in set(products["productid"])
    assert target.exists(f"snapshots/{result.snapshot_id}/manifest.json")
    assert read_manifest(target, result.snapshot_id).n_accepted == manifest.n_accepted == 8
    with engine.connect() as conn:
        stored = conn.execute(sa.select(dataset_snapshots.c.n_accepted, dataset_snapshots.c.store_url)).all()
    assert stored == [(8, f"s3://{s3_bucket}/platform")]


def test_missing_bucket_is_a_clear_error(s3_endpoint, tmp_path, engine):
    source = S3ObjectStore("no-such-bucket-here", "raw", endpoint_url=s3_endpoint)
    with pytest.raises(ObjectStoreError, match="bucket 'no-such-bucket-here' does not exist"):
        ingest(source_store=source, source_prefix="", target_store=LocalObjectStore(tmp_path / "store"), engine=engine, policy=IngestSettings())


def test_missing_labelled_table_is_a_clear_error(tmp_path, pg_url):
    source = LocalObjectStore(tmp_path / "raw")
    write_catalogue(source, good_rows(2))
    engine = make_engine(pg_url)
    init_db(engine)
    with pytest.raises(DatabaseError, match="table 'nope' does not exist"):
        ingest(source_store=source, source_prefix="", target_store=LocalObjectStore(tmp_path / "s"), engine=engine, labelled_engine=engine, policy=IngestSettings(labelled_products_table="nope"))
