"""Ingestion into content-addressed snapshots: bad rows quarantined, counts balanced, reruns idempotent (SQLite and
local stores; S3 and PostgreSQL sources are in ``tests/integration/test_ingest_s3_postgres.py``)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa
from PIL import Image

from rakuten_ml.cli import run_ingest as run_ingest_command
from rakuten_ml.data.contract import MAX_IMAGE_SIDE, Reason, inspect_image
from rakuten_ml.data.ingest import content_image_key, ingest
from rakuten_ml.data.snapshot import latest_snapshot_id, list_ingest_runs, list_snapshots, load_products, load_quarantine
from rakuten_ml.errors import DatabaseError, ObjectStoreError, SourceError
from rakuten_ml.settings import IngestSettings
from rakuten_ml.storage.database import (
    count_rows,
    dataset_snapshots,
    ingest_runs,
    init_db,
    make_engine,
    quarantined_rows,
)
from rakuten_ml.storage.object_store import LocalObjectStore, S3ObjectStore
from tests.support.catalogues import good_rows, jpeg_bytes, png_bytes, png_header, write_catalogue
from tests.support.services import free_port


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    init_db(engine)
    return engine


def run_ingest(source, target, engine, policy=None, **kwargs):
    return ingest(source_store=source, source_prefix="", target_store=target, engine=engine, policy=policy or IngestSettings(), **kwargs)


def test_clean_catalogue_becomes_snapshot(tmp_path, engine):
    source = LocalObjectStore(tmp_path / "raw")
    target = LocalObjectStore(tmp_path / "store")
    write_catalogue(source, good_rows(12))
    result = run_ingest(source, target, engine)
    manifest = result.manifest
    assert result.created
    assert (manifest.n_input, manifest.n_accepted, manifest.n_quarantined) == (12, 12, 0)
    assert manifest.class_counts == {"10": 3, "1560": 3, "2583": 3, "2705": 3}
    products = load_products(target, result.snapshot_id)
    assert sorted(products["productid"]) == list(range(1000, 1012))
    # missing descriptions become empty text, HTML stays raw (cleaning belongs to the models)
    assert products.loc[products["productid"] == 1000, "description"].item() == ""
    assert "&eacute;" in products.loc[products["productid"] == 1001, "description"].item()
    # images are copied to content-addressed keys that match their bytes
    digest = products["image_sha256"].iloc[0]
    assert products["image_key"].iloc[0] == content_image_key(digest)
    assert target.get_bytes(content_image_key(digest)) == jpeg_bytes()
    assert latest_snapshot_id(engine) == result.snapshot_id


def test_rerun_is_idempotent(tmp_path, engine):
    source = LocalObjectStore(tmp_path / "raw")
    target = LocalObjectStore(tmp_path / "store")
    rows = good_rows(6)
    rows[0]["prdtypecode"] = 999  # one quarantined row, to check it is not stored twice either
    write_catalogue(source, rows)
    first = run_ingest(source, target, engine, ingest_run_id="run-1")
    snapshot_files = {info.key: info.version for info in target.list("snapshots")}
    second = run_ingest(source, target, engine, ingest_run_id="run-2")
    assert second.snapshot_id == first.snapshot_id
    assert not second.created
    assert {info.key: info.version for info in target.list("snapshots")} == snapshot_files
    assert sorted(info.key for info in target.list("ingest-runs")) == [
        "ingest-runs/run-1/quarantine.parquet", "ingest-runs/run-2/quarantine.parquet",
    ]
    assert count_rows(engine, dataset_snapshots) == 1
    # each run accounts for its own rejected row; a retry of a run replaces what it wrote
    assert count_rows(engine, quarantined_rows) == 2
    run_ingest(source, target, engine, ingest_run_id="run-2")
    assert count_rows(engine, quarantined_rows) == 2
    assert count_rows(engine, ingest_runs) == 2
    assert [r["n_quarantined"] for r in list_ingest_runs(engine)] == [1, 1]


def test_changed_input_gives_new_snapshot_and_latest_follows(tmp_path, engine):
    source = LocalObjectStore(tmp_path / "raw")
    target = LocalObjectStore(tmp_path / "store")
    write_catalogue(source, good_rows(6))
    first = run_ingest(source, target, engine)
    write_catalogue(source, good_rows(7))
    second = run_ingest(source, target, engine)
    assert second.snapshot_id != first.snapshot_id
    assert latest_snapshot_id(engine) == second.snapshot_id
    write_catalogue(source, good_rows(6))
    third = run_ingest(source, target, engine)
    assert third.snapshot_id == first.snapshot_id and not third.created
    assert latest_snapshot_id(engine) == first.snapshot_id
    assert len(list_snapshots(engine)) == 2


def test_bad_rows_are_quarantined_with_reasons(tmp_path, engine):
    source = LocalObjectStore(tmp_path / "raw")
    target = LocalObjectStore(tmp_path / "store")
    rows = good_rows(10)
    rows[1]["prdtypecode"] = 1234  # unknown label
    rows[2]["designation"] = "   "  # empty designation
    rows[3]["_image"] = "missing"
    rows[4]["_image"] = jpeg_bytes()[:200]  # truncated JPEG
    rows[5]["_image"] = b"not an image at all"
    rows[6]["productid"] = "12ab"  # not an integer
    rows[7]["productid"] = rows[8]["productid"]  # duplicated productid: the later line (row 8) wins
    rows[7]["imageid"] = 777777
    malformed = '10,"title",desc,1,2,extra,fields\n'
    write_catalogue(source, rows, extra_x_lines=malformed)
    result = run_ingest(source, target, engine)
    manifest = result.manifest
    assert manifest.n_input == 11
    assert manifest.n_accepted + manifest.n_quarantined == manifest.n_input
    quarantine = load_quarantine(target, result.snapshot_id)
    reasons = quarantine.groupby("reason")["location"].apply(list).to_dict()
    assert {k: len(v) for k, v in reasons.items()} == {
        "unknown_label": 1,
        "empty_designation": 1,
        "missing_image": 1,
        "corrupt_image": 2,
        "invalid_type": 1,
        "duplicate_superseded": 1,
        "malformed_row": 1,
    }
    assert reasons["malformed_row"][0].endswith("X_train_update.csv:line 12")
    superseded = quarantine[quarantine["reason"] == "duplicate_superseded"].iloc[0]
    assert json.loads(superseded["raw"])["imageid"] == "777777"
    assert "line 10" in superseded["detail"]  # the winner's location
    products = load_products(target, result.snapshot_id)
    assert sorted(products["productid"]) == [1000, 1008, 1009]
    assert products.loc[products["productid"] == 1008, "imageid"].item() == 500008
    # the database holds the same quarantine, with raw rows a person can replay
    stored = pd.read_sql(sa.select(quarantined_rows), engine)
    assert len(stored) == manifest.n_quarantined
    assert set(stored["snapshot_id"]) == {result.snapshot_id}


def test_missing_label_and_orphan_label(tmp_path, engine):
    source = LocalObjectStore(tmp_path / "raw")
    target = LocalObjectStore(tmp_path / "store")
    write_catalogue(source, good_rows(3))
    y = "\n".join([",prdtypecode", "0,10", "2,2583", "7,1560"]) + "\n"  # row 1 unlabelled, label 7 orphan
    source.put_bytes("Y_train_CVw08PX.csv", y.encode())
    manifest = run_ingest(source, target, engine).manifest
    assert manifest.n_input == 4
    assert manifest.quarantine_reasons == {"label_without_product": 1, "missing_label": 1}


def test_optional_image_policy_keeps_text_only_rows_but_not_corrupt_ones(tmp_path, engine):
    source = LocalObjectStore(tmp_path / "raw")
    target = LocalObjectStore(tmp_path / "store")
    rows = good_rows(4)
    rows[0]["_image"] = "missing"
    rows[1]["_image"] = b"\xff\xd8garbage"
    write_catalogue(source, rows)
    result = run_ingest(source, target, engine, policy=IngestSettings(image_policy="optional"))
    products = load_products(target, result.snapshot_id)
    assert len(products) == 3
    assert products.loc[products["productid"] == 1000, "image_key"].isna().all()
    assert result.manifest.quarantine_reasons == {"corrupt_image": 1}
    assert result.manifest.n_with_image == 2


def test_parquet_source_is_read_beside_csvs(tmp_path, engine):
    source = LocalObjectStore(tmp_path / "raw")
    target = LocalObjectStore(tmp_path / "store")
    write_catalogue(source, good_rows(3))
    extra = pd.DataFrame(good_rows(2, start=5000))
    buffer = __import__("io").BytesIO()
    extra.to_parquet(buffer, index=False)
    source.put_bytes("extra.parquet", buffer.getvalue())
    for row in good_rows(2, start=5000):
        source.put_bytes(f"image_train/image_{row['imageid']}_product_{row['productid']}.jpg", jpeg_bytes())
    manifest = run_ingest(source, target, engine).manifest
    assert (manifest.n_input, manifest.n_accepted) == (5, 5)
    assert len(manifest.sources) == 3


def test_empty_source_is_a_clear_error(tmp_path, engine):
    with pytest.raises(SourceError, match="generate-catalogue"):
        run_ingest(LocalObjectStore(tmp_path / "raw"), LocalObjectStore(tmp_path / "store"), engine)


def test_unreachable_s3_is_a_clear_error(tmp_path, engine):
    source = S3ObjectStore("bucket", "raw", endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ObjectStoreError, match="cannot reach S3 endpoint"):
        run_ingest(source, LocalObjectStore(tmp_path / "store"), engine)


def test_unreachable_postgres_is_a_clear_error():
    with pytest.raises(DatabaseError, match="cannot reach database"):
        make_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nothing")


def test_ids_in_non_ascii_digits_are_quarantined_not_parsed(tmp_path, engine):
    """int() and str.isdigit() read '١٢٣' as 123 and '４５６' as 456: an id is ASCII digits or quarantined."""
    source = LocalObjectStore(tmp_path / "raw")
    target = LocalObjectStore(tmp_path / "store")
    rows = good_rows(6)
    rows[1]["productid"] = "\u0661\u0662\u0663"  # Arabic-Indic 123
    rows[2]["productid"] = "\uff14\uff15\uff16"  # full-width 456
    rows[3]["imageid"] = "\uff15\uff10\uff10\uff10\uff10\uff13"  # full-width 500003
    rows[4]["prdtypecode"] = "\uff11\uff10"  # full-width 10, a known class code once parsed
    write_catalogue(source, rows)
    result = run_ingest(source, target, engine)
    manifest = result.manifest
    assert (manifest.n_input, manifest.n_accepted, manifest.n_quarantined) == (6, 2, 4)
    assert manifest.quarantine_reasons == {"invalid_type": 3, "unknown_label": 1}
    quarantine = load_quarantine(target, result.snapshot_id)
    invalid = quarantine[quarantine["reason"] == "invalid_type"]
    assert invalid["detail"].str.contains("ASCII digits 0-9").all()
    assert {json.loads(raw)["productid"] for raw in invalid["raw"]} >= {"\u0661\u0662\u0663", "\uff14\uff15\uff16"}
    assert sorted(load_products(target, result.snapshot_id)["productid"]) == [1000, 1005]


def test_images_over_the_pixel_bound_are_quarantined_as_too_large(tmp_path, engine):
    """The header's size is judged before any decode (memory is not this test's concern, the verdict is)."""
    source = LocalObjectStore(tmp_path / "raw")
    target = LocalObjectStore(tmp_path / "store")
    rows = good_rows(4)
    rows[1]["_image"] = png_bytes(5000, 5000)  # uniform: a few KB on disk, 25 megapixels decoded
    rows[2]["_image"] = png_bytes(MAX_IMAGE_SIDE + 1, 16)  # one pixel over serving's bound
    write_catalogue(source, rows)
    result = run_ingest(source, target, engine)
    manifest = result.manifest
    assert (manifest.n_input, manifest.n_accepted, manifest.n_quarantined) == (4, 2, 2)
    assert manifest.quarantine_reasons == {"image_too_large": 2}
    details = load_quarantine(target, result.snapshot_id)["detail"]
    assert details.str.contains(f"at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}").all()
    assert details.str.contains("5000x5000").any()


def test_the_pixel_bound_is_a_setting_of_the_ingest_command(tmp_path, monkeypatch):
    monkeypatch.setenv("RAKUTEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAKUTEN_INGEST_MAX_IMAGE_SIDE", "48")
    source = LocalObjectStore(tmp_path / "raw")
    rows = good_rows(3)
    rows[0]["_image"] = jpeg_bytes(size=32)
    write_catalogue(source, rows)  # the others are 64 px
    summary = run_ingest_command(source=str(tmp_path / "raw"), use_labelled_table=False)
    assert (summary["n_input"], summary["n_accepted"]) == (3, 1)
    assert summary["quarantine_reasons"] == {"image_too_large": 2}


def test_decompression_bombs_are_too_large_even_under_a_generous_side_bound():
    bomb = inspect_image(png_header(20_000, 20_000), max_side=100_000)  # PIL refuses it at open
    assert bomb is not None and bomb.reason == Reason.IMAGE_TOO_LARGE and "decompression bomb" in bomb.detail
    with pytest.warns(Image.DecompressionBombWarning):  # PIL only warns here: the contract refuses it
        warned = inspect_image(png_header(10_000, 10_000), max_side=100_000)
    assert warned is not None and warned.reason == Reason.IMAGE_TOO_LARGE and "decompression-bomb bound" in warned.detail
    assert inspect_image(jpeg_bytes()) is None
