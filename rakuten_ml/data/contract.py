"""The data contract every labelled product must satisfy before it enters a snapshot.

A row that breaks it is never dropped: it becomes a :class:`Rejection` with a reason code
and the exact place it came from, and lands in the quarantine store.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from PIL import Image

from rakuten_ml.labels import KNOWN_CODES

CONTRACT_VERSION = "1"

# Bounds with a wide margin over the real data (designation max 250 chars, description
# max 12,000): anything longer is a broken export, not a product.
MAX_DESIGNATION_CHARS = 1_000
MAX_DESCRIPTION_CHARS = 30_000
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_ID = 2**63 - 1


class Reason(StrEnum):
    MALFORMED_ROW = "malformed_row"
    MISSING_FIELD = "missing_field"
    INVALID_TYPE = "invalid_type"
    EMPTY_DESIGNATION = "empty_designation"
    TOO_LONG = "too_long"
    MISSING_LABEL = "missing_label"
    UNKNOWN_LABEL = "unknown_label"
    LABEL_WITHOUT_PRODUCT = "label_without_product"
    MISSING_IMAGE = "missing_image"
    CORRUPT_IMAGE = "corrupt_image"
    DUPLICATE_SUPERSEDED = "duplicate_superseded"


@dataclass
class RawRecord:
    """One input row as read, before validation; ``location`` is e.g. ``s3://b/X.csv:line 12``."""

    source: str
    location: str
    fields: dict[str, Any]
    image_key: str | None = None  # key of the product image in the source's object store


@dataclass
class Rejection:
    source: str
    location: str
    reason: Reason
    detail: str
    productid: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProductRow:
    productid: int
    imageid: int
    designation: str
    description: str
    prdtypecode: int


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and value == "")


def _as_id(name: str, value: Any) -> int:
    """A positive integer id; accepts '123', 123, 123.0 but not '12a' or 1.5."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{name} must be an integer, got {value!r}")
        value = int(value)
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit():
            raise ValueError(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if not 0 < number <= MAX_ID:
        raise ValueError(f"{name} must be a positive 64-bit integer, got {number}")
    return number


def _as_text(value: Any) -> str:
    if _is_missing(value):
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


def raw_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The raw row as JSON-able values, kept in quarantine so a person can fix and replay it."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, float) and math.isnan(value):
            out[str(key)] = None
        elif value is None or isinstance(value, (str, int, float, bool)):
            out[str(key)] = value
        else:
            out[str(key)] = str(value)
    return out


def validate_fields(record: RawRecord) -> ProductRow | Rejection:
    """Check types, required fields, lengths and label of one record (images are checked apart)."""
    f = record.fields

    def reject(reason: Reason, detail: str, productid: int | None = None) -> Rejection:
        return Rejection(record.source, record.location, reason, detail, productid, raw_fields(f))

    productid: int | None = None
    try:
        if _is_missing(f.get("productid")):
            return reject(Reason.MISSING_FIELD, "productid is missing")
        productid = _as_id("productid", f["productid"])
        if _is_missing(f.get("imageid")):
            return reject(Reason.MISSING_FIELD, "imageid is missing", productid)
        imageid = _as_id("imageid", f["imageid"])
        designation = _as_text(f.get("designation")).strip()
        description = _as_text(f.get("description"))
    except (TypeError, ValueError) as exc:
        return reject(Reason.INVALID_TYPE, str(exc), productid)
    if not designation:
        return reject(Reason.EMPTY_DESIGNATION, "designation is empty; every product needs a title", productid)
    if len(designation) > MAX_DESIGNATION_CHARS:
        return reject(Reason.TOO_LONG, f"designation has {len(designation)} chars > {MAX_DESIGNATION_CHARS}", productid)
    if len(description) > MAX_DESCRIPTION_CHARS:
        return reject(Reason.TOO_LONG, f"description has {len(description)} chars > {MAX_DESCRIPTION_CHARS}", productid)
    label = f.get("prdtypecode")
    if _is_missing(label):
        return reject(Reason.MISSING_LABEL, "prdtypecode is missing", productid)
    try:
        code = _as_id("prdtypecode", label)
    except (TypeError, ValueError) as exc:
        return reject(Reason.UNKNOWN_LABEL, f"prdtypecode {label!r} is not a class code: {exc}", productid)
    if code not in KNOWN_CODES:
        return reject(Reason.UNKNOWN_LABEL, f"prdtypecode {code} is not one of the 27 known classes", productid)
    return ProductRow(productid, imageid, designation, description, code)


def check_image_bytes(data: bytes) -> str | None:
    """None when ``data`` is a decodable image, else why not.

    Decodes in JPEG draft mode (1/8 scale): a truncated or garbled stream still fails,
    at a fraction of the cost of a full decode.
    """
    if not data:
        return "image file is empty"
    if len(data) > MAX_IMAGE_BYTES:
        return f"image has {len(data)} bytes > {MAX_IMAGE_BYTES}"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (64, 64))
            img.load()
            if img.width < 8 or img.height < 8:
                return f"image is {img.width}x{img.height}, too small to be a product photo"
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
        return f"image cannot be decoded: {type(exc).__name__}: {exc}"
    return None
