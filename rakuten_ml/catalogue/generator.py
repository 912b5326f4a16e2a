"""Synthetic Rakuten catalogue in the real challenge layout, with drift knobs for monitoring tests.

Writes ``X_train_update.csv``, ``Y_train_CVw08PX.csv`` and ``image_train/image_<imageid>_product_<productid>.jpg``
under a prefix of an object store, so the real challenge files can be dropped in instead. Everything is
a pure function of the :class:`CatalogueSpec`: each concern (classes, text, drift, label noise, image
subset, each image) draws from its own seeded stream, so the same spec gives the same bytes.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import pandas as pd

from rakuten_ml.catalogue.images import draw_product
from rakuten_ml.catalogue.text import make_texts
from rakuten_ml.cpus import available_cpus
from rakuten_ml.errors import ConfigurationError
from rakuten_ml.labels import CLASS_CODES, class_prior
from rakuten_ml.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

X_FILE = "X_train_update.csv"
Y_FILE = "Y_train_CVw08PX.csv"
IMAGE_DIR = "image_train"
X_COLUMNS = ("designation", "description", "productid", "imageid")
Y_COLUMN = "prdtypecode"

# Share of real listings without a description (the challenge's X_train_update.csv).
REAL_MISSING_DESCRIPTION_RATE = 0.35
# Ids look like the real ones (productid ~1e8-4e9, imageid ~1e9) and come from a bijection of
# (seed mod 2**SEED_BITS, row), so they are unique within a catalogue and disjoint between seeds.
DEFAULT_PRODUCTID_START = 200_000_000
IMAGEID_START = 1_000_000_000
ROW_BITS = 20
MAX_ROWS = 1 << ROW_BITS
PRODUCTID_BITS = 31
IMAGEID_BITS = 30
IMAGE_WORKERS = min(8, available_cpus())
LOG_EVERY_IMAGES = 5000


class _Stream(IntEnum):
    """Independent random streams: changing one knob leaves the others' draws alone."""

    CLASSES = 0
    TEXT = 1
    VOCABULARY_DRIFT = 2
    LABEL_NOISE = 3
    IMAGE_SUBSET = 4
    IMAGES = 5


@dataclass(frozen=True)
class DriftSpec:
    """How far a catalogue moves from the real one; all zero = the real distributions."""

    class_prior_shift: float = 0.0  # 0..1: mix the prior with its rank-reversed version (mass to rare classes)
    vocabulary_shift: float = 0.0  # 0..1: share of words rewritten (novel words, no accents, typos, English)
    brightness_shift: float = 0.0  # -1..1: image brightness x(1 + 0.6 * shift)
    colour_shift: float = 0.0  # 0..1: hue rotation of the products plus a warm colour cast
    missing_description_rate: float | None = None  # None = real rate 0.35
    label_noise: float = 0.0  # 0..1: share of Y labels replaced by another class (X untouched)

    def __post_init__(self) -> None:
        for name in ("class_prior_shift", "vocabulary_shift", "colour_shift", "label_noise"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        _check_range("brightness_shift", self.brightness_shift, -1.0, 1.0)
        if self.missing_description_rate is not None:
            _check_range("missing_description_rate", self.missing_description_rate, 0.0, 1.0)

    @property
    def description_missing_rate(self) -> float:
        rate = self.missing_description_rate
        return REAL_MISSING_DESCRIPTION_RATE if rate is None else rate


@dataclass(frozen=True)
class CatalogueSpec:
    rows: int
    images: int | None = None  # None = one image per row; M < rows = a seeded subset of M rows has a file
    seed: int = 42
    drift: DriftSpec = field(default_factory=DriftSpec)
    image_size: int = 500
    productid_start: int = DEFAULT_PRODUCTID_START

    def __post_init__(self) -> None:
        _check_range("rows", self.rows, 1, MAX_ROWS)
        if self.images is not None:
            _check_range("images", self.images, 0, self.rows)
        _check_range("seed", self.seed, 0, 2**63 - 1)
        _check_range("image_size", self.image_size, 32, 4096)
        _check_range("productid_start", self.productid_start, 1, 2**62)


@dataclass(frozen=True)
class CatalogueSummary:
    rows: int
    images: int
    class_counts: dict[int, int]  # of the written Y labels (label noise included)
    x_key: str
    y_key: str
    image_prefix: str


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigurationError(f"catalogue setting {name}={value!r} is outside [{low}, {high}]")


def _rng(seed: int, stream: _Stream, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(stream), *key)))


def shifted_prior(shift: float) -> np.ndarray:
    """Class probabilities in ``CLASS_CODES`` order: the real prior mixed with its rank-reversed version."""
    prior = class_prior()
    real = np.array([prior[c] for c in CLASS_CODES])
    order = np.argsort(-real, kind="stable")
    reversed_ranks = np.empty_like(real)
    reversed_ranks[order] = real[order[::-1]]
    return (1.0 - shift) * real + shift * reversed_ranks


def _scramble(keys: np.ndarray, bits: int, salt: int) -> np.ndarray:
    """A bijection on ``bits``-bit integers (xor-shift / odd multiply), so distinct keys give distinct ids."""
    mask = np.uint64((1 << bits) - 1)
    x = (keys ^ np.uint64(salt)) & mask
    for shift, multiplier in ((bits // 2, 0x2C1B3C6D), (bits // 3, 0x297A2D39)):
        x ^= x >> np.uint64(shift)
        x = (x * np.uint64(multiplier)) & mask  # < 2**61 before the mask: no overflow
    return x ^ (x >> np.uint64(bits // 2))


def _ids(spec: CatalogueSpec) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(spec.rows, dtype=np.uint64)
    product_keys = (np.uint64(spec.seed % (1 << (PRODUCTID_BITS - ROW_BITS))) << np.uint64(ROW_BITS)) | rows
    image_keys = (np.uint64(spec.seed % (1 << (IMAGEID_BITS - ROW_BITS))) << np.uint64(ROW_BITS)) | rows
    productid = spec.productid_start + _scramble(product_keys, PRODUCTID_BITS, 0x5A5A5A5A).astype(np.int64)
    imageid = IMAGEID_START + _scramble(image_keys, IMAGEID_BITS, 0x1234567).astype(np.int64)
    return productid, imageid


def _true_codes(spec: CatalogueSpec) -> np.ndarray:
    prior = shifted_prior(spec.drift.class_prior_shift)
    index = _rng(spec.seed, _Stream.CLASSES).choice(len(CLASS_CODES), size=spec.rows, p=prior)
    return np.asarray(CLASS_CODES, dtype=np.int64)[index]


def _noisy_labels(codes: np.ndarray, spec: CatalogueSpec) -> np.ndarray:
    """Replace ``label_noise`` of the labels by a uniformly drawn *other* class."""
    if spec.drift.label_noise <= 0.0:
        return codes
    rng = _rng(spec.seed, _Stream.LABEL_NOISE)
    flip = rng.random(codes.size) < spec.drift.label_noise
    lookup = {code: i for i, code in enumerate(CLASS_CODES)}
    index = np.array([lookup[c] for c in codes.tolist()])
    moved = (index + rng.integers(1, len(CLASS_CODES), size=codes.size)) % len(CLASS_CODES)
    return np.asarray(CLASS_CODES, dtype=np.int64)[np.where(flip, moved, index)]


def _build(spec: CatalogueSpec) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """X, Y and the true classes (which drive the images, whatever label noise did to Y)."""
    codes = _true_codes(spec)
    titles, descriptions = make_texts(
        codes,
        missing_description_rate=spec.drift.description_missing_rate,
        vocabulary_shift=spec.drift.vocabulary_shift,
        rng=_rng(spec.seed, _Stream.TEXT),
        drift_rng=_rng(spec.seed, _Stream.VOCABULARY_DRIFT),
    )
    productid, imageid = _ids(spec)
    x = pd.DataFrame(
        {"designation": titles, "description": descriptions, "productid": productid, "imageid": imageid}
    )
    y = pd.DataFrame({Y_COLUMN: _noisy_labels(codes, spec)})
    return x, y, codes


def generate_frames(spec: CatalogueSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """X (designation, description, productid, imageid) and Y (prdtypecode) frames, without images."""
    x, y, _ = _build(spec)
    return x, y


def render_image(code: int, rng: np.random.Generator, drift: DriftSpec, size: int = 500) -> bytes:
    """JPEG bytes of one product photo of class ``code``, with the drift's brightness and colour shifts."""
    return draw_product(code, rng, size=size, brightness=drift.brightness_shift, colour=drift.colour_shift)


def image_key(prefix: str, imageid: int, productid: int) -> str:
    return _key(prefix, f"{IMAGE_DIR}/image_{imageid}_product_{productid}.jpg")


def _key(prefix: str, name: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{name}" if prefix else name


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    # explicit line terminator: the same bytes on every platform
    return frame.to_csv(lineterminator="\n").encode("utf-8")


def _image_rows(spec: CatalogueSpec) -> np.ndarray:
    if spec.images is None or spec.images == spec.rows:
        return np.arange(spec.rows)
    return np.sort(_rng(spec.seed, _Stream.IMAGE_SUBSET).choice(spec.rows, size=spec.images, replace=False))


def generate_catalogue(store: ObjectStore, prefix: str, spec: CatalogueSpec) -> CatalogueSummary:
    """Write a synthetic catalogue under ``prefix`` in the real challenge layout and summarise it."""
    x, y, codes = _build(spec)
    x_key, y_key = _key(prefix, X_FILE), _key(prefix, Y_FILE)
    store.put_bytes(x_key, _csv_bytes(x))
    store.put_bytes(y_key, _csv_bytes(y))
    log.info("wrote %d rows to %s and %s", spec.rows, x_key, y_key)

    rows = _image_rows(spec)
    productid = x["productid"].to_numpy()
    imageid = x["imageid"].to_numpy()

    def write(row: int) -> None:
        data = render_image(int(codes[row]), _rng(spec.seed, _Stream.IMAGES, row), spec.drift, spec.image_size)
        store.put_bytes(image_key(prefix, int(imageid[row]), int(productid[row])), data)

    # PIL releases the GIL while drawing and encoding, and each image has its own stream: threads keep it
    # deterministic and the object store's writes are independent.
    with ThreadPoolExecutor(max_workers=IMAGE_WORKERS) as pool:
        for done, _ in enumerate(pool.map(write, rows.tolist()), start=1):
            if done % LOG_EVERY_IMAGES == 0:
                log.info("rendered %d/%d images", done, rows.size)
    log.info("wrote %d images under %s", rows.size, _key(prefix, IMAGE_DIR))

    labels, counts = np.unique(y[Y_COLUMN].to_numpy(), return_counts=True)
    return CatalogueSummary(
        rows=spec.rows,
        images=int(rows.size),
        class_counts={int(c): int(k) for c, k in zip(labels, counts, strict=True)},
        x_key=x_key,
        y_key=y_key,
        image_prefix=_key(prefix, IMAGE_DIR),
    )
