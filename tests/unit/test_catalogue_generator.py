"""The synthetic catalogue: real challenge layout, determinism, realism, drift knobs and learnable signal."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from rakuten_ml.catalogue import CatalogueSpec, DriftSpec, generate_catalogue, generate_frames, render_image
from rakuten_ml.catalogue.images import SHAPES, TEXTURES, VISUAL_STYLES
from rakuten_ml.catalogue.vocabulary import CLASS_VOCABULARIES, GROUP_WORDS
from rakuten_ml.errors import ConfigurationError
from rakuten_ml.labels import CLASS_CODES, class_prior
from rakuten_ml.storage.object_store import LocalObjectStore

IMAGE_NAME = re.compile(r"image_(\d+)_product_(\d+)\.jpg")


@pytest.fixture(scope="module")
def frames_20k() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_frames(CatalogueSpec(rows=20_000, seed=42))


@pytest.fixture(scope="module")
def small_catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("catalogue")
    summary = generate_catalogue(LocalObjectStore(root), "raw/synthetic", CatalogueSpec(rows=40, seed=3))
    return root / "raw" / "synthetic", summary


def _words(texts: pd.Series) -> set[str]:
    return {w for t in texts for w in re.findall(r"[^\W\d_]+", t.lower())}


def test_every_class_has_vocabulary_and_visual_style() -> None:
    assert set(CLASS_VOCABULARIES) == set(CLASS_CODES) == set(VISUAL_STYLES)
    assert all(v.group in GROUP_WORDS for v in CLASS_VOCABULARIES.values())
    assert all(set(s.shapes) <= set(SHAPES) and set(s.textures) <= set(TEXTURES) for s in VISUAL_STYLES.values())


def test_layout_headers_and_summary(small_catalogue: tuple[Path, object]) -> None:
    folder, summary = small_catalogue
    x_lines = (folder / "X_train_update.csv").read_text(encoding="utf-8").split("\n")
    y_lines = (folder / "Y_train_CVw08PX.csv").read_text(encoding="utf-8").split("\n")
    assert x_lines[0] == ",designation,description,productid,imageid"
    assert y_lines[0] == ",prdtypecode"
    assert y_lines[1].startswith("0,") and y_lines[40].startswith("39,")
    x = pd.read_csv(folder / "X_train_update.csv", index_col=0)
    names = {p.name for p in (folder / "image_train").iterdir()}
    expected = {f"image_{i}_product_{p}.jpg" for i, p in zip(x["imageid"], x["productid"], strict=True)}
    assert names == expected
    assert summary.rows == 40 and summary.images == 40
    assert summary.x_key == "raw/synthetic/X_train_update.csv"
    assert summary.y_key == "raw/synthetic/Y_train_CVw08PX.csv"
    assert summary.image_prefix == "raw/synthetic/image_train"
    y = pd.read_csv(folder / "Y_train_CVw08PX.csv", index_col=0)
    assert summary.class_counts == {int(k): int(v) for k, v in y["prdtypecode"].value_counts().items()}


def test_csv_round_trips_through_pandas_and_csv_module(tmp_path: Path) -> None:
    spec = CatalogueSpec(rows=3000, images=0, seed=11)
    generate_catalogue(LocalObjectStore(tmp_path), "", spec)
    x, y = generate_frames(spec)
    # the awkward cases quoting must survive are really there
    described = x["description"].dropna()
    assert described.str.contains("\n").any() and described.str.contains('"').any()
    assert described.str.contains(",").any() and x["designation"].str.contains(",").any()

    read_x = pd.read_csv(tmp_path / "X_train_update.csv", index_col=0)
    read_y = pd.read_csv(tmp_path / "Y_train_CVw08PX.csv", index_col=0)
    pd.testing.assert_frame_equal(read_x, x)
    pd.testing.assert_frame_equal(read_y, y)
    assert read_x.index.tolist() == list(range(3000))

    with open(tmp_path / "X_train_update.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["", "designation", "description", "productid", "imageid"]
    assert len(rows) == 3001
    assert [r[1] for r in rows[1:]] == x["designation"].tolist()
    assert [r[2] for r in rows[1:]] == x["description"].fillna("").tolist()
    assert [int(r[3]) for r in rows[1:]] == x["productid"].tolist()


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    def build(folder: str, seed: int) -> dict[str, bytes]:
        root = tmp_path / folder
        generate_catalogue(LocalObjectStore(root), "cat", CatalogueSpec(rows=25, images=8, seed=seed))
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    first, again, other = build("a", 5), build("b", 5), build("c", 6)
    assert first == again
    assert first["cat/X_train_update.csv"] != other["cat/X_train_update.csv"]
    assert set(first).isdisjoint(set(other) - {"cat/X_train_update.csv", "cat/Y_train_CVw08PX.csv"})


def test_ids_unique_realistic_and_disjoint_between_seeds() -> None:
    x1, _ = generate_frames(CatalogueSpec(rows=5000, seed=1))
    x2, _ = generate_frames(CatalogueSpec(rows=5000, seed=2))
    for x in (x1, x2):
        assert x["productid"].is_unique and x["imageid"].is_unique
        assert x["productid"].min() >= 100_000_000 and x["imageid"].min() >= 1_000_000_000
        assert x["productid"].dtype == np.int64 and x["imageid"].dtype == np.int64
    assert set(x1["productid"]).isdisjoint(x2["productid"])
    assert not x1["productid"].is_monotonic_increasing  # shuffled like real ids, not a counter


def test_class_distribution_follows_prior(frames_20k: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, y = frames_20k
    observed = y["prdtypecode"].value_counts(normalize=True)
    prior = class_prior()
    assert max(abs(observed.get(code, 0.0) - p) for code, p in prior.items()) < 0.01
    assert observed.idxmax() == 2583 and 0.11 < observed[2583] < 0.13
    assert 0.005 < observed[60] < 0.013


def test_text_looks_like_rakuten_listings(frames_20k: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    x, _ = frames_20k
    titles = x["designation"].str.len()
    assert 55 <= titles.mean() <= 85 and titles.median() < titles.mean() and titles.max() <= 250
    assert titles.min() > 0
    assert 0.33 <= x["description"].isna().mean() <= 0.37
    described = x["description"].dropna()
    assert 350 <= described.str.len().mean() <= 550
    for marker in ("<p>", "<br />", "<b>", "<li>", "&eacute;", "&amp;", "&#39;"):
        assert described.str.contains(marker, regex=False).mean() > 0.005, marker
    assert described.str.contains("<").mean() > 0.4  # most descriptions are seller HTML
    everything = " ".join(x["designation"].head(5000)) + " ".join(described.head(3000))
    for word in ("neuf", "quality", "für", "Lieferumfang"):  # French, English and German sellers
        assert word in everything
    assert re.search(r"\d{3,}", everything)


def test_images_are_white_background_rgb_500(small_catalogue: tuple[Path, object]) -> None:
    folder, _ = small_catalogue
    for path in sorted((folder / "image_train").iterdir())[:10]:
        image = Image.open(path)
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (500, 500)
        pixels = np.asarray(image, dtype=float)
        for corner in (pixels[:12, :12], pixels[:12, -12:], pixels[-12:, :12], pixels[-12:, -12:]):
            assert corner.mean() > 245
        assert pixels.std() > 20  # there is a product in the middle


def test_images_subset_writes_exactly_m_files(tmp_path: Path) -> None:
    summary = generate_catalogue(LocalObjectStore(tmp_path), "sub", CatalogueSpec(rows=50, images=7, seed=9))
    files = list((tmp_path / "sub" / "image_train").iterdir())
    assert summary.images == 7 and len(files) == 7
    x = pd.read_csv(tmp_path / "sub" / "X_train_update.csv", index_col=0)
    pairs = set(zip(x["imageid"], x["productid"], strict=True))
    assert all(tuple(map(int, IMAGE_NAME.fullmatch(f.name).groups())) in pairs for f in files)


def test_class_prior_shift_moves_mass_to_rare_classes(frames_20k: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, base = frames_20k
    _, shifted = generate_frames(CatalogueSpec(rows=20_000, seed=42, drift=DriftSpec(class_prior_shift=1.0)))
    before = base["prdtypecode"].value_counts(normalize=True)
    after = shifted["prdtypecode"].value_counts(normalize=True)
    rarest, commonest = min(prior := class_prior(), key=prior.get), max(prior, key=prior.get)
    assert after[rarest] > 0.1 and after[commonest] < 0.02
    assert 0.5 * (before - after).abs().sum() > 0.2


def test_vocabulary_shift_adds_unseen_words() -> None:
    seen = _words(generate_frames(CatalogueSpec(rows=4000, seed=1))[0]["designation"])

    def unseen_rate(drift: DriftSpec) -> float:
        x, _ = generate_frames(CatalogueSpec(rows=1000, seed=2, drift=drift))
        words = [w for t in x["designation"] for w in re.findall(r"[^\W\d_]+", t.lower())]
        return sum(w not in seen for w in words) / len(words)

    baseline, drifted = unseen_rate(DriftSpec()), unseen_rate(DriftSpec(vocabulary_shift=0.5))
    assert baseline < 0.02
    assert drifted > baseline + 0.1


def test_brightness_and_colour_shift_change_pixels() -> None:
    def mean_rgb(drift: DriftSpec) -> np.ndarray:
        images = [render_image(code, np.random.default_rng(i), drift) for i, code in enumerate(CLASS_CODES)]
        return np.mean([np.asarray(Image.open(io.BytesIO(b)), dtype=float).mean(axis=(0, 1)) for b in images], axis=0)

    base = mean_rgb(DriftSpec())
    darker = mean_rgb(DriftSpec(brightness_shift=-0.5))
    brighter = mean_rgb(DriftSpec(brightness_shift=0.5))
    cast = mean_rgb(DriftSpec(colour_shift=1.0))
    assert darker.mean() < base.mean() - 50
    assert brighter.mean() > base.mean() + 2  # the white background cannot get whiter
    assert (cast[0] - cast[2]) - (base[0] - base[2]) > 30


def test_missing_description_rate_is_honoured() -> None:
    for rate in (0.0, 0.8):
        x, _ = generate_frames(CatalogueSpec(rows=4000, seed=4, drift=DriftSpec(missing_description_rate=rate)))
        assert abs(x["description"].isna().mean() - rate) < 0.03


def test_label_noise_changes_labels_only() -> None:
    x, y = generate_frames(CatalogueSpec(rows=10_000, seed=8))
    x_noisy, y_noisy = generate_frames(CatalogueSpec(rows=10_000, seed=8, drift=DriftSpec(label_noise=0.3)))
    pd.testing.assert_frame_equal(x, x_noisy)
    changed = (y["prdtypecode"] != y_noisy["prdtypecode"]).mean()
    assert 0.28 < changed < 0.32
    assert set(y_noisy["prdtypecode"]) <= set(CLASS_CODES)


@pytest.mark.parametrize(
    "make",
    [
        lambda: CatalogueSpec(rows=0),
        lambda: CatalogueSpec(rows=10, images=11),
        lambda: CatalogueSpec(rows=10, seed=-1),
        lambda: DriftSpec(vocabulary_shift=1.5),
        lambda: DriftSpec(brightness_shift=-2.0),
        lambda: DriftSpec(missing_description_rate=1.2),
    ],
)
def test_invalid_specs_are_refused(make) -> None:  # noqa: ANN001 - a factory
    with pytest.raises(ConfigurationError):
        make()


def test_text_is_learnable_but_not_trivial() -> None:
    x, y = generate_frames(CatalogueSpec(rows=6000, seed=7))
    text = (x["designation"] + " " + x["description"].fillna("")).tolist()
    train, test, y_train, y_test = train_test_split(
        text, y["prdtypecode"], test_size=0.25, stratify=y["prdtypecode"], random_state=0
    )
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, strip_accents="unicode"), LinearSVC(C=0.5)
    ).fit(train, y_train)
    predicted = model.predict(test)
    weighted = f1_score(y_test, predicted, average="weighted")
    assert 0.6 < weighted < 0.97
    per_class = dict(zip(CLASS_CODES, f1_score(y_test, predicted, average=None, labels=list(CLASS_CODES)), strict=True))
    # the confusable classes are the hard ones, as on the real catalogue
    assert np.mean([per_class[c] for c in (1180, 1281)]) < np.mean([per_class[c] for c in (2583, 2522, 1160)]) - 0.2


def test_images_carry_a_class_signal() -> None:
    codes = [CLASS_CODES[i % len(CLASS_CODES)] for i in range(594)]
    features = []
    for i, code in enumerate(codes):
        jpeg = render_image(code, np.random.default_rng(1000 + i), DriftSpec(), size=128)
        image = np.asarray(Image.open(io.BytesIO(jpeg)))
        histogram = [np.histogram(image[..., ch], bins=8, range=(0, 256))[0] for ch in range(3)]
        features.append(np.concatenate(histogram) / image[..., 0].size)
    train, test, y_train, y_test = train_test_split(
        np.array(features), codes, test_size=0.3, stratify=codes, random_state=0
    )
    accuracy = LogisticRegression(max_iter=2000, C=10.0).fit(train, y_train).score(test, y_test)
    assert accuracy > 4 / len(CLASS_CODES)  # chance is 1/27
