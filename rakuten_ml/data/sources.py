"""Readers for the two kinds of labelled-product source: catalogue files and a PostgreSQL table.

Readers only parse: every row becomes a :class:`RawRecord` (or a :class:`Rejection` when the
file itself is malformed at that line). Validation happens in one place, the contract.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from rakuten_ml.data.contract import RawRecord, Reason, Rejection
from rakuten_ml.errors import DatabaseError, SourceError
from rakuten_ml.storage.database import reflect_table
from rakuten_ml.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

PRODUCT_COLUMNS = ("designation", "description", "productid", "imageid")
PARQUET_COLUMNS = (*PRODUCT_COLUMNS, "prdtypecode")

# The real description field reaches 12,000 chars; csv's default field limit (128 KiB) is fine,
# but raise it so one pathological field is quarantined by the contract instead of aborting the file.
csv.field_size_limit(16 * 1024 * 1024)


@dataclass
class SourceBatch:
    """What one source yielded: parsed records, rows rejected while parsing, and version info."""

    name: str
    records: list[RawRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def n_input(self) -> int:
        return len(self.records) + len(self.rejections)


def image_key_for(prefix: str, image_folder: str, imageid: Any, productid: Any) -> str:
    """The challenge's image naming: ``image_<imageid>_product_<productid>.jpg``."""
    name = f"image_{_id_text(imageid)}_product_{_id_text(productid)}.jpg"
    return "/".join(p.strip("/") for p in (prefix, image_folder, name) if p and p.strip("/"))


def _id_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_csv_rows(data: bytes, file_label: str, expected: tuple[str, ...]) -> tuple[list[tuple[str, dict[str, str]]], list[Rejection]]:
    """Rows of a challenge CSV keyed by its index column; lines with the wrong shape are rejected."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{file_label} is not UTF-8 text ({exc}); re-export it as UTF-8 CSV") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise SourceError(f"{file_label} is empty; expected a header ',{','.join(expected)}'") from None
    columns = [h.strip() for h in header]
    missing = [c for c in expected if c not in columns]
    if missing:
        raise SourceError(f"{file_label} lacks columns {missing}; header is {columns}")
    index_pos = 0 if columns[0] in ("", "Unnamed: 0", "index") else None
    rows: list[tuple[str, dict[str, str]]] = []
    rejections: list[Rejection] = []
    start_line = 2
    for values in reader:
        line = f"{file_label}:line {start_line}"
        start_line = reader.line_num + 1
        if len(values) != len(columns):
            raw = {"line": ",".join(values)[:2000]}
            rejections.append(
                Rejection("files", line, Reason.MALFORMED_ROW, f"{len(values)} fields, expected {len(columns)}", None, raw)
            )
            continue
        fields = dict(zip(columns, values, strict=True))
        key = values[index_pos].strip() if index_pos is not None else str(len(rows))
        rows.append((key, fields | {"_location": line}))
    return rows, rejections


class CatalogueFilesSource:
    """The challenge layout in an object store: X/Y CSVs, optional Parquet files, ``image_train/``."""

    name = "files"

    def __init__(
        self,
        store: ObjectStore,
        prefix: str = "",
        *,
        x_file: str = "X_train_update.csv",
        y_file: str = "Y_train_CVw08PX.csv",
        image_folder: str = "image_train",
    ) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.x_file = x_file
        self.y_file = y_file
        self.image_folder = image_folder

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def read(self) -> SourceBatch:
        batch = SourceBatch(self.name)
        self.store.check()
        keys = {info.key: info for info in self.store.list(self.prefix)}
        x_key, y_key = self._key(self.x_file), self._key(self.y_file)
        parquet_keys = sorted(k for k in keys if k.endswith(".parquet") and "/" not in k[len(self.prefix) + 1 :])
        if x_key not in keys and not parquet_keys:
            raise SourceError(
                f"no catalogue at {self.store.uri(self.prefix or '.')}: expected {self.x_file} + {self.y_file} "
                "or *.parquet files; generate one with `rakuten-ml generate-catalogue` or fix the source URL"
            )
        if x_key in keys:
            if y_key not in keys:
                raise SourceError(f"{self.store.uri(x_key)} has no label file {self.y_file} beside it")
            batch.versions[self.store.uri(x_key)] = keys[x_key].version
            batch.versions[self.store.uri(y_key)] = keys[y_key].version
            self._read_challenge_csvs(batch, x_key, y_key)
        for key in parquet_keys:
            batch.versions[self.store.uri(key)] = keys[key].version
            self._read_parquet(batch, key)
        log.info("read %d records (%d malformed) from %s", len(batch.records), len(batch.rejections), self.store.uri(self.prefix or "."))
        return batch

    def _read_challenge_csvs(self, batch: SourceBatch, x_key: str, y_key: str) -> None:
        x_rows, x_bad = _read_csv_rows(self.store.get_bytes(x_key), self.store.uri(x_key), PRODUCT_COLUMNS)
        y_rows, y_bad = _read_csv_rows(self.store.get_bytes(y_key), self.store.uri(y_key), ("prdtypecode",))
        batch.rejections.extend(x_bad + y_bad)
        labels: dict[str, tuple[str, str]] = {}
        for index, fields in y_rows:
            if index in labels:
                batch.rejections.append(
                    Rejection("files", fields["_location"], Reason.MALFORMED_ROW, f"index {index} appears twice in the label file", None, {"index": index})
                )
                continue
            labels[index] = (fields["prdtypecode"], fields["_location"])
        seen: set[str] = set()
        for index, fields in x_rows:
            label = labels.get(index)
            fields = {c: fields[c] for c in PRODUCT_COLUMNS} | {"prdtypecode": label[0] if label else None, "_location": fields["_location"]}
            seen.add(index)
            batch.records.append(self._record(fields))
        for index, (label, location) in labels.items():
            if index not in seen:
                batch.rejections.append(
                    Rejection("files", location, Reason.LABEL_WITHOUT_PRODUCT, f"label row {index} has no product row in {self.x_file}", None, {"index": index, "prdtypecode": label})
                )

    def _read_parquet(self, batch: SourceBatch, key: str) -> None:
        try:
            frame = pd.read_parquet(io.BytesIO(self.store.get_bytes(key)))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for broken files
            raise SourceError(f"{self.store.uri(key)} is not a readable Parquet file: {exc}") from exc
        missing = [c for c in PARQUET_COLUMNS if c not in frame.columns]
        if missing:
            raise SourceError(f"{self.store.uri(key)} lacks columns {missing}")
        for position, row in enumerate(frame[list(PARQUET_COLUMNS)].to_dict("records")):
            batch.records.append(self._record(row | {"_location": f"{self.store.uri(key)}:row {position}"}))

    def _record(self, fields: dict[str, Any]) -> RawRecord:
        location = fields.pop("_location")
        image_key = None
        if fields.get("imageid") not in (None, "") and fields.get("productid") not in (None, ""):
            image_key = image_key_for(self.prefix, self.image_folder, fields["imageid"], fields["productid"])
        return RawRecord(self.name, location, fields, image_key)


class PostgresLabelledSource:
    """Human-labelled products in a database table, read oldest label first (newest wins later)."""

    name = "postgres"

    def __init__(self, engine: Engine, table: str, *, image_prefix: str = "", image_folder: str = "image_train") -> None:
        self.engine = engine
        self.table_name = table
        self.image_prefix = image_prefix
        self.image_folder = image_folder

    def read(self, since: Any | None = None) -> SourceBatch:
        batch = SourceBatch(self.name)
        table = reflect_table(self.engine, self.table_name)
        stmt = sa.select(table).order_by(table.c.labelled_at, table.c.productid)
        if since is not None:
            stmt = stmt.where(table.c.labelled_at > sa.bindparam("since", since))
        try:
            with self.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(stmt)]
                newest = conn.execute(sa.select(sa.func.max(table.c.labelled_at), sa.func.count()).select_from(table)).one()
        except OperationalError as exc:
            raise DatabaseError(f"cannot read {self.table_name!r}: {exc.orig}; check the database is up") from exc
        url = self.engine.url.render_as_string(hide_password=True)
        batch.versions[f"{url}#{self.table_name}"] = f"{newest[1]} rows, newest {newest[0]}"
        for row in rows:
            image_key = row.get("image_key") or None
            if image_key is None and row.get("imageid") is not None and row.get("productid") is not None:
                image_key = image_key_for(self.image_prefix, self.image_folder, row["imageid"], row["productid"])
            fields = {c: row.get(c) for c in PARQUET_COLUMNS}
            location = f"{self.table_name}:productid={row.get('productid')}"
            batch.records.append(RawRecord(self.name, location, fields, image_key))
        log.info("read %d labelled products from table %s", len(rows), self.table_name)
        return batch

