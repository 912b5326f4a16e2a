"""Ingestion's accounting rule, per run: every input row is accepted or quarantined with a reason,
no product is given another's label, and one bad object never aborts the run.

Each test here reproduces a defect found by probing ingestion with hostile inputs (issue 17)."""

from __future__ import annotations

import io
import json
import os

import pandas as pd
import pytest
import sqlalchemy as sa

from rakuten_ml.data.ingest import ingest
from rakuten_ml.data.snapshot import list_ingest_runs, load_products, load_quarantine
from rakuten_ml.errors import SourceError
from rakuten_ml.settings import IngestSettings
from rakuten_ml.storage.database import init_db, labelled_products_table, make_engine, quarantined_rows
from rakuten_ml.storage.object_store import LocalObjectStore
from tests.support.catalogues import good_rows, jpeg_bytes, write_catalogue

X_HEADER = ",designation,description,productid,imageid\n"


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    init_db(engine)
    return engine


@pytest.fixture
def source(tmp_path):
    return LocalObjectStore(tmp_path / "raw")


@pytest.fixture
def target(tmp_path):
    return LocalObjectStore(tmp_path / "store")


def run(source, target, engine, **kwargs):
    result = ingest(source_store=source, source_prefix="", target_store=target, engine=engine, policy=IngestSettings(), **kwargs)
    summary = result.summary()
    assert summary["n_input"] == summary["n_accepted"] + summary["n_quarantined"]
    assert summary["n_quarantined"] == sum(summary["quarantine_reasons"].values())
    return result


def write_files(source, x_lines: list[str], labels: dict[int, int], *, images: dict[int, int] | None = None) -> None:
    """Hand-written X lines (after the header) and a Y file; ``images`` maps productid -> imageid."""
    source.put_bytes("X_train_update.csv", (X_HEADER + "".join(x_lines)).encode())
    y = ",prdtypecode\n" + "".join(f"{index},{code}\n" for index, code in labels.items())
    source.put_bytes("Y_train_CVw08PX.csv", y.encode())
    for productid, imageid in (images or {}).items():
        source.put_bytes(f"image_train/image_{imageid}_product_{productid}.jpg", jpeg_bytes())


def line(index: int, designation: str, description: str = "desc") -> str:
    return f"{index},{designation},{description},{1000 + index},{500000 + index}\n"


IMAGES = {1000 + i: 500000 + i for i in range(6)}


def test_a_run_that_only_adds_rejected_rows_accounts_for_its_own_input(source, target, engine):
    """Defect 1: extra label rows at the end of Y left the content unchanged; the run reused the snapshot id
    and reported the earlier manifest (n_input 20 for 30 input rows, nothing quarantined)."""
    write_catalogue(source, good_rows(20))
    first = run(source, target, engine, ingest_run_id="first")
    y = source.get_bytes("Y_train_CVw08PX.csv").decode() + "".join(f"{900 + i},10\n" for i in range(10))
    source.put_bytes("Y_train_CVw08PX.csv", y.encode())
    second = run(source, target, engine, ingest_run_id="second")
    assert second.snapshot_id == first.snapshot_id and not second.created
    assert second.summary() | {"quarantine_key": None} == {
        "ingest_run_id": "second", "snapshot_id": first.snapshot_id, "created": False, "n_input": 30, "n_accepted": 20,
        "n_quarantined": 10, "quarantine_reasons": {"label_without_product": 10}, "quarantine_key": None,
    }
    # the run's own quarantine file and rows hold its 10 rows; the first run's hold none
    run_quarantine = pd.read_parquet(io.BytesIO(target.get_bytes(second.run.quarantine_key)))
    assert len(run_quarantine) == 10
    stored = pd.read_sql(sa.select(quarantined_rows), engine)
    assert stored.groupby("ingest_run_id").size().to_dict() == {"second": 10}
    assert len(load_quarantine(target, first.snapshot_id)) == 0  # the snapshot's file is its first run's
    runs = {r["ingest_run_id"]: r for r in list_ingest_runs(engine, first.snapshot_id)}
    assert {k: (r["n_input"], r["n_quarantined"], r["created_snapshot"]) for k, r in runs.items()} == {
        "first": (20, 0, True), "second": (30, 10, False),
    }


def test_a_stray_quote_quarantines_the_merged_row_and_the_row_it_swallowed(source, target, engine):
    """Defect 2: an unbalanced quote merged row 2 into row 1: product 1002 was accepted with row 1's label
    and row 2 was in neither products nor quarantine."""
    x = [line(0, "Coussin"), '1,"Titre sans fin,desc,1001,500001\n', '2,Lampe","desc c",1002,500002\n', line(3, "Livre")]
    write_files(source, x, {0: 10, 1: 2583, 2: 1560, 3: 2705}, images=IMAGES)
    result = run(source, target, engine)
    assert sorted(load_products(target, result.snapshot_id)["productid"]) == [1000, 1003]
    quarantine = load_quarantine(target, result.snapshot_id)
    assert sorted(zip(quarantine["reason"], quarantine["location"].str.rsplit(":", n=1).str[1], strict=True)) == [
        ("malformed_row", "line 3"), ("malformed_row", "line 4"),
    ]
    swallowed = json.loads(quarantine.loc[quarantine["location"].str.endswith("line 4"), "raw"].item())
    assert swallowed["index"] == "2" and swallowed["prdtypecode"] == "1560"
    assert result.summary()["n_input"] == 4


def test_an_unclosed_quote_quarantines_every_row_it_swallowed_to_the_end(source, target, engine):
    x = [line(0, "Coussin"), '1,"Titre sans fin,desc,1001,500001\n', line(2, "Lampe"), line(3, "Livre")]
    write_files(source, x, {0: 10, 1: 2583, 2: 1560, 3: 2705}, images=IMAGES)
    summary = run(source, target, engine).summary()
    assert (summary["n_input"], summary["n_accepted"], summary["quarantine_reasons"]) == (4, 1, {"malformed_row": 3})


def test_a_quoted_newline_that_looks_like_a_row_is_still_a_description(source, target, engine):
    """No false alarm: consecutive rows leave no index for an embedded '12, rue ...' line to be a swallowed row."""
    x = [line(0, "Coussin"), '1,Affiche,"Livraison à\n12, rue de la Paix",1001,500001\n', line(2, "Lampe")]
    write_files(source, x, {0: 10, 1: 2583, 2: 1560}, images=IMAGES)
    result = run(source, target, engine)
    products = load_products(target, result.snapshot_id)
    assert sorted(products["productid"]) == [1000, 1001, 1002]
    assert products.loc[products["productid"] == 1001, "description"].item() == "Livraison à\n12, rue de la Paix"


def test_a_duplicated_index_in_x_quarantines_both_rows_instead_of_sharing_a_label(source, target, engine):
    """Defect 3: products are joined to labels by the CSV index; a second row with index 1 took row 1's label."""
    x = [line(0, "Coussin"), line(1, "Lampe"), "1,Livre,desc,1004,500004\n", line(2, "Jouet")]
    write_files(source, x, {0: 10, 1: 2583, 2: 1560}, images=IMAGES | {1004: 500004})
    result = run(source, target, engine)
    assert sorted(load_products(target, result.snapshot_id)["productid"]) == [1000, 1002]
    quarantine = load_quarantine(target, result.snapshot_id)
    assert list(quarantine["reason"]) == ["duplicate_index", "duplicate_index"]
    assert all("lines 3, 4" in detail for detail in quarantine["detail"])
    assert result.summary()["n_input"] == 4


def test_two_labels_for_one_index_quarantine_the_product_and_the_extra_label(source, target, engine):
    source.put_bytes("X_train_update.csv", (X_HEADER + line(0, "Coussin") + line(1, "Lampe")).encode())
    source.put_bytes("Y_train_CVw08PX.csv", b",prdtypecode\n0,10\n1,2583\n1,1560\n")
    for productid, imageid in IMAGES.items():
        source.put_bytes(f"image_train/image_{imageid}_product_{productid}.jpg", jpeg_bytes())
    result = run(source, target, engine)
    assert list(load_products(target, result.snapshot_id)["productid"]) == [1000]
    assert result.summary()["quarantine_reasons"] == {"duplicate_index": 2}
    assert result.summary()["n_input"] == 3  # two product lines and the label line no product could take


def test_a_20_mb_description_is_quarantined_as_too_long_and_the_rest_goes_through(source, target, engine):
    """Defect 5: csv's field limit raised `_csv.Error: field larger than field limit` and aborted the file."""
    rows = good_rows(6)
    rows[2]["description"] = "x" * (20 * 1024 * 1024)
    write_catalogue(source, rows)
    result = run(source, target, engine)
    assert result.summary()["quarantine_reasons"] == {"too_long": 1}
    assert result.summary()["n_accepted"] == 5
    raw = json.loads(load_quarantine(target, result.snapshot_id)["raw"].item())
    assert raw["description"].endswith("more chars cut]") and len(raw["description"]) < 200_000


def test_a_folder_or_a_link_loop_where_a_photo_should_be_quarantines_that_row(source, target, engine, tmp_path):
    """Defect 5: a directory named .jpg (IsADirectoryError) and a symlink loop (ELOOP) aborted the run."""
    rows = good_rows(6)
    rows[1]["_image"] = "missing"
    rows[2]["_image"] = "missing"
    write_catalogue(source, rows)
    folder = tmp_path / "raw" / "image_train"
    (folder / f"image_{rows[1]['imageid']}_product_{rows[1]['productid']}.jpg").mkdir()
    loop = folder / f"image_{rows[2]['imageid']}_product_{rows[2]['productid']}.jpg"
    os.symlink(loop, loop)
    result = run(source, target, engine)
    quarantine = load_quarantine(target, result.snapshot_id)
    assert dict(zip(quarantine["productid"], quarantine["reason"], strict=True)) == {1001: "unreadable_image", 1002: "unreadable_image"}
    assert "link loop" in " ".join(quarantine["detail"])
    assert result.summary()["n_accepted"] == 4


def test_a_labelled_row_whose_image_key_leaves_the_store_is_quarantined_alone(source, target, engine):
    """Defect 5: an image key with '..' in the labelled-products table ended the whole run with exit 2."""
    write_catalogue(source, good_rows(4))
    table = labelled_products_table("labelled_products")
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [
            {"productid": 9001, "imageid": 9001, "designation": "Roman", "description": "", "prdtypecode": 10, "image_key": "../../etc/passwd"},
            {"productid": 9002, "imageid": 9002, "designation": "Roman poche", "description": "", "prdtypecode": 10, "image_key": "feedback/9002.jpg"},
        ])
    source.put_bytes("feedback/9002.jpg", jpeg_bytes())
    result = run(source, target, engine, labelled_engine=engine)
    assert result.summary()["quarantine_reasons"] == {"invalid_image_key": 1}
    assert 9002 in set(load_products(target, result.snapshot_id)["productid"])


def test_a_stray_cp1252_byte_quarantines_its_row_with_encoding_error(source, target, engine):
    """The decision: one row with a non-UTF-8 byte is that row's problem; the file is not refused whole."""
    rows = good_rows(20)
    write_catalogue(source, rows)
    data = source.get_bytes("X_train_update.csv").replace("Produit numéro 7 ".encode(), "Produit num\xe9ro 7 ".encode("cp1252"))
    source.put_bytes("X_train_update.csv", data)
    result = run(source, target, engine)
    quarantine = load_quarantine(target, result.snapshot_id)
    assert list(quarantine["reason"]) == ["encoding_error"]
    assert quarantine["location"].item().endswith("X_train_update.csv:line 9")
    assert "num\\xe9ro 7" in json.loads(quarantine["raw"].item())["designation"]
    assert result.summary()["n_accepted"] == 19


def test_a_file_exported_in_cp1252_is_refused_naming_its_first_bad_lines(source, target, engine):
    rows = good_rows(40)
    write_catalogue(source, rows)
    source.put_bytes("X_train_update.csv", source.get_bytes("X_train_update.csv").decode().encode("cp1252"))
    with pytest.raises(SourceError, match=r"not UTF-8: 40 of 40 rows .* lines 2, 3, 4, 5, 6\); re-export it as UTF-8"):
        run(source, target, engine)
