"""The API's request and response bodies: every bound a client can hit is checked here.

Text bounds are the data contract's, so serving accepts exactly what training could have
seen; images are bounded in bytes and pixels before any full decode.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema, field_validator, model_validator

from rakuten_ml.data.contract import (
    MAX_DESCRIPTION_CHARS,
    MAX_DESIGNATION_CHARS,
    MAX_ID,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_SIDE,
    check_image_bytes,
    image_size_problem,
    parse_integer,
)
from rakuten_ml.labels import CLASS_CODES, KNOWN_CODES

MAX_IMAGE_BASE64_CHARS = 4 * math.ceil(MAX_IMAGE_BYTES / 3)
_BASE64_SLACK = 1024  # line breaks of MIME-wrapped base64
# Schema ceiling of a batch; the runtime limit is Settings.serving.max_batch_size (default 64).
HARD_MAX_BATCH = 1024
TOP_K = 3
_WHITESPACE = re.compile(r"\s+")


def check_image(data: bytes) -> None:
    """Raise ValueError when ``data`` is not a bounded, decodable image (header first, then draft decode)."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"image has {len(data)} bytes > {MAX_IMAGE_BYTES}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for what is not an image
        raise ValueError(f"image is not a readable image file ({type(exc).__name__})") from None
    too_large = image_size_problem(width, height, MAX_IMAGE_SIDE)
    if too_large:
        raise ValueError(too_large)
    problem = check_image_bytes(data, max_side=MAX_IMAGE_SIDE)
    if problem:
        raise ValueError(problem)


def parse_productid(value: Any) -> int | None:
    """The data contract's id rule, so serving and ingestion agree on what a productid is.

    Pydantic's lax int would also take ``true`` as 1 or ``"1_000"`` as 1000; the range is
    left to the field's bounds.
    """
    return None if value is None else parse_integer("productid", value)


def decode_image_base64(value: Any) -> bytes:
    """base64 text -> bounded, decodable image bytes: the one decode an inline image gets."""
    if isinstance(value, (bytes, bytearray)):  # already decoded (Python callers, re-validation)
        data = bytes(value)
    elif not isinstance(value, str):
        raise ValueError("image_base64 must be a base64 string")
    elif len(value) > MAX_IMAGE_BASE64_CHARS + _BASE64_SLACK:
        raise ValueError(f"image_base64 has {len(value)} characters; an image of at most {MAX_IMAGE_BYTES} bytes needs fewer")
    else:
        data = _b64decode(value)
    if not data:
        raise ValueError("image_base64 is empty")
    check_image(data)
    return data


def _b64decode(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:  # MIME-style base64 wrapped in lines: stripping whitespace is the only leniency
        return base64.b64decode(_WHITESPACE.sub("", value), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("image_base64 is not valid base64") from None


ImageBase64 = Annotated[
    bytes,
    PlainValidator(decode_image_base64),
    PlainSerializer(lambda data: base64.b64encode(data).decode("ascii"), return_type=str),
    WithJsonSchema({"type": "string", "contentEncoding": "base64", "maxLength": MAX_IMAGE_BASE64_CHARS + _BASE64_SLACK}),
]


class ProductIn(BaseModel):
    """One product to classify. At most one of ``image_base64`` and ``image_key``."""

    model_config = ConfigDict(extra="forbid")

    productid: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Needed for sticky A/B routing; without it the champion answers."
    )
    designation: str = Field(default="", max_length=MAX_DESIGNATION_CHARS, description="Product title.")
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS, description="HTML allowed.")
    image_base64: ImageBase64 | None = Field(default=None, description="JPEG/PNG bytes, base64 (line breaks allowed).")
    image_key: str | None = Field(
        default=None, min_length=1, max_length=1024, pattern=r"^[A-Za-z0-9._/=+-]+$",
        description="Key of the image in the platform object store.",
    )

    @field_validator("productid", mode="before")
    @classmethod
    def _ascii_productid(cls, value: Any) -> int | None:
        return parse_productid(value)

    @field_validator("image_key")
    @classmethod
    def _relative_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if ".." in value.split("/") or not value.strip("/"):
            raise ValueError("image_key must be a relative object key without '..'")
        return value

    @model_validator(mode="after")
    def _content_and_image(self) -> ProductIn:
        if self.image_base64 is not None and self.image_key is not None:
            raise ValueError("give image_base64 or image_key, not both")
        if not self.designation.strip() and not (self.description or "").strip() and not (self.image_base64 or self.image_key):
            raise ValueError("a product needs a designation, a description or an image")
        return self

    @property
    def image_bytes(self) -> bytes | None:
        """Decoded inline image (object-store images are fetched by the route)."""
        return self.image_base64


class PredictRequest(BaseModel):
    """A batch of products; a single product object is accepted too and means a batch of one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"products": [{"productid": 123, "designation": "Piscine tubulaire ronde 3m", "description": "<p>bleu</p>"}]}
            ]
        },
    )

    products: list[ProductIn] = Field(min_length=1, max_length=HARD_MAX_BATCH)

    @model_validator(mode="before")
    @classmethod
    def _single_product(cls, data: Any) -> Any:
        if isinstance(data, dict) and "products" not in data:
            return {"products": [data]}
        return data


Variant = Literal["champion", "challenger"]


class ClassScore(BaseModel):
    prdtypecode: int
    probability: float


class PredictionOut(BaseModel):
    productid: int | None
    prdtypecode: int
    label: str
    probability: float = Field(description="Top-class probability (confidence).")
    decision: Literal["auto", "review"] = Field(description="review: under the confidence threshold, to a human.")
    modality: Literal["fused", "text", "image", "none"]
    top: list[ClassScore] = Field(description=f"The {TOP_K} most likely classes.")
    model_name: str
    model_version: str
    variant: Variant
    cached: bool


class PredictResponse(BaseModel):
    request_id: str
    predictions: list[PredictionOut]


class ServedModelOut(BaseModel):
    name: str
    version: str
    alias: str | None
    modalities: list[str]
    loaded_at: datetime


class ModelStatusOut(BaseModel):
    champion: ServedModelOut | None
    challenger: ServedModelOut | None
    challenger_share: float
    poll_interval_s: float
    last_refresh_at: datetime | None
    last_errors: dict[str, str]


class HealthOut(BaseModel):
    status: Literal["ok", "not_ready"]
    champion_version: str | None = None
    challenger_version: str | None = None


class FeedbackIn(BaseModel):
    """The true class of a product, from a human reviewer or a downstream correction."""

    model_config = ConfigDict(extra="forbid")

    productid: int = Field(ge=1, le=MAX_ID)
    # the enum documents the 27 codes; the validator below still words the error for humans
    prdtypecode: int = Field(json_schema_extra={"enum": list(CLASS_CODES)})
    source: str = Field(default="human", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")

    @field_validator("productid", mode="before")
    @classmethod
    def _ascii_productid(cls, value: Any) -> int | None:
        return parse_productid(value)

    @field_validator("prdtypecode")
    @classmethod
    def _known_code(cls, value: int) -> int:
        if value not in KNOWN_CODES:
            raise ValueError(f"prdtypecode {value} is not one of the 27 known classes {list(CLASS_CODES)}")
        return value


class FeedbackOut(BaseModel):
    productid: int
    prdtypecode: int
    source: str
    received_at: datetime
    champion_version: str | None = None


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = Field(default=False, description="Reload even when the alias still points at the served version.")


class ReloadResponse(BaseModel):
    changed: list[str]
    errors: dict[str, str]
    models: ModelStatusOut


class TrafficRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    challenger_share: float = Field(ge=0.0, le=0.5, description="Share of products routed to the challenger.")


class TrafficResponse(BaseModel):
    previous_share: float
    challenger_share: float
    challenger_version: str | None
    scope: Literal["process"] = Field(
        default="process", description="Applies to the worker process that answered; each replica is set on its own."
    )


class DriftReportOut(BaseModel):
    check_date: str = Field(description="Day of the drift check, ISO 8601.")
    size_bytes: int
    url: str = Field(description="Where this API serves the HTML report.")


class DriftReportList(BaseModel):
    reports: list[DriftReportOut]


class ErrorOut(BaseModel):
    error: str = Field(description="Stable machine-readable code, e.g. validation_error.")
    message: str
    request_id: str
    details: list[dict[str, Any]] | None = None
