"""Text model: cleaning, calibration math, the 27-column contract, pair stages, persistence."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from rakuten_ml.errors import UnknownLabelError
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.models import text_model
from rakuten_ml.models.calibration import (
    expected_calibration_error,
    fit_temperature,
    log_loss_at,
    reliability_curve,
    sharpen,
    softmax,
)
from rakuten_ml.models.text_cleaning import build_corpus, clean_text
from rakuten_ml.models.text_model import (
    ABSENT_CLASS_MARGIN,
    CharWbTfidfVectorizer,
    TextClassifier,
    _Holdout,
    redistribute_pair,
    stratified_holdout,
)

# Class vocabularies with deliberate overlaps: both book classes share most words, as do the
# two toy classes, like the pairs the seed report found confused.
CLASS_WORDS: dict[int, list[str]] = {
    2583: ["piscine", "bâche", "filtre", "pompe", "chlore", "hors-sol", "liner", "échelle"],
    1560: ["table", "chaise", "armoire", "commode", "massif", "canapé", "étagère", "buffet"],
    2522: ["cahier", "stylo", "agenda", "classeur", "papier", "feutre", "carnet", "trousse"],
    1280: ["peluche", "poupée", "voiture", "jouet", "bébé", "hochet", "éveil", "musical"],
    1281: ["société", "plateau", "cartes", "dés", "joueurs", "puzzle", "stratégie", "famille"],
    10: ["livre", "roman", "auteur", "édition", "poche", "occasion", "ancien", "tome"],
    2705: ["livre", "roman", "auteur", "édition", "neuf", "broché", "parution", "essai"],
}
SHARED_WORDS = ["lot", "de", "pour", "avec", "le", "la", "couleur", "taille", "enfant", "jeu", "noir"]


def make_catalogue(
    n_per_class: int, seed: int, codes: tuple[int, ...] = tuple(CLASS_WORDS)
) -> tuple[pd.DataFrame, np.ndarray]:
    """French-ish listings: mostly class words, some shared ones, HTML and missing descriptions."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for code in codes:
        for _ in range(n_per_class):
            words = [
                rng.choice(CLASS_WORDS[code]) if rng.random() < 0.7 else rng.choice(SHARED_WORDS)
                for _ in range(rng.integers(3, 8))
            ]
            description = (
                f"<p>{' '.join(rng.choice(CLASS_WORDS[code], 5))} &amp;eacute;t&eacute;</p>"
                if rng.random() < 0.65
                else np.nan
            )
            rows.append({"designation": " ".join(words).capitalize(), "description": description})
            labels.append(code)
    order = rng.permutation(len(rows))
    return pd.DataFrame(rows).iloc[order].reset_index(drop=True), np.asarray(labels)[order]


@pytest.fixture(scope="module")
def catalogue() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    x_train, y_train = make_catalogue(60, seed=0)
    x_test, y_test = make_catalogue(20, seed=1)
    return x_train, y_train, x_test, y_test


@pytest.fixture(scope="module")
def fitted(catalogue) -> TextClassifier:
    x_train, y_train, _, _ = catalogue
    return TextClassifier(calibration_share=0.2).fit(x_train, y_train)


# ------------------------------------------------------------------------------ cleaning


def test_clean_text_strips_markup_decodes_entities_and_keeps_accents() -> None:
    description = "<p>&amp;eacute;t&eacute; &lt;br/&gt;Très   bien&nbsp;!<!-- x > y --></p>"
    text = clean_text("  Jeu de <b>Société</b>\t", description)
    assert text == "jeu de société été très bien !"


@pytest.mark.parametrize("missing", [np.nan, None, pd.NA, float("nan")])
def test_missing_description_contributes_nothing(missing: object) -> None:
    assert clean_text("Piscine Hors-Sol", missing) == "piscine hors-sol"


def test_build_corpus_is_row_aligned_and_checks_lengths() -> None:
    corpus = build_corpus(pd.Series(["A  b", "C"]), pd.Series([np.nan, "<i>D</i>"]))
    assert corpus == ["a b", "c d"]
    with pytest.raises(ValueError, match="same length"):
        build_corpus(["a"], [])


# ------------------------------------------------------------------------------ calibration math


def test_softmax_rows_sum_to_one_and_temperature_flattens() -> None:
    margins = np.array([[2.0, 0.0, -1.0], [1000.0, 0.0, 0.0]])
    sharp, flat = softmax(margins, 0.5), softmax(margins, 5.0)
    np.testing.assert_allclose(sharp.sum(axis=1), 1.0)
    assert np.isfinite(sharp).all()
    assert flat[0].max() < softmax(margins)[0].max() < sharp[0].max()


def test_fit_temperature_undoes_overconfidence() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 5)) * 1.5
    y = np.array([rng.choice(5, p=p) for p in softmax(logits)])
    overconfident = logits * 4.0  # true temperature 4
    temperature = fit_temperature(overconfident, y)
    assert 3.0 < temperature < 5.5
    assert log_loss_at(overconfident, y, temperature) < log_loss_at(overconfident, y, 1.0) - 0.1


def _top1_sample(confidence: np.ndarray, rng: np.random.Generator, n_classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities with top-1 ``confidence`` on class 0, labels drawn from those probabilities."""
    rest = (1.0 - confidence)[:, None] / (n_classes - 1)
    proba = np.hstack([confidence[:, None], np.repeat(rest, n_classes - 1, axis=1)])
    correct = rng.random(len(confidence)) < confidence
    return proba, np.where(correct, 0, rng.integers(1, n_classes, len(confidence)))


def test_ece_small_when_calibrated_and_large_when_overconfident() -> None:
    rng = np.random.default_rng(1)
    proba, y = _top1_sample(rng.uniform(0.3, 1.0, 20000), rng)
    assert expected_calibration_error(proba, y) < 0.02
    overconfident = proba.copy()
    overconfident[:, 0], overconfident[:, 1:] = 0.99, 0.01 / 3
    assert expected_calibration_error(overconfident, y) > 0.2


def test_reliability_curve_bins() -> None:
    proba = np.array([[0.95, 0.05], [0.9, 0.1], [0.55, 0.45]])
    conf, acc, count = reliability_curve(proba, np.array([0, 1, 0]), n_bins=10)
    assert count.sum() == 3 and count[9] == 1 and count[8] == 1 and count[5] == 1
    assert acc[8] == 0.0 and acc[9] == 1.0 and conf[5] == pytest.approx(0.55)
    assert np.isnan(conf[0]) and np.isnan(acc[0])


def test_sharpen_keeps_argmax_and_sums_to_one() -> None:
    p = np.random.default_rng(2).dirichlet(np.ones(27), size=50)
    sharp = sharpen(p, power=3)
    np.testing.assert_allclose(sharp.sum(axis=1), 1.0)
    np.testing.assert_array_equal(sharp.argmax(axis=1), p.argmax(axis=1))
    assert (sharp.max(axis=1) >= p.max(axis=1)).all()
    np.testing.assert_allclose(sharpen(p, power=1), p)


# ------------------------------------------------------------------------------ features


def test_char_vectorizer_matches_sklearn_char_wb() -> None:
    x, _ = make_catalogue(15, seed=3)
    corpus = build_corpus(x["designation"], x["description"]) + ["", "a", "Ab  CD\tété"]
    unseen = ["Piscine inconnue zzz", "", "xylophone"]
    for max_features in (None, 300):
        ours = CharWbTfidfVectorizer((3, 5), max_features=max_features, sublinear_tf=True)
        ref = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), max_features=max_features, sublinear_tf=True)
        fitted_ours, fitted_ref = ours.fit_transform(corpus), ref.fit_transform(corpus)
        np.testing.assert_allclose(fitted_ours.toarray(), fitted_ref.toarray(), atol=1e-12)
        assert ours.vocabulary_ == ref.vocabulary_
        np.testing.assert_allclose(ours.transform(unseen).toarray(), ref.transform(unseen).toarray(), atol=1e-12)


def test_stratified_holdout_keeps_every_class_in_fit_rows() -> None:
    y = np.array([0] * 50 + [1] * 2 + [2])
    fit_rows, held_rows = stratified_holdout(y, 0.1, random_state=0)
    assert sorted(np.concatenate([fit_rows, held_rows])) == list(range(len(y)))
    assert set(y[fit_rows]) == {0, 1, 2} and np.sum(y[held_rows] == 0) == 5 and np.sum(y[held_rows] == 1) == 1


# ------------------------------------------------------------------------------ classifier contract


def test_predict_proba_has_27_columns_in_mapping_order(fitted: TextClassifier, catalogue) -> None:
    _, _, x_test, _ = catalogue
    proba = fitted.predict_proba(x_test)
    assert proba.shape == (len(x_test), DEFAULT_MAPPING.n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(fitted.classes_, DEFAULT_MAPPING.codes)
    unseen = [i for i, code in enumerate(DEFAULT_MAPPING.codes) if code not in CLASS_WORDS]
    assert proba[:, unseen].max() < 1e-12
    margins = fitted.decision_function(x_test)
    assert margins.shape == proba.shape and (margins[:, unseen] == ABSENT_CLASS_MARGIN).all()
    assert set(fitted.predict(x_test)) <= set(CLASS_WORDS)


def test_accuracy_well_above_chance(fitted: TextClassifier, catalogue) -> None:
    _, _, x_test, y_test = catalogue
    assert fitted.score(x_test, y_test) > 0.85  # chance is 1/7


def test_temperature_is_fitted_on_the_holdout(fitted: TextClassifier) -> None:
    assert fitted.temperature_ != 1.0 and 1e-3 < fitted.temperature_ < 1e3


def test_built_strings_and_dataframe_give_the_same_answer(fitted: TextClassifier, catalogue) -> None:
    _, _, x_test, _ = catalogue
    corpus = build_corpus(x_test["designation"], x_test["description"])
    np.testing.assert_array_equal(fitted.predict_proba(corpus), fitted.predict_proba(x_test))
    assert fitted.predict_proba([]).shape == (0, DEFAULT_MAPPING.n_classes)
    with pytest.raises(TypeError):
        fitted.predict_proba("one string")


def test_unknown_label_raises(catalogue) -> None:
    x_train, y_train, _, _ = catalogue
    y_bad = y_train.copy()
    y_bad[3] = 9999
    with pytest.raises(UnknownLabelError):
        TextClassifier().fit(x_train, y_bad)


def test_tiny_corpus_falls_back_to_min_df_1() -> None:
    x, y = make_catalogue(3, seed=4, codes=(2583, 1560))
    model = TextClassifier(pair_stage=False).fit(x, y)
    assert model.effective_min_df_ == 1 and model.effective_max_df_ == 1.0
    assert model.predict_proba(x).shape == (6, DEFAULT_MAPPING.n_classes)


@pytest.mark.parametrize("calibration", ["sigmoid", "none"])
def test_other_calibrations_give_27_column_probabilities(catalogue, calibration: str) -> None:
    x_train, y_train, x_test, y_test = catalogue
    model = TextClassifier(calibration=calibration, calibration_share=0.2).fit(x_train, y_train)
    proba = model.predict_proba(x_test)
    assert proba.shape == (len(x_test), DEFAULT_MAPPING.n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.decision_function(x_test).shape == proba.shape
    assert model.temperature_ == 1.0 and len(model.pair_stages_) == 2
    assert model.score(x_test, y_test) > 0.85


def test_invalid_parameters_are_refused_at_fit(catalogue) -> None:
    x_train, y_train, _, _ = catalogue
    with pytest.raises(ValueError, match="calibration"):
        TextClassifier(calibration="isotonic").fit(x_train, y_train)
    with pytest.raises(ValueError, match="pairs"):
        TextClassifier(pairs=((1280, 1281), (1281, 10))).fit(x_train, y_train)


def test_parallel_and_sequential_fits_are_identical(fitted: TextClassifier, catalogue, monkeypatch) -> None:
    x_train, y_train, x_test, _ = catalogue
    monkeypatch.setattr(text_model, "PARALLEL_MIN_NNZ", 0)  # force worker processes on small data
    parallel = TextClassifier(calibration_share=0.2, n_jobs=2).fit(x_train, y_train)
    assert parallel.temperature_ == fitted.temperature_
    np.testing.assert_array_equal(parallel.predict_proba(x_test), fitted.predict_proba(x_test))


def test_pickle_roundtrip_gives_identical_probabilities(fitted: TextClassifier, catalogue, tmp_path) -> None:
    _, _, x_test, _ = catalogue
    joblib.dump(fitted, tmp_path / "text.joblib")
    restored = joblib.load(tmp_path / "text.joblib")
    np.testing.assert_array_equal(restored.predict_proba(x_test), fitted.predict_proba(x_test))


# ------------------------------------------------------------------------------ pair stage


def test_pair_stages_are_reported_and_applied_only_when_kept(fitted: TextClassifier, catalogue) -> None:
    _, _, x_test, _ = catalogue
    assert set(fitted.pair_stages_) == {(1280, 1281), (10, 2705)}
    for codes, report in fitted.pair_stages_.items():
        assert report.kept == (report.f1_after > report.f1_before)
        assert report.n_validation > 0 and set(report.as_dict()) >= {"kept", "f1_before", "f1_after"}
        assert (codes in fitted.pair_models_) == report.kept
    without = TextClassifier(calibration_share=0.2, pair_stage=False).fit(*catalogue[:2])
    assert without.pair_stages_ == {} and without.pair_models_ == {}
    # Pair stages only move mass inside their pair.
    outside = [i for i, code in enumerate(DEFAULT_MAPPING.codes) if code not in (1280, 1281, 10, 2705)]
    np.testing.assert_allclose(fitted.predict_proba(x_test)[:, outside], without.predict_proba(x_test)[:, outside])


def test_pair_absent_from_training_is_reported_not_kept(catalogue) -> None:
    x, y = make_catalogue(25, seed=5, codes=(2583, 1560, 1280, 1281))
    model = TextClassifier(calibration_share=0.2).fit(x, y)
    report = model.pair_stages_[(10, 2705)]
    assert not report.kept and "absent" in report.reason


def _holdout_for(model: TextClassifier, x: pd.DataFrame, y: np.ndarray, cut: int) -> _Holdout:
    features = model.features_.transform(build_corpus(x["designation"], x["description"])).tocsr()
    y_idx = DEFAULT_MAPPING.encode(y)
    return _Holdout(features[:cut], y_idx[:cut], features[cut:], y_idx[cut:])


def test_pair_stage_kept_when_global_model_confuses_the_pair(fitted: TextClassifier) -> None:
    x, y = make_catalogue(40, seed=6, codes=(1280, 1281))
    holdout = _holdout_for(fitted, x, y, cut=60)
    toy, game = DEFAULT_MAPPING.index_of(1280), DEFAULT_MAPPING.index_of(1281)
    confused = np.zeros((len(holdout.held_y), DEFAULT_MAPPING.n_classes))
    confused[:, toy], confused[:, game] = 0.7, 0.3  # the global model always says "toy"
    report = fitted._evaluate_pair((1280, 1281), holdout, confused)
    assert report.kept and report.f1_after > report.f1_before
    perfect = np.zeros_like(confused)
    perfect[np.arange(len(holdout.held_y)), holdout.held_y] = 1.0
    assert not fitted._evaluate_pair((1280, 1281), holdout, perfect).kept


def test_redistribute_pair_preserves_mass() -> None:
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    out = redistribute_pair(proba, np.array([0]), (0, 1), np.array([0.75]))
    np.testing.assert_allclose(out[0], [0.2, 0.6, 0.2])
    np.testing.assert_array_equal(out[1], proba[1])
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
