"""The 27 Rakuten ``prdtypecode`` classes and the one code <-> index mapping every model uses.

The seed project lost days to three models each holding its own label order; here one
:class:`LabelMapping` is built once, serialised beside every model and checked on load.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rakuten_ml.errors import UnknownLabelError


@dataclass(frozen=True)
class ProductClass:
    code: int
    name: str
    # Validation support in the seed report (stratified 20% of the 84,916 training rows):
    # the real class distribution, used by the catalogue generator.
    seed_support: int


PRODUCT_CLASSES: tuple[ProductClass, ...] = (
    ProductClass(10, "Livres occasion", 623),
    ProductClass(40, "Jeux vidéo, CD et accessoires", 502),
    ProductClass(50, "Accessoires gaming", 336),
    ProductClass(60, "Consoles de jeux", 166),
    ProductClass(1140, "Figurines et objets de collection", 534),
    ProductClass(1160, "Cartes de collection", 791),
    ProductClass(1180, "Figurines jeux de rôle et mangas", 153),
    ProductClass(1280, "Jouets enfants", 974),
    ProductClass(1281, "Jeux de société", 414),
    ProductClass(1300, "Modélisme", 1009),
    ProductClass(1301, "Loisirs créatifs et jeux de bar", 161),
    ProductClass(1302, "Jeux d'extérieur et déguisements", 498),
    ProductClass(1320, "Puériculture", 648),
    ProductClass(1560, "Mobilier intérieur", 1015),
    ProductClass(1920, "Linge de maison et literie", 861),
    ProductClass(1940, "Épicerie et alimentation", 160),
    ProductClass(2060, "Décoration intérieure", 999),
    ProductClass(2220, "Animalerie", 165),
    ProductClass(2280, "Magazines et revues", 952),
    ProductClass(2403, "Livres, BD et magazines en lot", 955),
    ProductClass(2462, "Jeux vidéo en lot", 284),
    ProductClass(2522, "Papeterie", 998),
    ProductClass(2582, "Mobilier de jardin", 518),
    ProductClass(2583, "Piscines et accessoires", 2042),
    ProductClass(2585, "Outillage et bricolage", 499),
    ProductClass(2705, "Livres neufs", 552),
    ProductClass(2905, "Jeux PC en boîte", 174),
)

CLASS_CODES: tuple[int, ...] = tuple(c.code for c in PRODUCT_CLASSES)
CLASS_NAMES: dict[int, str] = {c.code: c.name for c in PRODUCT_CLASSES}
KNOWN_CODES: frozenset[int] = frozenset(CLASS_CODES)

# Classes the seed report calls weak (F1 < 0.75): promotion guardrails watch them.
WEAK_CLASSES: tuple[int, ...] = (10, 40, 1180, 1281, 2705)


def class_prior() -> dict[int, float]:
    """Real class frequencies from the seed report (sum to 1)."""
    total = sum(c.seed_support for c in PRODUCT_CLASSES)
    return {c.code: c.seed_support / total for c in PRODUCT_CLASSES}


def is_known_code(value: object) -> bool:
    """True when ``value`` is one of the 27 codes (as int or integral string)."""
    try:
        return int(str(value).strip()) in KNOWN_CODES and float(str(value)) == int(str(value).strip())
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class LabelMapping:
    """Bijection between ``prdtypecode`` and the column index of every probability matrix."""

    codes: tuple[int, ...] = CLASS_CODES
    _index: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = [c for c in self.codes if c not in KNOWN_CODES]
        if unknown:
            raise UnknownLabelError(f"label mapping holds unknown prdtypecodes {unknown}; allowed: {sorted(KNOWN_CODES)}")
        if len(set(self.codes)) != len(self.codes):
            raise UnknownLabelError(f"label mapping holds duplicated codes: {list(self.codes)}")
        # frozen dataclass: the lookup table is derived once, not rebuilt per call
        object.__setattr__(self, "_index", {code: i for i, code in enumerate(self.codes)})

    @property
    def n_classes(self) -> int:
        return len(self.codes)

    def index_of(self, code: int) -> int:
        try:
            return self._index[int(code)]
        except KeyError:
            raise UnknownLabelError(
                f"prdtypecode {code!r} is not one of the {self.n_classes} known classes; "
                "fix the label or quarantine the row, never remap it"
            ) from None

    def encode(self, codes: Iterable[int]) -> np.ndarray:
        """Codes -> indices; raises on any unknown code."""
        return np.fromiter((self.index_of(c) for c in codes), dtype=np.int64)

    def decode(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return np.asarray(self.codes, dtype=np.int64)[np.asarray(indices, dtype=np.int64)]

    def name_of(self, code: int) -> str:
        self.index_of(code)
        return CLASS_NAMES[int(code)]

    def to_json(self) -> str:
        return json.dumps({"codes": list(self.codes), "names": [CLASS_NAMES[c] for c in self.codes]}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LabelMapping:
        payload = json.loads(text)
        return cls(tuple(int(c) for c in payload["codes"]))


DEFAULT_MAPPING = LabelMapping()
