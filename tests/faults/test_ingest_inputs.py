"""Hostile and ordinary-but-awkward inputs, each ingested into PostgreSQL: every case is quarantined with
its reason or refused whole with a clear message, and after every case the accounting rule is checked
row by row (each product line of X is accepted or quarantined, exactly once).

The figures of the last run (cases, rows reconciled, rows lost) are written to
``var/faults/ingest_inputs.json`` (tests.faults.figures) for docs/reliability.md."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from rakuten_ml.data.ingest import ingest
from rakuten_ml.data.snapshot import latest_snapshot_id, load_products
from rakuten_ml.errors import SourceError
from rakuten_ml.settings import IngestSettings
from rakuten_ml.storage.database import count_rows, ingest_runs, init_db, make_engine, quarantined_rows
from rakuten_ml.storage.object_store import LocalObjectStore
from tests.faults.figures import record_figures
from tests.support.catalogues import good_rows, jpeg_bytes, png_bytes, png_header, write_catalogue

pytestmark = pytest.mark.faults

N_ROWS = 30
X_FILE, Y_FILE = "X_train_update.csv", "Y_train_CVw08PX.csv"


@dataclass(frozen=True)
class Case:
    """One input: how to spoil a clean catalogue, and what ingestion must make of it."""

    mutate: Callable[[LocalObjectStore, list[dict], Path], None]
    reasons: dict[str, int]  # expected quarantine reasons; {} = everything accepted
    n_input: int = N_ROWS
    refused: str | None = None  # a SourceError matching this, instead of a snapshot


def _rewrite(store: LocalObjectStore, name: str, change: Callable[[bytes], bytes]) -> None:
    store.put_bytes(name, change(store.get_bytes(name)))


def _image_path(root: Path, row: dict) -> Path:
    return root / "image_train" / f"image_{row['imageid']}_product_{row['productid']}.jpg"


def _set(index: int, **fields: object) -> Callable[[LocalObjectStore, list[dict], Path], None]:
    def mutate(store: LocalObjectStore, rows: list[dict], root: Path) -> None:
        rows[index].update(fields)
        write_catalogue(store, rows)
    return mutate


def _text(change: Callable[[str], str], name: str = X_FILE, encoding: str = "utf-8") -> Callable[[LocalObjectStore, list[dict], Path], None]:
    def mutate(store: LocalObjectStore, rows: list[dict], root: Path) -> None:
        write_catalogue(store, rows)
        _rewrite(store, name, lambda data: change(data.decode()).encode(encoding))
    return mutate


def _bytes(change: Callable[[bytes], bytes], name: str = X_FILE) -> Callable[[LocalObjectStore, list[dict], Path], None]:
    def mutate(store: LocalObjectStore, rows: list[dict], root: Path) -> None:
        write_catalogue(store, rows)
        _rewrite(store, name, change)
    return mutate


def _image(index: int, make: Callable[[Path], None]) -> Callable[[LocalObjectStore, list[dict], Path], None]:
    def mutate(store: LocalObjectStore, rows: list[dict], root: Path) -> None:
        rows[index]["_image"] = "missing"
        write_catalogue(store, rows)
        make(_image_path(root, rows[index]))
    return mutate


def _x_line(n: int) -> Callable[[str], str]:
    """Replace X's line for row ``n`` (0-based) through a function of its text."""
    def change(text: str, edit: Callable[[str], str]) -> str:
        lines = text.split("\n")
        lines[n + 1] = edit(lines[n + 1])
        return "\n".join(lines)
    return lambda edit: (lambda text: change(text, edit))  # type: ignore[return-value]


def _symlink_loop(path: Path) -> None:
    os.symlink(path, path)


CASES: dict[str, Case] = {
    "clean": Case(lambda s, r, p: write_catalogue(s, r), {}),
    "utf8_bom": Case(_bytes(lambda d: b"\xef\xbb\xbf" + d), {}),
    "crlf_line_endings": Case(_text(lambda t: t.replace("\n", "\r\n")), {}),
    "quoted_newlines": Case(_set(3, description="ligne un\nligne deux, \"citée\"\nfin"), {}),
    "reordered_columns": Case(_text(lambda t: "\n".join(
        ",".join(f[i] for i in (0, 4, 3, 2, 1)) for f in (line.split(",") for line in t.split("\n")) if len(f) == 5
    ) + "\n"), {}),
    "extra_column": Case(_text(lambda t: "\n".join(line + ",extra" for line in t.rstrip("\n").split("\n")) + "\n"), {}),
    "missing_column": Case(_text(lambda t: t.replace(",imageid", ",image")), {}, refused="lacks columns \\['imageid'\\]"),
    "empty_file": Case(_bytes(lambda d: b""), {}, refused="is empty"),
    "one_cp1252_byte": Case(_bytes(lambda d: d.replace("numéro 4 ".encode(), b"num\xe9ro 4 ")), {"encoding_error": 1}),
    "whole_file_latin1": Case(_text(lambda t: t, encoding="latin-1"), {}, refused="is not UTF-8"),
    "nul_byte_in_designation": Case(_set(2, designation="Coussin\x00piscine"), {}),
    "huge_designation": Case(_set(5, designation="x" * 5000), {"too_long": 1}),
    "huge_description_20mb": Case(_set(6, description="y" * (20 * 1024 * 1024)), {"too_long": 1}),
    "nan_productid": Case(_set(7, productid=float("nan")), {"missing_field": 1}),
    "negative_productid": Case(_set(8, productid=-5), {"invalid_type": 1}),
    "huge_productid": Case(_set(9, productid=2**70), {"invalid_type": 1}),
    "arabic_indic_digits": Case(_set(10, productid="\u0661\u0662\u0663"), {"invalid_type": 1}),
    "unknown_label": Case(_set(11, prdtypecode=1234), {"unknown_label": 1}),
    "missing_label": Case(_text(lambda t: t.replace("\n12,", "\n112,", 1), name=Y_FILE), {"missing_label": 1, "label_without_product": 1}, n_input=N_ROWS + 1),
    "extra_label_rows": Case(_text(lambda t: t + "".join(f"{900 + i},10\n" for i in range(10)), name=Y_FILE), {"label_without_product": 10}, n_input=N_ROWS + 10),
    "stray_quote": Case(_text(_x_line(13)(lambda line: line.replace(",", ',"', 1))), {"malformed_row": 0}),  # count checked apart
    "duplicated_x_index": Case(_text(_x_line(14)(lambda line: "13" + line[2:])), {"duplicate_index": 2, "label_without_product": 1}, n_input=N_ROWS + 1),
    "duplicated_y_index": Case(_text(lambda t: t + "15,2583\n", name=Y_FILE), {"duplicate_index": 2}, n_input=N_ROWS + 1),
    "wrong_field_count": Case(_text(_x_line(16)(lambda line: line + ",surplus")), {"malformed_row": 1}),
    "blank_lines": Case(_text(lambda t: t.replace("\n", "\n\n", 3)), {}),
    "corrupt_image": Case(_set(17, _image=b"not an image at all"), {"corrupt_image": 1}),
    "truncated_jpeg": Case(_set(18, _image=jpeg_bytes()[:200]), {"corrupt_image": 1}),
    "zero_byte_image": Case(_set(19, _image=b""), {"corrupt_image": 1}),
    "png_named_jpg": Case(_set(20, _image=png_bytes(64, 64)), {}),
    "missing_image": Case(_set(21, _image="missing"), {"missing_image": 1}),
    "oversized_png": Case(_set(22, _image=png_bytes(9400, 9400)), {"image_too_large": 1}),
    "decompression_bomb": Case(_set(23, _image=png_header(30_000, 30_000)), {"image_too_large": 1}),
    "folder_named_jpg": Case(_image(24, lambda path: path.mkdir(parents=True)), {"unreadable_image": 1}),
    "symlink_loop": Case(_image(25, _symlink_loop), {"unreadable_image": 1}),
}

_FIGURES: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module")
def figures():
    yield _FIGURES
    record_figures("ingest_inputs", {
        "cases": len(_FIGURES),
        "rows_reconciled": sum(f["rows"] for f in _FIGURES.values()),
        "rows_lost": sum(f["lost"] for f in _FIGURES.values()),
        "rows_counted_twice": sum(f["twice"] for f in _FIGURES.values()),
        "refused_whole": sum(f["refused"] for f in _FIGURES.values()),
    })


@pytest.mark.parametrize("name", list(CASES))
def test_every_input_row_is_accepted_or_quarantined_exactly_once(name, tmp_path, pg_url, figures):
    case = CASES[name]
    source = LocalObjectStore(tmp_path / "raw")
    target = LocalObjectStore(tmp_path / "store")
    engine = make_engine(pg_url)
    init_db(engine)
    rows = good_rows(N_ROWS)
    case.mutate(source, rows, tmp_path / "raw")
    if case.refused:
        with pytest.raises(SourceError, match=case.refused):
            ingest(source_store=source, source_prefix="", target_store=target, engine=engine, policy=IngestSettings())
        # refused whole: nothing indexed, nothing half-written
        assert count_rows(engine, ingest_runs) == count_rows(engine, quarantined_rows) == 0
        figures[name] = {"rows": N_ROWS, "lost": 0, "twice": 0, "refused": 1}
        return
    result = ingest(source_store=source, source_prefix="", target_store=target, engine=engine, ingest_run_id=f"case-{name}", policy=IngestSettings())
    summary = result.summary()
    products = load_products(target, result.snapshot_id)
    quarantine = pd.read_sql(f"SELECT * FROM quarantined_rows WHERE ingest_run_id = 'case-{name}'", engine)  # noqa: S608 - test-made id
    reasons = quarantine["reason"].value_counts().to_dict()
    if name == "stray_quote":  # the merged row and every row it swallowed; how many depends on the next quote
        assert set(reasons) == {"malformed_row"} and reasons["malformed_row"] >= 2
    else:
        assert reasons == case.reasons
    assert summary["n_input"] == case.n_input == len(products) + len(quarantine)
    assert summary["n_quarantined"] == len(quarantine) and summary["n_accepted"] == len(products)
    assert latest_snapshot_id(engine) == result.snapshot_id
    # Row by row: each X product line (by its line number) is accepted or quarantined, never both, never neither.
    x_lines = _x_line_numbers(source)
    accepted_lines = [_line_of(loc) for loc in products["location"] if X_FILE in loc]
    quarantined_lines = [_line_of(loc) for loc in quarantine["location"] if X_FILE in loc]
    seen = accepted_lines + quarantined_lines
    lost = sorted(set(x_lines) - set(seen))
    twice = len(seen) - len(set(seen))
    assert not lost and not twice, f"lost lines {lost}, {twice} counted twice"
    # no product carries a label other than its own line's
    truth = {row["productid"]: row["prdtypecode"] for row in rows if isinstance(row["productid"], int)}
    for productid, code in zip(products["productid"], products["prdtypecode"], strict=True):
        assert truth[productid] == code, f"product {productid} labelled {code}, its own label is {truth[productid]}"
    figures[name] = {"rows": len(x_lines), "lost": len(lost), "twice": twice, "refused": 0}


def _line_of(location: str) -> int:
    return int(location.rsplit(":line ", 1)[1])


def _x_line_numbers(source: LocalObjectStore) -> list[int]:
    """The physical line of every product row of X as a person counts them: a line that starts with an index."""
    text = source.get_bytes(X_FILE).decode("utf-8-sig", errors="replace").replace("\r\n", "\n")
    lines = text.split("\n")
    header = lines[0].split(",")
    index_first = header[0] == ""
    return [number for number, line in enumerate(lines[1:], start=2) if line and index_first and line.split(",")[0].isdigit()]
