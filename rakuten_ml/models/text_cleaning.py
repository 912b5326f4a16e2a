"""Text normalisation shared by training and serving of the text model.

The seed pipeline is deliberately light (no stemming, no stop words: suffixes carry class
signal). Only markup noise is removed; accents are kept because the word vectorizer strips
them itself while the char n-grams benefit from them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import pandas as pd

# Comments before tags so that a ``>`` inside a comment does not end a tag early.
_TAG_RE = re.compile(r"<!--.*?-->|</?[A-Za-z][^<>]*>", re.DOTALL)
_WHITESPACE_RE = re.compile(r"\s+")
# Seller feeds are sometimes escaped twice (``&amp;eacute;``); three passes cover what is seen.
_MAX_UNESCAPE_PASSES = 3


def _as_text(value: object) -> str:
    """None, NaN, pd.NA and other missing markers -> ""; anything else -> str."""
    if isinstance(value, str):
        return value
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value)


def _unescape(text: str) -> str:
    for _ in range(_MAX_UNESCAPE_PASSES):
        if "&" not in text:
            break
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    return text


def normalise(value: object) -> str:
    """One field: entities decoded, tags removed, whitespace collapsed, lower-cased."""
    text = _unescape(_as_text(value))
    if "<" in text:
        text = _TAG_RE.sub(" ", text)
    return _WHITESPACE_RE.sub(" ", text).strip().lower()


def clean_text(designation: object, description: object) -> str:
    """The model's input document: designation then description, both normalised.

    A missing description (35 % of the catalogue) simply contributes nothing.
    """
    return f"{normalise(designation)} {normalise(description)}".strip()


def build_corpus(designations: Sequence[object], descriptions: Sequence[object]) -> list[str]:
    """:func:`clean_text` over aligned columns (lists, arrays or pandas Series)."""
    if len(designations) != len(descriptions):
        raise ValueError(
            f"designations ({len(designations)}) and descriptions ({len(descriptions)}) must have the same length"
        )
    return [clean_text(t, d) for t, d in zip(designations, descriptions, strict=True)]
