"""Readers for the two kinds of labelled-product source: catalogue files and a PostgreSQL table.

Readers only parse: every row becomes a :class:`RawRecord` (or a :class:`Rejection` when the
file itself is malformed at that line). Validation happens in one place, the contract.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from rakuten_ml.data.contract import (
    RawRecord,
    Reason,
    Rejection,
    has_undecodable_bytes,
    parse_integer,
    quarantined_text,
    raw_fields,
    visible_bytes,
)
from rakuten_ml.errors import DatabaseError, SourceError
from rakuten_ml.storage.database import reflect_table
from rakuten_ml.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

PRODUCT_COLUMNS = ("designation", "description", "productid", "imageid")
PARQUET_COLUMNS = (*PRODUCT_COLUMNS, "prdtypecode")

# Every field is bounded by its file, which is in memory already; the contract bounds lengths after
# parsing, so a 20 MB description is quarantined as too_long instead of aborting the file.
csv.field_size_limit(2**31 - 1)
# Below this many undecodable rows a file is never refused: a stray cp1252 byte or two is a row problem.
ENCODING_ERROR_FLOOR = 10
# An embedded line that starts like a row of the file ("123," or "\"123\","): the sign of rows merged by
# an unbalanced quote.
_ROW_START = re.compile(r'^\s*"?([0-9]+)"?,')


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
    """An id as the image file names write it: ``1007`` whether the export wrote 1007, 1007.0 or "1007.0"."""
    try:
        return str(parse_integer("id", value))
    except ValueError:
        return str(value).strip()


@dataclass
class CsvRecord:
    """One record of a challenge CSV as parsed: its first physical line, its index value and either
    its fields or the reason it cannot be used as a row."""

    line: int
    location: str
    key: str | None
    values: list[str]
    fields: dict[str, str] | None = None
    problem: tuple[Reason, str] | None = None

    def raw(self) -> dict[str, Any]:
        return raw_fields(self.fields) if self.fields is not None else {"line": quarantined_text(",".join(self.values))}

    def continuation_lines(self) -> list[tuple[int, str]]:
        """Physical lines after the first, with their offset: a record spans several only through quoted newlines."""
        if not any("\n" in v or "\r" in v for v in self.values):
            return []
        lines = ",".join(self.values).splitlines()
        return list(enumerate(lines[1:], start=1))


@dataclass
class _LabelIndex:
    """The label file's rows by index; each is taken at most once, so every label row is accounted for once:
    joined to its product (accepted or quarantined with it), or quarantined on its own."""

    labels: dict[str, tuple[str, str]]  # index -> (prdtypecode, location)
    ambiguous: dict[str, list[str]]  # index -> every label the file gives it, when more than one
    taken: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, records: list[CsvRecord], batch: SourceBatch) -> _LabelIndex:
        labels: dict[str, tuple[str, str]] = {}
        ambiguous: dict[str, list[str]] = {}
        for record in records:
            if record.problem is not None or record.fields is None or record.key is None:
                reason, detail = record.problem or (Reason.MALFORMED_ROW, "no index")
                batch.rejections.append(Rejection("files", record.location, reason, detail, None, record.raw()))
                continue
            key, label = record.key, record.fields["prdtypecode"]
            if key in labels:
                ambiguous.setdefault(key, [labels[key][0]]).append(label)
                detail = f"index {key} already has a label at {labels[key][1]}: its product is quarantined, not given either"
                batch.rejections.append(Rejection("files", record.location, Reason.DUPLICATE_INDEX, detail, None, record.raw()))
                continue
            labels[key] = (label, record.location)
        return cls(labels, ambiguous)

    def take(self, key: str | None) -> str | None:
        if key is None or key not in self.labels or key in self.taken:
            return None
        self.taken.add(key)
        return self.labels[key][0]

    def remaining(self) -> list[tuple[str, tuple[str, str]]]:
        return [(key, entry) for key, entry in self.labels.items() if key not in self.taken]


@dataclass
class CsvTable:
    records: list[CsvRecord]
    indexed: bool  # the first column is the challenge's index, which joins X to Y


def read_csv_records(data: bytes, file_label: str, expected: tuple[str, ...], *, max_encoding_error_share: float = 0.01) -> CsvTable:
    """Parse a challenge CSV into records; a bad line becomes a record with a problem, never an exception.

    The file as a whole is refused (:class:`SourceError`) only when it has no header, lacks a column,
    or is mostly in another encoding than UTF-8.
    """
    text = data.decode("utf-8-sig", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise SourceError(f"{file_label} is empty; expected a header ',{','.join(expected)}'") from None
    except csv.Error as exc:
        raise SourceError(f"{file_label}: the header line cannot be parsed as CSV ({exc})") from exc
    columns = [h.strip() for h in header]
    missing = [c for c in expected if c not in columns]
    if missing:
        raise SourceError(f"{file_label} lacks columns {missing}; header is {[visible_bytes(c) for c in columns]}")
    indexed = columns[0] in ("", "Unnamed: 0", "index")
    records: list[CsvRecord] = []
    line = 2
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # the csv module's own limits; the reader resumes at the next line
            records.append(CsvRecord(line, f"{file_label}:line {line}", None, [], problem=(Reason.MALFORMED_ROW, f"unparsable CSV: {exc}")))
            line = reader.line_num + 1
            continue
        record = CsvRecord(line, f"{file_label}:line {line}", None, values)
        line = reader.line_num + 1
        if not values:
            continue  # a blank line is not a row
        if indexed:
            record.key = values[0].strip()
        if len(values) != len(columns):
            record.problem = (Reason.MALFORMED_ROW, f"{len(values)} fields, expected {len(columns)}")
        else:
            record.fields = dict(zip(columns, values, strict=True))
            if not indexed:
                record.key = str(len(records))
        if any(has_undecodable_bytes(v) for v in values):
            record.problem = (Reason.ENCODING_ERROR, "the row holds bytes that are not UTF-8; fix them (or re-export the file as UTF-8) and replay the row")
        records.append(record)
    _refuse_other_encodings(records, file_label, max_encoding_error_share)
    return CsvTable(records, indexed)


def _refuse_other_encodings(records: list[CsvRecord], file_label: str, max_share: float) -> None:
    bad = [r.line for r in records if r.problem is not None and r.problem[0] is Reason.ENCODING_ERROR]
    if len(bad) > max(ENCODING_ERROR_FLOOR, max_share * len(records)):
        raise SourceError(
            f"{file_label} is not UTF-8: {len(bad)} of {len(records)} rows hold other bytes (first at lines "
            f"{', '.join(map(str, bad[:5]))}); re-export it as UTF-8, or raise RAKUTEN_INGEST_MAX_ENCODING_ERROR_SHARE "
            "to quarantine those rows instead"
        )


def _as_index(key: str | None) -> int | None:
    return int(key) if key is not None and key.isascii() and key.isdigit() else None


def swallowed_row_keys(record: CsvRecord, known_keys: set[str], labels: set[str], previous: str | None, following: str | None) -> list[tuple[int, str]]:
    """Index values of rows an unbalanced quote merged into ``record``, with their line offsets.

    An embedded line that starts like a row ("<index>,") is a swallowed row when no record of the file
    has that index and it either has a label of its own or lies strictly between the indices of the
    record's two neighbours: a real description that quotes a line starting "12, rue ..." meets
    neither, since consecutive rows leave no index between them.
    """
    low, high = _as_index(previous), _as_index(following)
    found: list[tuple[int, str]] = []
    for offset, text in record.continuation_lines():
        match = _ROW_START.match(text)
        if match is None or match.group(1) in known_keys:
            continue
        key = match.group(1)
        between = low is not None and high is not None and low < int(key) < high
        if key in labels or between:
            found.append((offset, key))
    return found


class CatalogueFilesSource:
    """The challenge layout in an object store: X/Y CSVs, optional Parquet files, ``image_train/``."""

    name = "files"

    def __init__(
        self,
        store: ObjectStore,
        prefix: str = "",
        *,
        x_file: str,
        y_file: str,
        image_folder: str,
        max_encoding_error_share: float,
    ) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.max_encoding_error_share = max_encoding_error_share
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
        """Join X to Y on the index, so that a product gets its own label or none, never another's."""
        x = read_csv_records(self.store.get_bytes(x_key), self.store.uri(x_key), PRODUCT_COLUMNS, max_encoding_error_share=self.max_encoding_error_share)
        y = read_csv_records(self.store.get_bytes(y_key), self.store.uri(y_key), ("prdtypecode",), max_encoding_error_share=self.max_encoding_error_share)
        labels = _LabelIndex.build(y.records, batch)
        x_counts = Counter(r.key for r in x.records if r.key is not None)
        known, label_keys = set(x_counts), set(labels.labels)
        for position, record in enumerate(x.records):
            previous = x.records[position - 1].key if position > 0 else None
            following = x.records[position + 1].key if position + 1 < len(x.records) else None
            swallowed = swallowed_row_keys(record, known, label_keys, previous, following) if x.indexed else []
            if swallowed:
                self._reject_merged(batch, record, swallowed, labels)
            elif record.problem is not None:
                label = labels.take(record.key)
                raw = record.raw() | ({"prdtypecode": label} if label is not None else {})
                batch.rejections.append(Rejection("files", record.location, record.problem[0], record.problem[1], None, raw))
            elif record.key is not None and x_counts[record.key] > 1:
                label = labels.take(record.key)
                lines = [r.line for r in x.records if r.key == record.key]
                detail = f"index {record.key} is on lines {', '.join(map(str, lines))} of {self.x_file}: its label cannot be told to belong to one of them"
                batch.rejections.append(Rejection("files", record.location, Reason.DUPLICATE_INDEX, detail, None, record.raw() | {"prdtypecode": label}))
            elif record.key in labels.ambiguous:
                labels.take(record.key)
                detail = f"index {record.key} has labels {labels.ambiguous[record.key]} in {self.y_file}: which one is right is unknown"
                batch.rejections.append(Rejection("files", record.location, Reason.DUPLICATE_INDEX, detail, None, record.raw()))
            else:
                assert record.fields is not None
                fields = {c: record.fields[c] for c in PRODUCT_COLUMNS} | {"prdtypecode": labels.take(record.key), "_location": record.location}
                batch.records.append(self._record(fields))
        for key, (label, location) in labels.remaining():
            batch.rejections.append(
                Rejection("files", location, Reason.LABEL_WITHOUT_PRODUCT, f"label row {key} has no product row in {self.x_file}", None, {"index": key, "prdtypecode": label})
            )

    def _reject_merged(self, batch: SourceBatch, record: CsvRecord, swallowed: list[tuple[int, str]], labels: _LabelIndex) -> None:
        """Quarantine a record that swallowed rows, and each swallowed row, with the label it would have had."""
        keys = [key for _, key in swallowed]
        label = labels.take(record.key)
        detail = (
            f"rows {', '.join(keys)} are inside this row's fields: an unbalanced quote merged them; fix the quote "
            "and re-export, or replay the rows from the source file"
        )
        batch.rejections.append(Rejection("files", record.location, Reason.MALFORMED_ROW, detail, None, record.raw() | {"prdtypecode": label}))
        lines = ",".join(record.values).splitlines()
        for offset, key in swallowed:
            raw = {"index": key, "line": quarantined_text(lines[offset]), "prdtypecode": labels.take(key)}
            location = f"{record.location.rsplit(':line ', 1)[0]}:line {record.line + offset}"
            batch.rejections.append(
                Rejection("files", location, Reason.MALFORMED_ROW, f"row {key} was swallowed by the unbalanced quote of line {record.line}", None, raw)
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

    def __init__(self, engine: Engine, table: str, *, image_folder: str, image_prefix: str = "") -> None:
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

