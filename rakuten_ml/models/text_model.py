"""The seed's text classifier (TF-IDF word + char n-grams, LinearSVC C=0.5), made fusion-ready.

On top of the seed configuration it gives what late fusion and monitoring need: probabilities
calibrated on held-out rows, always 27 columns in ``DEFAULT_MAPPING`` order whatever classes
training saw, and an optional binary second stage for the class pairs the seed found confused.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from rakuten_ml.errors import TrainingError
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.models.calibration import fit_temperature, softmax
from rakuten_ml.models.text_cleaning import build_corpus

logger = logging.getLogger(__name__)

# Pairs the seed's confusion matrix shows confused both ways (report section 3.3: 38 % of
# 1280 predicted 1281 and 45 % the other way; used 10 vs new 2705 books). Section 3.3 proposes
# a binary second stage for exactly these.
CONFUSABLE_PAIRS: tuple[tuple[int, int], ...] = ((1280, 1281), (10, 2705))

# min_df=2 / max_df=0.9 are document-count filters tuned on 85K rows. On a few dozen rows they
# prune most of the vocabulary or contradict each other (0.9 * n < 2 raises), so below this
# many documents the word vectorizer keeps every term (min_df=1, max_df=1.0).
SMALL_CORPUS_DOCS = 100

# Margin of classes absent from training: finite (JSON-safe), yet exp(margin / T) is exactly 0
# for every temperature in calibration.TEMPERATURE_BOUNDS, so their probability is 0.
ABSENT_CLASS_MARGIN = -1e6

# Below this many stored TF-IDF values (~3K listings) an SVC fit takes about a second, less than
# starting worker processes, so the two fits then run in-process one after the other.
PARALLEL_MIN_NNZ = 2_000_000

CALIBRATIONS = ("temperature", "sigmoid", "none")
TEXT_COLUMNS = ("designation", "description")
SIGMOID_CV_FOLDS = 3

TextInput: TypeAlias = pd.DataFrame | Sequence[str]


@dataclass(frozen=True)
class PairStageReport:
    """Outcome of one pair's second stage, measured on the calibration hold-out."""

    codes: tuple[int, int]
    kept: bool
    # Weighted F1 over the pair's two classes on all hold-out rows, without / with the stage.
    f1_before: float
    f1_after: float
    n_validation: int  # hold-out rows whose true class is in the pair
    temperature: float  # of the binary model's margins, fitted on those rows
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Holdout:
    """Rows the calibration model is fitted on, and the rows it is judged on."""

    fit_features: sparse.csr_matrix
    fit_y: np.ndarray
    held_features: sparse.csr_matrix
    held_y: np.ndarray


def as_corpus(X: TextInput) -> list[str]:
    """Model input -> documents: a DataFrame is cleaned, a sequence of strings is taken as built."""
    if isinstance(X, pd.DataFrame):
        missing = [c for c in TEXT_COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(f"text input lacks columns {missing}; expected {list(TEXT_COLUMNS)}")
        return build_corpus(X["designation"].tolist(), X["description"].tolist())
    if isinstance(X, str):
        raise TypeError("expected a DataFrame or a sequence of documents, got one string")
    docs = list(X)
    bad = next((d for d in docs if not isinstance(d, str)), None)
    if bad is not None:
        raise TypeError(f"documents must be strings (use a DataFrame for raw fields), got {type(bad).__name__}")
    return docs


def _word_counts(docs: Sequence[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Document x distinct-word counts, words split exactly as sklearn's ``char_wb`` splits them."""
    per_doc = [doc.lower().split() for doc in docs]
    indptr = np.zeros(len(per_doc) + 1, dtype=np.int64)
    np.cumsum([len(words) for words in per_doc], out=indptr[1:])
    flat = np.fromiter(itertools.chain.from_iterable(per_doc), dtype=object, count=int(indptr[-1]))
    codes, words = pd.factorize(flat)
    counts = sparse.csr_matrix((np.ones(len(codes)), codes, indptr), shape=(len(per_doc), len(words)))
    counts.sum_duplicates()
    return counts, words


class CharWbTfidfVectorizer(TransformerMixin, BaseEstimator):
    """Same output as ``TfidfVectorizer(analyzer="char_wb", ...)``, much faster (``benchmarks/RESULTS.md``).

    char_wb n-grams never cross a word boundary, so a document's n-gram counts are the sum of
    its words' counts. N-grams are therefore extracted once per distinct word (a few hundred
    thousand) instead of once per occurrence (tens of millions on 85K listings), then spread
    to documents by one sparse product. Vocabulary order, ``max_features`` selection (same
    argsort over the same alphabetically sorted counts) and tf-idf weighting are sklearn's own.
    """

    def __init__(
        self, ngram_range: tuple[int, int] = (3, 5), max_features: int | None = None, sublinear_tf: bool = False
    ) -> None:
        self.ngram_range = ngram_range
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf

    def _ngram_counter(self, vocabulary: list[str] | None = None) -> CountVectorizer:
        # Words arrive lower-cased and whitespace-free: only the char_wb n-gram step remains.
        return CountVectorizer(
            analyzer="char_wb", ngram_range=self.ngram_range, lowercase=False, vocabulary=vocabulary, dtype=np.float64
        )

    def fit(self, raw_documents: Sequence[str], y: object = None) -> CharWbTfidfVectorizer:
        self.fit_transform(raw_documents)
        return self

    def fit_transform(self, raw_documents: Sequence[str], y: object = None) -> sparse.csr_matrix:
        word_counts, words = _word_counts(raw_documents)
        all_ngrams = self._ngram_counter()
        word_ngrams = sparse.csr_matrix(all_ngrams.fit_transform(words.tolist()))
        keep = np.arange(word_ngrams.shape[1])
        if self.max_features is not None and keep.size > self.max_features:
            # CountVectorizer._limit_features: top corpus frequencies over the sorted vocabulary.
            corpus_freq = word_ngrams.T @ np.asarray(word_counts.sum(axis=0), dtype=np.float64).ravel()
            keep = np.sort((-corpus_freq).argsort()[: self.max_features])
        terms = all_ngrams.get_feature_names_out()[keep].tolist()
        self.ngram_counter_ = self._ngram_counter(terms).fit([])
        counts = self._spread(word_counts, word_ngrams[:, keep])
        self.tfidf_ = TfidfTransformer(sublinear_tf=self.sublinear_tf).fit(counts)
        return self.tfidf_.transform(counts)

    def transform(self, raw_documents: Sequence[str]) -> sparse.csr_matrix:
        check_is_fitted(self, "tfidf_")
        word_counts, words = _word_counts(raw_documents)
        word_ngrams = sparse.csr_matrix(self.ngram_counter_.transform(words.tolist()))
        return self.tfidf_.transform(self._spread(word_counts, word_ngrams))

    @staticmethod
    def _spread(word_counts: sparse.csr_matrix, word_ngrams: sparse.csr_matrix) -> sparse.csr_matrix:
        counts = sparse.csr_matrix(word_counts @ word_ngrams)
        counts.sort_indices()  # same summation order as sklearn's counts in the l2 norm
        return counts

    @property
    def vocabulary_(self) -> dict[str, int]:
        return self.ngram_counter_.vocabulary_

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return self.ngram_counter_.get_feature_names_out()


def stratified_holdout(y_idx: np.ndarray, share: float, random_state: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class random split ``(fit_rows, holdout_rows)``.

    Unlike ``StratifiedShuffleSplit`` it never fails on rare classes: every class with two
    rows or more gives at least one to the hold-out, and always keeps one for fitting.
    """
    rng = np.random.default_rng(random_state)
    held: list[np.ndarray] = []
    for cls in np.unique(y_idx):
        rows = np.flatnonzero(y_idx == cls)
        if len(rows) >= 2:
            n_held = min(len(rows) - 1, max(1, round(share * len(rows))))
            held.append(rng.choice(rows, size=n_held, replace=False))
    holdout = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    return np.setdiff1d(np.arange(len(y_idx)), holdout), holdout


def margin_matrix(decision: np.ndarray, classes: np.ndarray, n_columns: int) -> np.ndarray:
    """A fitted model's ``decision_function`` output spread onto ``n_columns`` fixed columns.

    Binary sklearn models return one margin (for ``classes[1]``); it becomes ``[-m/2, m/2]``
    so that a softmax over the two columns is ``sigmoid(m / T)``.
    """
    decision = np.asarray(decision, dtype=np.float64)
    if decision.ndim == 1:
        decision = np.column_stack([-decision / 2, decision / 2])
    out = np.full((decision.shape[0], n_columns), ABSENT_CLASS_MARGIN)
    out[:, np.asarray(classes, dtype=np.int64)] = decision
    return out


def redistribute_pair(
    proba: np.ndarray, rows: np.ndarray, pair_idx: tuple[int, int], p_second: np.ndarray
) -> np.ndarray:
    """Copy of ``proba`` where, on ``rows``, the pair's total mass is split ``(1 - p, p)``."""
    first, second = pair_idx
    out = proba.copy()
    mass = out[rows, first] + out[rows, second]
    out[rows, first] = mass * (1.0 - p_second)
    out[rows, second] = mass * p_second
    return out


def _fit_clone(estimator: BaseEstimator, features: sparse.csr_matrix, y: np.ndarray) -> BaseEstimator:
    """Module-level so that a worker process receives the small unfitted estimator, not the model."""
    return clone(estimator).fit(features, y)


def _pair_weighted_f1(y_idx: np.ndarray, proba: np.ndarray, pair_idx: tuple[int, int]) -> float:
    return float(f1_score(y_idx, proba.argmax(axis=1), labels=list(pair_idx), average="weighted", zero_division=0))


class TextClassifier(ClassifierMixin, BaseEstimator):
    """TF-IDF (word 1-2 + char_wb 3-5) -> LinearSVC, with calibrated 27-column probabilities.

    ``X`` is a DataFrame with ``designation`` and ``description`` (NaN allowed) or a sequence
    of documents already built with :func:`build_corpus`; ``y`` holds prdtypecodes, mapped with
    ``DEFAULT_MAPPING`` (an unknown code raises ``UnknownLabelError``).

    calibration:
      - ``"temperature"``: softmax(margins / T), T minimising log-loss on a stratified
        ``calibration_share`` hold-out; the SVC is then refit on every row.
      - ``"sigmoid"``: ``CalibratedClassifierCV(LinearSVC, method="sigmoid", cv=3)``, for comparison.
      - ``"none"``: softmax(margins), uncalibrated.

    pair_stage: for each pair in ``pairs``, a binary LinearSVC on the pair's rows re-splits the
    pair's probability mass when the global top-1 falls in the pair; kept only when it raises the
    pair's weighted F1 on the hold-out (see ``pair_stages_``).

    n_jobs: processes for the two independent SVC fits (final and hold-out), so more than 2
    changes nothing. The default 2 keeps an 85K-row fit near 2 min of wall time on a 2-core
    worker (about 54 s vectorising + 77 s SVC, CPU time measured on generated data); None or 1
    runs them one after the other (about 3.5 min) with a lower memory peak. Results are
    identical either way.

    Fitted attributes: ``classes_`` (the 27 codes), ``features_`` (the FeatureUnion),
    ``estimator_`` (global SVC or CalibratedClassifierCV), ``temperature_``,
    ``pair_stages_`` ({codes: PairStageReport}, one per pair evaluated), ``pair_models_``
    ({codes: LinearSVC}, kept pairs only), ``effective_min_df_`` / ``effective_max_df_``.
    """

    def __init__(
        self,
        C: float = 0.5,
        word_max_features: int | None = 120_000,
        char_max_features: int | None = 160_000,
        min_df: int | float = 2,
        max_df: int | float = 0.9,
        class_weight: str | None = None,
        calibration: str = "temperature",
        calibration_share: float = 0.1,
        random_state: int | None = 42,
        pair_stage: bool = True,
        pairs: tuple[tuple[int, int], ...] = CONFUSABLE_PAIRS,
        n_jobs: int | None = 2,
    ) -> None:
        self.C = C
        self.word_max_features = word_max_features
        self.char_max_features = char_max_features
        self.min_df = min_df
        self.max_df = max_df
        self.class_weight = class_weight
        self.calibration = calibration
        self.calibration_share = calibration_share
        self.random_state = random_state
        self.pair_stage = pair_stage
        self.pairs = pairs
        self.n_jobs = n_jobs

    # ---------------------------------------------------------------- fitting

    def fit(self, X: TextInput, y: Iterable[int]) -> TextClassifier:
        """Vectorise once, calibrate and select pair stages on a hold-out, refit on all rows."""
        self._check_params()
        started = time.perf_counter()
        corpus = as_corpus(X)
        y_idx = DEFAULT_MAPPING.encode(np.asarray(y).ravel())
        if len(y_idx) != len(corpus):
            raise ValueError(f"X has {len(corpus)} rows but y has {len(y_idx)}")
        if np.unique(y_idx).size < 2:
            raise TrainingError("the text model needs at least two distinct classes in y")

        self.classes_ = np.asarray(DEFAULT_MAPPING.codes, dtype=np.int64)
        self.features_ = self._make_features(len(corpus))
        # Vocabulary and IDF are label-free, so fitting them once on every row (hold-out
        # included) leaks no label information and saves a second pass over the corpus.
        features = self.features_.fit_transform(corpus).tocsr()
        logger.info("text features: %s in %.1fs", features.shape, time.perf_counter() - started)
        self.temperature_ = 1.0
        self.pair_stages_: dict[tuple[int, int], PairStageReport] = {}
        self.pair_models_: dict[tuple[int, int], LinearSVC] = {}

        holdout = self._split_holdout(features, y_idx)
        tasks = [(features, y_idx)] + ([(holdout.fit_features, holdout.fit_y)] if holdout else [])
        # The final and the hold-out SVC are independent, so they may run side by side. Worker
        # processes, not threads: liblinear draws from one process-global RNG, which two
        # concurrent fits would share and make irreproducible (joblib memory-maps the matrix).
        n_jobs = min(len(tasks), effective_n_jobs(self.n_jobs)) if features.nnz >= PARALLEL_MIN_NNZ else 1
        models = Parallel(n_jobs=n_jobs)(
            delayed(_fit_clone)(self._global_estimator(), rows, labels) for rows, labels in tasks
        )
        self.estimator_ = models[0]
        if holdout is not None:
            self._calibrate_on_holdout(models[1], holdout)
        for codes in [c for c, report in self.pair_stages_.items() if report.kept]:
            self.pair_models_[codes] = self._fit_pair(features, y_idx, self._pair_idx(codes))
        logger.info(
            "text model fitted on %d rows x %d features in %.1fs (calibration=%s, T=%.3f, pairs kept=%s)",
            features.shape[0], features.shape[1], time.perf_counter() - started,
            self.calibration, self.temperature_, sorted(self.pair_models_),
        )  # fmt: skip
        return self

    def _check_params(self) -> None:
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if not 0.0 < self.calibration_share < 1.0:
            raise ValueError(f"calibration_share must be in (0, 1), got {self.calibration_share}")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        if not self.C > 0:
            raise ValueError(f"C must be > 0, got {self.C}")
        flat = [DEFAULT_MAPPING.index_of(code) for pair in self.pairs for code in pair]
        if any(len(pair) != 2 for pair in self.pairs) or len(set(flat)) != len(flat):
            raise ValueError(f"pairs must be disjoint pairs of distinct codes, got {self.pairs}")

    def _make_features(self, n_docs: int) -> FeatureUnion:
        small = n_docs < SMALL_CORPUS_DOCS
        self.effective_min_df_ = 1 if small else self.min_df
        self.effective_max_df_ = 1.0 if small else self.max_df
        word = TfidfVectorizer(
            ngram_range=(1, 2),
            max_features=self.word_max_features,
            min_df=self.effective_min_df_,
            max_df=self.effective_max_df_,
            sublinear_tf=True,
            strip_accents="unicode",
        )
        char = CharWbTfidfVectorizer(ngram_range=(3, 5), max_features=self.char_max_features, sublinear_tf=True)
        # No n_jobs here: FeatureUnion would ship both vectorizers to worker processes on every
        # predict call (seconds of overhead for one product).
        return FeatureUnion([("word", word), ("char", char)])

    def _svc(self) -> LinearSVC:
        return LinearSVC(C=self.C, class_weight=self.class_weight, random_state=self.random_state)

    def _global_estimator(self) -> LinearSVC | CalibratedClassifierCV:
        if self.calibration == "sigmoid":
            return CalibratedClassifierCV(self._svc(), method="sigmoid", cv=SIGMOID_CV_FOLDS)
        return self._svc()

    def _fit_pair(self, features: sparse.csr_matrix, y_idx: np.ndarray, pair_idx: tuple[int, int]) -> LinearSVC:
        rows = np.flatnonzero(np.isin(y_idx, pair_idx))
        return self._svc().fit(features[rows], (y_idx[rows] == pair_idx[1]).astype(np.int64))

    def _split_holdout(self, features: sparse.csr_matrix, y_idx: np.ndarray) -> _Holdout | None:
        if not (self.calibration == "temperature" or (self.pair_stage and self.pairs)):
            return None
        fit_rows, held_rows = stratified_holdout(y_idx, self.calibration_share, self.random_state)
        if held_rows.size == 0 or np.unique(y_idx[fit_rows]).size < 2:
            logger.warning("no usable hold-out in %d rows: temperature stays 1, no pair stage", len(y_idx))
            return None
        return _Holdout(features[fit_rows], y_idx[fit_rows], features[held_rows], y_idx[held_rows])

    def _calibrate_on_holdout(self, model: LinearSVC | CalibratedClassifierCV, holdout: _Holdout) -> None:
        """Fit T and choose the pair stages with a model that never saw the hold-out rows."""
        if self.calibration == "temperature":
            self.temperature_ = fit_temperature(self._margins(model, holdout.held_features), holdout.held_y)
        if not self.pair_stage:
            return
        held_proba = self._global_proba(model, holdout.held_features)
        for codes in self.pairs:
            report = self._evaluate_pair(codes, holdout, held_proba)
            logger.info("pair stage %s/%s: %s", *codes, report.as_dict())
            self.pair_stages_[codes] = report

    def _evaluate_pair(self, codes: tuple[int, int], holdout: _Holdout, held_proba: np.ndarray) -> PairStageReport:
        held_features, held_y = holdout.held_features, holdout.held_y
        pair_idx = self._pair_idx(codes)
        held_in_pair = np.flatnonzero(np.isin(held_y, pair_idx))
        before = _pair_weighted_f1(held_y, held_proba, pair_idx)

        def rejected(reason: str) -> PairStageReport:
            return PairStageReport((codes[0], codes[1]), False, before, before, len(held_in_pair), 1.0, reason)

        if not all(np.any(holdout.fit_y == i) for i in pair_idx):
            return rejected("a class of the pair is absent from the fit rows")
        if held_in_pair.size == 0:
            return rejected("no hold-out rows of the pair")
        model = self._fit_pair(holdout.fit_features, holdout.fit_y, pair_idx)
        # T only rescales the binary margin, so fitting it on the rows that judge the stage
        # barely biases the keep decision (the split's sign, hence most argmaxes, is unchanged).
        pair_margins = margin_matrix(model.decision_function(held_features[held_in_pair]), model.classes_, 2)
        temperature = fit_temperature(pair_margins, (held_y[held_in_pair] == pair_idx[1]).astype(np.int64))
        after_proba = self._route_to_pair(held_proba, held_features, pair_idx, model, temperature)
        after = _pair_weighted_f1(held_y, after_proba, pair_idx)
        kept = after > before
        reason = "improves the pair's F1 on the hold-out" if kept else "does not improve the pair's F1 on the hold-out"
        return PairStageReport((codes[0], codes[1]), kept, before, after, len(held_in_pair), temperature, reason)

    # ---------------------------------------------------------------- inference

    def decision_function(self, X: TextInput) -> np.ndarray:
        """Global SVC margins, shape (n, 27); classes unseen in training get ``ABSENT_CLASS_MARGIN``."""
        check_is_fitted(self, "estimator_")
        corpus = as_corpus(X)
        if not corpus:  # sklearn's transformers refuse zero rows; an empty batch is no error here
            return np.empty((0, DEFAULT_MAPPING.n_classes))
        return self._margins(self.estimator_, self._transform(corpus))

    def predict_proba(self, X: TextInput) -> np.ndarray:
        """Calibrated probabilities, shape (n, 27), columns in ``DEFAULT_MAPPING.codes`` order."""
        check_is_fitted(self, "estimator_")
        corpus = as_corpus(X)
        if not corpus:
            return np.empty((0, DEFAULT_MAPPING.n_classes))
        features = self._transform(corpus)
        proba = self._global_proba(self.estimator_, features)
        for codes, model in self.pair_models_.items():
            proba = self._route_to_pair(
                proba, features, self._pair_idx(codes), model, self.pair_stages_[codes].temperature
            )
        return proba

    def predict(self, X: TextInput) -> np.ndarray:
        """Predicted prdtypecodes."""
        return DEFAULT_MAPPING.decode(self.predict_proba(X).argmax(axis=1))

    def _transform(self, corpus: list[str]) -> sparse.csr_matrix:
        return self.features_.transform(corpus).tocsr()

    @staticmethod
    def _pair_idx(codes: tuple[int, int]) -> tuple[int, int]:
        first, second = (DEFAULT_MAPPING.index_of(c) for c in codes)
        return first, second

    @staticmethod
    def _margins(model: LinearSVC | CalibratedClassifierCV, features: sparse.csr_matrix) -> np.ndarray:
        n_classes = DEFAULT_MAPPING.n_classes
        if isinstance(model, CalibratedClassifierCV):
            # One SVC per fold; their mean margin stands for the ensemble's decision function.
            folds = [c.estimator for c in model.calibrated_classifiers_]
            return np.mean([margin_matrix(f.decision_function(features), f.classes_, n_classes) for f in folds], axis=0)
        return margin_matrix(model.decision_function(features), model.classes_, n_classes)

    def _global_proba(self, model: LinearSVC | CalibratedClassifierCV, features: sparse.csr_matrix) -> np.ndarray:
        if isinstance(model, CalibratedClassifierCV):
            proba = np.zeros((features.shape[0], DEFAULT_MAPPING.n_classes))
            proba[:, model.classes_] = model.predict_proba(features)
            return proba
        return softmax(self._margins(model, features), self.temperature_)

    @staticmethod
    def _route_to_pair(
        proba: np.ndarray,
        features: sparse.csr_matrix,
        pair_idx: tuple[int, int],
        model: LinearSVC,
        temperature: float,
    ) -> np.ndarray:
        """Let the pair model re-split the pair's mass on rows whose global top-1 is in the pair."""
        rows = np.flatnonzero(np.isin(proba.argmax(axis=1), pair_idx))
        if rows.size == 0:
            return proba
        p_second = softmax(margin_matrix(model.decision_function(features[rows]), model.classes_, 2), temperature)[:, 1]
        return redistribute_pair(proba, rows, pair_idx, p_second)
