"""The data contract every labelled product must satisfy before it enters a snapshot.

A row that breaks it is never dropped: it becomes a :class:`Rejection` with a reason code
and the exact place it came from, and lands in the quarantine store.
"""

from __future__ import annotations

import io
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from PIL import Image

from rakuten_ml.data.limits import MAX_DESCRIPTION_CHARS as MAX_DESCRIPTION_CHARS
from rakuten_ml.data.limits import MAX_DESIGNATION_CHARS as MAX_DESIGNATION_CHARS
from rakuten_ml.data.limits import MAX_ID as MAX_ID
from rakuten_ml.data.limits import MAX_IMAGE_BYTES as MAX_IMAGE_BYTES
from rakuten_ml.data.limits import MAX_IMAGE_SIDE as MAX_IMAGE_SIDE
from rakuten_ml.labels import KNOWN_CODES

CONTRACT_VERSION = "1"

# A quarantined field is kept whole up to this size so a person can fix and replay the row; beyond it
# (a 20 MB description is a broken export) it is cut, and the row's location names the full original.
MAX_QUARANTINED_FIELD_CHARS = 100_000
# ASCII digits only: str.isdigit() and int() also take '١٢٣' or '４５６', which no export writes. A ".0"
# tail is an integer too: pandas writes a whole id column as floats as soon as one of its cells is empty.
_ASCII_INTEGER = re.compile(r"-?([0-9]+)(?:\.0+)?")
# What a ``surrogateescape`` decode makes of a byte that is not UTF-8 (a stray cp1252 "é", say).
_UNDECODABLE = re.compile("[\udc80-\udcff]")


class Reason(StrEnum):
    MALFORMED_ROW = "malformed_row"
    ENCODING_ERROR = "encoding_error"
    DUPLICATE_INDEX = "duplicate_index"
    MISSING_FIELD = "missing_field"
    INVALID_TYPE = "invalid_type"
    EMPTY_DESIGNATION = "empty_designation"
    TOO_LONG = "too_long"
    MISSING_LABEL = "missing_label"
    UNKNOWN_LABEL = "unknown_label"
    LABEL_WITHOUT_PRODUCT = "label_without_product"
    MISSING_IMAGE = "missing_image"
    INVALID_IMAGE_KEY = "invalid_image_key"
    UNREADABLE_IMAGE = "unreadable_image"
    CORRUPT_IMAGE = "corrupt_image"
    IMAGE_TOO_LARGE = "image_too_large"
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


def parse_integer(name: str, value: Any) -> int:
    """An int from an int, an integral float/Decimal or a string of ASCII digits; nothing else.

    ``int()`` accepts any Unicode digit and ``bool`` is an int: an id must not depend on the
    script it was typed in, nor be a flag, so those are refused here rather than coerced.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got a boolean")
    if isinstance(value, numbers.Integral):  # int and numpy integers
        return int(value)
    if isinstance(value, Decimal):  # NUMERIC columns: compared exactly, never through a float
        if not value.is_finite() or value != value.to_integral_value():
            raise ValueError(f"{name} must be an integer, got {_shown(value)}")
        return int(value)
    if isinstance(value, numbers.Real):  # float, numpy floats
        as_float = float(value)
        if not math.isfinite(as_float) or as_float != int(as_float):
            raise ValueError(f"{name} must be an integer, got {_shown(value)}")
        return int(as_float)
    if isinstance(value, str):
        text = value.strip()
        match = _ASCII_INTEGER.fullmatch(text)
        if match is None:
            raise ValueError(f"{name} must be an integer written in ASCII digits 0-9, got {_shown(text)}")
        return -int(match.group(1)) if text.startswith("-") else int(match.group(1))
    raise ValueError(f"{name} must be an integer, got {type(value).__name__}")


def _shown(value: Any, limit: int = 40) -> str:
    """``repr`` cut short: an error message must not carry a 30,000-character field back."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _as_id(name: str, value: Any) -> int:
    """A positive 64-bit id; accepts '123', 123, 123.0 but not '12a', 1.5 or '١٢٣'."""
    number = parse_integer(name, value)
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
        elif isinstance(value, str):
            out[str(key)] = quarantined_text(value)
        elif value is None or isinstance(value, (int, float, bool)):
            out[str(key)] = value
        else:
            out[str(key)] = quarantined_text(str(value))
    return out


def quarantined_text(value: str) -> str:
    """Text as quarantine stores it: undecodable bytes shown as ``\\xNN``, cut beyond a bound."""
    text = visible_bytes(value)
    if len(text) > MAX_QUARANTINED_FIELD_CHARS:
        return f"{text[:MAX_QUARANTINED_FIELD_CHARS]}... [{len(text) - MAX_QUARANTINED_FIELD_CHARS} more chars cut]"
    return text


def visible_bytes(text: str) -> str:
    """Bytes a ``surrogateescape`` decode could not read, written as ``\\xNN`` so JSON and a person can see them."""
    if not has_undecodable_bytes(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def has_undecodable_bytes(text: str) -> bool:
    return _UNDECODABLE.search(text) is not None


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


@dataclass(frozen=True)
class ImageProblem:
    """Why an image is refused: the quarantine reason and a detail for a person."""

    reason: Reason
    detail: str


def image_size_problem(width: int, height: int, max_side: int = MAX_IMAGE_SIDE) -> str | None:
    """The pixel rule serving and ingestion share, judged on the header's size alone."""
    if width > max_side or height > max_side:
        return f"image is {width}x{height} pixels; at most {max_side}x{max_side} is accepted"
    if Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS:
        return f"image is {width}x{height} pixels, over PIL's decompression-bomb bound of {Image.MAX_IMAGE_PIXELS}"
    return None


def inspect_image(data: bytes, *, max_side: int = MAX_IMAGE_SIDE) -> ImageProblem | None:
    """None when ``data`` is a bounded, decodable image, else why not.

    The header's size is checked before any pixel is decoded: decoding a 10,000 px PNG costs
    hundreds of MB whatever its size on disk. Then a JPEG draft-mode decode (1/8 scale): a
    truncated or garbled stream still fails, at a fraction of the cost of a full decode.
    """
    if not data:
        return ImageProblem(Reason.CORRUPT_IMAGE, "image file is empty")
    if len(data) > MAX_IMAGE_BYTES:
        return ImageProblem(Reason.CORRUPT_IMAGE, f"image has {len(data)} bytes > {MAX_IMAGE_BYTES}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            too_large = image_size_problem(img.width, img.height, max_side)
            if too_large:
                return ImageProblem(Reason.IMAGE_TOO_LARGE, too_large)
            img.draft("RGB", (64, 64))
            img.load()
            if img.width < 8 or img.height < 8:
                return ImageProblem(Reason.CORRUPT_IMAGE, f"image is {img.width}x{img.height}, too small to be a product photo")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return ImageProblem(Reason.IMAGE_TOO_LARGE, f"image is a decompression bomb: {exc}")
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
        return ImageProblem(Reason.CORRUPT_IMAGE, f"image cannot be decoded: {type(exc).__name__}: {exc}")
    return None


def check_image_bytes(data: bytes, *, max_side: int = MAX_IMAGE_SIDE) -> str | None:
    """:func:`inspect_image`'s detail alone, for callers that only need a message (serving)."""
    problem = inspect_image(data, max_side=max_side)
    return problem.detail if problem else None
