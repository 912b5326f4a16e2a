"""Sticky A/B routing: a product always lands on the same variant for a given experiment salt.

A hash of (salt, productid) mapped to [0, 1) decides, so serving, batch scoring and the A/B
evaluation agree on who saw the challenger without sharing any state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from rakuten_ml.registry.contract import CHALLENGER, CHAMPION


def bucket(productid: int | str, salt: str) -> float:
    """Deterministic position of a product in [0, 1)."""
    digest = hashlib.sha256(f"{salt}:{productid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_variant(productid: int | str | None, challenger_share: float, salt: str) -> str:
    """``challenger`` for a ``challenger_share`` slice of products, ``champion`` otherwise.

    Requests without a product id always go to the champion: stickiness needs an id.
    """
    if productid is None or challenger_share <= 0.0:
        return CHAMPION
    return CHALLENGER if bucket(productid, salt) < challenger_share else CHAMPION


def assign_variants(productids: Iterable[int | str], challenger_share: float, salt: str) -> np.ndarray:
    return np.array([assign_variant(p, challenger_share, salt) for p in productids], dtype=object)
