"""Titles (``designation``) and descriptions of synthetic listings, sampled class by class.

Every content word of a row comes from one of four pools: the class's own words, its confusable siblings'
words, its group's words, or the shared generic words. A per-row ``clarity`` (Beta distributed around the
class's specificity) sets the share of own words, so some listings are as vague as real ones and the
confusable classes stay hard. Sampling is vectorised per class; only string assembly loops over rows.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rakuten_ml.catalogue.vocabulary import (
    CLASS_VOCABULARIES,
    DESCRIPTION_CLOSERS,
    DESCRIPTION_OPENERS,
    ENGLISH_VARIANTS,
    GENERIC_WORDS,
    GROUP_WORDS,
    NOVEL_SYLLABLES,
)

# Split of the non-own share of a row's words, for classes with confusable siblings. The sibling share
# is what makes a board game read like a toy now and then; the group share keeps a group recognisable.
SIBLING_SHARE = 0.12
GROUP_SHARE = 0.45
# Spread of per-row clarity around the class specificity: Beta(k*m, k*(1-m)); small k = many vague rows.
CLARITY_CONCENTRATION = 2.5
# Zipf exponent inside a word list: the first words of a list are the ones sellers use most.
ZIPF_EXPONENT = 0.8

# Token counts (lognormal): titles average ~70 characters (median 65, max 250) like the real
# designations; descriptions ~450 characters once the HTML and the sentence openers are added.
TITLE_WORDS_MEDIAN = 7.5
TITLE_WORDS_SIGMA = 0.5
TITLE_MAX_CHARS = 250
DESCRIPTION_WORDS_MEDIAN = 33.0
DESCRIPTION_WORDS_SIGMA = 0.65
DESCRIPTION_MAX_WORDS = 300

# Most descriptions on Rakuten are HTML from the seller's shop; some escape accents as entities.
HTML_STYLES = ("plain", "p", "br", "list")
HTML_STYLE_WEIGHTS = (0.35, 0.30, 0.20, 0.15)
ENTITY_RATE = 0.3
_ENTITIES = str.maketrans(
    {"é": "&eacute;", "è": "&egrave;", "ê": "&ecirc;", "à": "&agrave;", "ç": "&ccedil;", "ô": "&ocirc;",
     "'": "&#39;", "&": "&amp;"}
)

# Vocabulary drift: how a shifted token is rewritten (novel word, accents dropped, typo, English variant).
DRIFT_KINDS = ("novel", "accent", "typo", "english")
DRIFT_KIND_WEIGHTS = (0.4, 0.2, 0.2, 0.2)


@dataclass(frozen=True)
class _Pool:
    tokens: np.ndarray  # object array of str
    cdf: np.ndarray
    has_placeholder: np.ndarray  # bool: token holds '#' or '@'


def _pool(words: Sequence[str]) -> _Pool:
    weights = 1.0 / np.arange(1, len(words) + 1) ** ZIPF_EXPONENT
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    tokens = np.array(list(words), dtype=object)
    return _Pool(tokens, cdf, np.array([("#" in w) or ("@" in w) for w in words], dtype=bool))


def _concat(pools: Sequence[_Pool]) -> _Pool:
    """One pool giving each part the same total weight (the siblings of a class)."""
    cdf = np.concatenate([(p.cdf + i) / len(pools) for i, p in enumerate(pools)])
    cdf[-1] = 1.0
    return _Pool(
        np.concatenate([p.tokens for p in pools]), cdf, np.concatenate([p.has_placeholder for p in pools])
    )


@dataclass(frozen=True)
class _ClassSampler:
    specificity: float
    own: _Pool
    sibling: _Pool | None
    group: _Pool | None
    generic: _Pool
    novel: tuple[str, ...]


@functools.cache
def _sampler(code: int) -> _ClassSampler:
    vocab = CLASS_VOCABULARIES[code]
    siblings = [v for v in CLASS_VOCABULARIES.values() if v.group == vocab.group and v.code != code]
    group_words = GROUP_WORDS[vocab.group]
    return _ClassSampler(
        specificity=vocab.specificity,
        own=_pool(vocab.words),
        sibling=_concat([_pool(s.words) for s in siblings]) if siblings else None,
        group=_pool(group_words) if group_words else None,
        generic=_pool(GENERIC_WORDS),
        novel=_novel_words(code),
    )


def _novel_words(code: int, n: int = 60) -> tuple[str, ...]:
    """Class-specific made-up words: tomorrow's brands and product names, learnable after a retrain."""
    rng = np.random.default_rng(code)
    lengths = rng.integers(2, 4, size=n)
    return tuple("".join(NOVEL_SYLLABLES[i] for i in rng.integers(0, len(NOVEL_SYLLABLES), k)) for k in lengths)


def row_clarity(code: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-row share of own-class words: Beta around the class specificity."""
    m = _sampler(code).specificity
    return rng.beta(CLARITY_CONCENTRATION * m, CLARITY_CONCENTRATION * (1.0 - m), size=n)


def sample_words(code: int, counts: np.ndarray, clarity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flat object array of ``counts.sum()`` content words for rows of class ``code``, row after row."""
    sampler = _sampler(code)
    total = int(counts.sum())
    clarity_per_word = np.repeat(clarity, counts)
    u = rng.random(total)
    other = (u - clarity_per_word) / np.maximum(1.0 - clarity_per_word, 1e-9)
    sib = SIBLING_SHARE if sampler.sibling is not None else 0.0
    grp = GROUP_SHARE if sampler.group is not None else 0.0
    source = np.select(
        [u < clarity_per_word, other < sib, other < sib + grp], [0, 1, 2], default=3
    )
    words = np.empty(total, dtype=object)
    placeholder = np.zeros(total, dtype=bool)
    for i, pool in enumerate((sampler.own, sampler.sibling, sampler.group, sampler.generic)):
        mask = source == i
        if pool is None or not mask.any():
            continue
        idx = np.searchsorted(pool.cdf, rng.random(int(mask.sum())), side="right")
        words[mask] = pool.tokens[idx]
        placeholder[mask] = pool.has_placeholder[idx]
    _fill_placeholders(words, np.flatnonzero(placeholder), rng)
    return words


def _fill_placeholders(words: np.ndarray, positions: np.ndarray, rng: np.random.Generator) -> None:
    """Replace '#' by digits and '@' by capitals, in place (references, sizes, issue numbers)."""
    if positions.size == 0:
        return
    digits = iter(rng.integers(0, 10, size=positions.size * 12).tolist())
    letters = iter(rng.integers(0, 26, size=positions.size * 4).tolist())
    for pos in positions.tolist():
        chars = []
        for ch in words[pos]:
            if ch == "#":
                chars.append(chr(48 + next(digits, 7)))
            elif ch == "@":
                chars.append(chr(65 + next(letters, 0)))
            else:
                chars.append(ch)
        words[pos] = "".join(chars)


@functools.lru_cache(maxsize=1 << 16)
def strip_accents(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def _english(word: str) -> str | None:
    parts = word.split(" ")
    translated = [ENGLISH_VARIANTS.get(p.lower(), p) for p in parts]
    return " ".join(translated) if translated != parts else None


def _typo(word: str, r: float) -> str:
    """Swap, drop or double one letter, as hurried sellers do."""
    if len(word) < 4:
        return word + word[-1]
    i = 1 + int(r * 1000) % (len(word) - 2)
    kind = int(r * 3000) % 3
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def shift_vocabulary(words: np.ndarray, code: int, share: float, rng: np.random.Generator) -> None:
    """Rewrite ``share`` of the words in place: novel words, dropped accents, typos, English variants."""
    if share <= 0.0 or words.size == 0:
        return
    positions = np.flatnonzero(rng.random(words.size) < share)
    kinds = rng.choice(len(DRIFT_KINDS), size=positions.size, p=DRIFT_KIND_WEIGHTS)
    draws = rng.random(positions.size)
    novel = _sampler(code).novel
    for pos, kind, r in zip(positions.tolist(), kinds.tolist(), draws.tolist(), strict=True):
        words[pos] = _rewrite(words[pos], DRIFT_KINDS[kind], r, novel)


def _rewrite(word: str, kind: str, r: float, novel: tuple[str, ...]) -> str:
    """One drifted spelling; a word without accents gets a typo, one without English variant a novel word."""
    if kind == "accent":
        stripped = strip_accents(word)
        return stripped if stripped != word else _typo(word, r)
    if kind == "english":
        return _english(word) or novel[int(r * len(novel))]
    if kind == "typo":
        return _typo(word, r)
    return novel[int(r * len(novel))]


def _case(text: str, style: int) -> str:
    if style == 0:
        return text.title()
    if style == 1:
        return text[:1].upper() + text[1:]
    if style == 2:
        return text.upper()
    return text


def make_title(words: Sequence[str], case_style: int, break_at: int, comma: bool, paren: bool) -> str:
    """A designation: words in seller order, maybe a ' - ' or ', ' break and a trailing '(...)', <= 250 chars."""
    parts = list(words)
    if paren and len(parts) > 2:
        parts[-1] = f"({parts[-1]})"
    if 0 < break_at < len(parts):
        if comma:
            parts[break_at - 1] += ","
        else:
            parts[break_at] = f"- {parts[break_at]}"
    title = _case(" ".join(parts), case_style)
    if len(title) > TITLE_MAX_CHARS:
        title = title[:TITLE_MAX_CHARS].rsplit(" ", 1)[0]
    return title


def make_description(
    words: Sequence[str], rng_values: np.ndarray, style: str, entities: bool
) -> str:
    """An HTML (or plain) description: sentences of 3-10 words, some opened by seller boilerplate.

    ``rng_values`` is a float array (len >= 2 * len(words) + 2) consumed deterministically.
    """
    sentences: list[str] = []
    i = k = 0
    while i < len(words):
        size = 3 + int(rng_values[k] * 8)
        chunk = " ".join(words[i : i + size])
        opener_draw = rng_values[k + 1]
        if opener_draw < 0.45:
            chunk = f"{DESCRIPTION_OPENERS[int(opener_draw / 0.45 * len(DESCRIPTION_OPENERS))]} {chunk}"
        sentences.append(chunk[:1].upper() + chunk[1:] + ".")
        i += size
        k += 2
    if rng_values[k] < 0.3:
        sentences.append(DESCRIPTION_CLOSERS[int(rng_values[k + 1] * len(DESCRIPTION_CLOSERS))])
    text = _wrap_html(sentences, style)
    return text.translate(_ENTITIES) if entities else text


def _wrap_html(sentences: list[str], style: str) -> str:
    if style == "p":
        return "".join(f"<p>{s}</p>" for s in sentences)
    if style == "br":
        return "<br />".join(sentences) + "<br />"
    if style == "list":
        head, items = sentences[0], sentences[1:]
        return f"<b>{head}</b>" + ("<br /><ul>" + "".join(f"<li>{s}</li>" for s in items) + "</ul>" if items else "")
    # plain text, the odd seller pasting paragraphs with real newlines
    return "\n".join(sentences) if len(sentences) > 6 else " ".join(sentences)


def word_counts(n: int, median: float, sigma: float, low: int, high: int, rng: np.random.Generator) -> np.ndarray:
    """Lognormal word counts, right-skewed like real listing lengths."""
    return np.clip(np.rint(rng.lognormal(np.log(median), sigma, size=n)), low, high).astype(np.int64)


def make_texts(
    codes: np.ndarray,
    *,
    missing_description_rate: float,
    vocabulary_shift: float,
    rng: np.random.Generator,
    drift_rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Designations and descriptions (NaN where missing) for rows of the given true classes."""
    n = codes.size
    has_description = rng.random(n) >= missing_description_rate
    n_title = word_counts(n, TITLE_WORDS_MEDIAN, TITLE_WORDS_SIGMA, 2, 40, rng)
    n_description = np.where(
        has_description,
        word_counts(n, DESCRIPTION_WORDS_MEDIAN, DESCRIPTION_WORDS_SIGMA, 3, DESCRIPTION_MAX_WORDS, rng),
        0,
    )
    case_style = rng.choice(4, size=n, p=(0.5, 0.4, 0.05, 0.05)).tolist()
    break_at = np.where(rng.random(n) < 0.45, rng.integers(1, 6, size=n), 0).tolist()
    comma = (rng.random(n) < 0.35).tolist()
    paren = (rng.random(n) < 0.1).tolist()
    html_style = rng.choice(len(HTML_STYLES), size=n, p=HTML_STYLE_WEIGHTS).tolist()
    entities = (rng.random(n) < ENTITY_RATE).tolist()

    titles = np.empty(n, dtype=object)
    descriptions = np.full(n, np.nan, dtype=object)
    for code in np.unique(codes).tolist():
        rows = np.flatnonzero(codes == code)
        counts = n_title[rows] + n_description[rows]
        words = sample_words(code, counts, row_clarity(code, rows.size, rng), rng)
        shift_vocabulary(words, code, vocabulary_shift, drift_rng)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
        layout = rng.random(int(2 * n_description[rows].sum() + 4 * rows.size))
        cursor = 0
        for row, start in zip(rows.tolist(), starts, strict=True):
            cut = start + int(n_title[row])
            titles[row] = make_title(
                words[start:cut].tolist(), case_style[row], break_at[row], comma[row], paren[row]
            )
            if has_description[row]:
                end = cut + int(n_description[row])
                need = 2 * (end - cut) + 4
                descriptions[row] = make_description(
                    words[cut:end].tolist(), layout[cursor : cursor + need], HTML_STYLES[html_style[row]], entities[row]
                )
                cursor += need
    return titles, descriptions
