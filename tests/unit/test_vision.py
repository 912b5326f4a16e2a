"""The vision ensemble on rendered catalogue photos: preprocessing, backbones, feature cache, heads,
voting, persistence. Tiny profile, random-init weights (no downloads), CPU; one fit shared by the module."""

from __future__ import annotations

import copy
import io
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file
from torchvision.transforms import v2

from rakuten_ml.catalogue.generator import DriftSpec, render_image
from rakuten_ml.errors import ConfigurationError, ModelLoadError, UnknownLabelError
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.models.calibration import sharpen
from rakuten_ml.models.fusion import MODALITY_IMAGE, MODALITY_NONE, FusedClassifier
from rakuten_ml.models.vision import VisionEnsemble, VisionEnsembleConfig, load_backbone, select_device, soft_vote
from rakuten_ml.models.vision import deployment as deployment_module
from rakuten_ml.models.vision import ensemble as ensemble_module
from rakuten_ml.models.vision.dataset import ImageDataset
from rakuten_ml.models.vision.ensemble import MEMBER_CNN_XGB, MEMBER_EFFICIENTNET, MEMBER_VIT_MLP, MEMBERS
from rakuten_ml.models.vision.features import (
    FeatureExtractor,
    cached_features,
    cpu_has_native_bf16,
    feature_cache_key,
    resolve_cpu_bf16,
)
from rakuten_ml.models.vision.heads import MLPHead, XGBoostHead
from rakuten_ml.models.vision.onnx_runtime import OnnxNetwork
from rakuten_ml.models.vision.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_transform,
    crop_white_border,
    decode_image,
    normalize_batch,
)
from rakuten_ml.storage.object_store import LocalObjectStore

# Five classes whose rendered photos differ in shape family and palette (pools, cards, gamepads,
# furniture, stationery): enough signal for random-init backbones to beat chance by far.
CODES = (2583, 1160, 50, 1560, 2522)
PER_CLASS = 80  # 400 images: 240 train, 80 validation, 80 held-out test
RENDER_SIZE = 96
SNAPSHOT_ID = "snap-test"
CHANCE = 1 / len(CODES)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Single-threaded torch for this module: on a shared CI machine, OpenMP threads spin-waiting for
    busy cores made the fit ~20x slower (measured 21 min vs 1 min with other test jobs running)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[list[bytes], np.ndarray]]:
    rng = np.random.default_rng(7)
    codes = rng.permutation(np.repeat(np.asarray(CODES), PER_CLASS))
    images = [render_image(int(code), rng, DriftSpec(), size=RENDER_SIZE) for code in codes]
    cuts = {"train": slice(0, 240), "val": slice(240, 320), "test": slice(320, 400)}
    return {name: (images[cut], codes[cut]) for name, cut in cuts.items()}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalObjectStore:
    return LocalObjectStore(tmp_path_factory.mktemp("vision-store"))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="module")
def ensemble(
    rendered: dict[str, tuple[list[bytes], np.ndarray]], store: LocalObjectStore, checkpoints: Path
) -> VisionEnsemble:
    (train_x, train_y), (val_x, val_y) = rendered["train"], rendered["val"]
    config = VisionEnsembleConfig.tiny(progress=False, device="cpu", n_jobs=1, checkpoint_dir=str(checkpoints))
    return VisionEnsemble(config).fit(train_x, train_y, val_x, val_y, store=store, snapshot_id=SNAPSHOT_ID)


def _accuracy(proba: np.ndarray, codes: Sequence[int]) -> float:
    return float((proba.argmax(axis=1) == DEFAULT_MAPPING.encode(codes)).mean())


# ----------------------------------------------------------------- preprocessing

def test_white_border_is_cropped_with_a_small_margin() -> None:
    image = Image.new("RGB", (100, 80), (255, 255, 255))
    ImageDraw.Draw(image).rectangle((30, 20, 59, 49), fill=(200, 30, 30))
    cropped = crop_white_border(image)
    assert cropped.size == (30 + 2 * 2, 30 + 2 * 2)  # margin: 2 % of the longer side = 2 px each side

    blank = Image.new("RGB", (50, 40), (255, 255, 255))
    assert crop_white_border(blank).size == (50, 40)  # nothing but white: the full image, not an empty crop

    photo = decode_image(render_image(2583, np.random.default_rng(0), DriftSpec(), size=200))
    assert photo is not None
    width, height = crop_white_border(photo).size
    assert width < 200 or height < 200  # the generator always leaves a white margin


def test_transform_resizes_and_applies_imagenet_normalisation() -> None:
    white = Image.new("RGB", (120, 90), (255, 255, 255))
    tensor = build_transform(64)(white)
    assert tensor.shape == (3, 64, 64) and tensor.dtype == torch.uint8
    batch = normalize_batch(torch.stack([tensor, tensor]))
    assert batch.dtype == torch.float32 and batch.is_contiguous(memory_format=torch.channels_last)
    expected = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(batch.mean(dim=(0, 2, 3)), expected)
    reference = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    photo = Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    torch.testing.assert_close(normalize_batch(build_transform(64)(photo)[None])[0], reference(photo), rtol=0, atol=1e-5)
    augmented = build_transform(64, train=True)(white.convert("RGB"))
    assert augmented.shape == (3, 64, 64)


def test_missing_or_corrupt_images_are_unusable_never_an_error() -> None:
    good = render_image(1160, np.random.default_rng(1), DriftSpec(), size=64)
    transparent = io.BytesIO()
    Image.new("RGBA", (32, 32), (0, 0, 0, 0)).save(transparent, format="PNG")
    bad: list[bytes | None] = [None, b"", b"not an image at all", good[: len(good) // 2]]
    for data in bad:
        assert decode_image(data) is None
    assert decode_image(transparent.getvalue()).getpixel((5, 5)) == (255, 255, 255)  # type: ignore[union-attr]

    dataset = ImageDataset([good, *bad], [0] * 5, image_size=32)
    rows = [dataset[i] for i in range(len(dataset))]
    assert [usable for _x, _y, usable in rows] == [True, False, False, False, False]
    assert all(x.shape == (3, 32, 32) for x, _y, _ok in rows)
    with pytest.raises(ConfigurationError, match="store"):
        ImageDataset(["images/some-key.jpg"], image_size=32)


# ----------------------------------------------------------------- backbones and devices

def test_batched_fetch_decodes_on_threads_with_the_same_result(rendered) -> None:
    images = [*rendered["test"][0][:6], None, b"not a jpeg"]
    dataset = ImageDataset(images, image_size=64)
    one_by_one = [dataset[i] for i in range(len(images))]
    batched = dataset.__getitems__(list(range(len(images))))
    assert [usable for _, _, usable in batched] == [True] * 6 + [False, False]
    for (tensor, label, usable), (expected, label_1, usable_1) in zip(batched, one_by_one, strict=True):
        assert (label, usable) == (label_1, usable_1)
        torch.testing.assert_close(tensor, expected, rtol=0, atol=0)


def test_backbone_by_name_and_from_a_local_state_dict(tmp_path) -> None:
    x = torch.randn(2, 3, 64, 64)
    fresh = load_backbone("resnet18", seed=0).eval()
    assert fresh.num_features == 512 and fresh.weights_tag == "random-init-s0"
    with torch.inference_mode():
        expected = fresh(x)

    pth = tmp_path / "resnet18.pth"
    torch.save(fresh.model.state_dict(), pth)
    safetensors_file = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in fresh.model.state_dict().items()}, str(safetensors_file))
    for path in (pth, safetensors_file):
        loaded = load_backbone("resnet18", weights_path=path, seed=1).eval()
        with torch.inference_mode():
            torch.testing.assert_close(loaded(x), expected)
        assert loaded.weights_tag not in ("random-init", "random-init-s1")

    # An ImageNet-style checkpoint (1000-class head) feeds a 27-class model: the head is the model's own.
    imagenet = tmp_path / "imagenet.pth"
    torch.save({"state_dict": load_backbone("resnet18", num_classes=1000).model.state_dict()}, imagenet)
    assert load_backbone("resnet18", weights_path=imagenet, num_classes=27).output_dim == 27

    with pytest.raises(ModelLoadError, match="does not exist"):
        load_backbone("resnet18", weights_path=tmp_path / "missing.pth")
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_backbone("resnet34", weights_path=pth)
    with pytest.raises(ConfigurationError, match="no architecture"):
        load_backbone("resnet_does_not_exist")


def test_device_selection() -> None:
    assert select_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match="no CUDA GPU"):
            select_device("cuda")


# ----------------------------------------------------------------- feature cache

def test_feature_cache_is_read_instead_of_recomputed(tmp_path, rendered) -> None:
    images = rendered["train"][0][:24]
    ids = list(range(1000, 1024))
    store = LocalObjectStore(tmp_path)
    extractor = FeatureExtractor(load_backbone("vit_tiny_patch16_224", seed=3, img_size=64), image_size=64)
    calls: list[int] = []
    original = extractor.extract

    def counting(batch, store=None, device=None):  # noqa: ANN001, ANN202 - same signature as the original
        calls.append(len(batch))
        return original(batch, store=store, device=device)

    extractor.extract = counting  # type: ignore[method-assign]
    first, usable = cached_features(extractor, images[:16], store=store, snapshot_id="s1", row_ids=ids[:16])
    assert calls == [16] and first.shape == (16, 192) and usable.all()
    key = feature_cache_key("s1", "vit_tiny_patch16_224", 64, "random-init-s3", "fp32")
    assert key == "features/s1/vit_tiny_patch16_224-64-random-init-s3-fp32.npz" and store.exists(key)

    again, _ = cached_features(extractor, images[:16], store=store, snapshot_id="s1", row_ids=ids[:16])
    assert calls == [16]  # a hit: the backbone did not run
    np.testing.assert_array_equal(again, first)

    # A wider request extracts only the rows the cache lacks, and keeps the order asked for.
    wider, _ = cached_features(extractor, images[::-1], store=store, snapshot_id="s1", row_ids=ids[::-1])
    assert calls == [16, 8]
    np.testing.assert_array_equal(wider[::-1][:16], first)


# ----------------------------------------------------------------- heads

def _blobs(codes: Sequence[int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = DEFAULT_MAPPING.encode(rng.choice(codes, size=n))
    centres = np.random.default_rng(0).normal(0, 3, size=(DEFAULT_MAPPING.n_classes, 16))
    return (centres[y] + rng.normal(0, 1, size=(n, 16))).astype(np.float32), y


def _check_head_output(proba: np.ndarray, y: np.ndarray, absent: np.ndarray) -> None:
    assert proba.shape == (len(y), DEFAULT_MAPPING.n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert proba[:, absent].max() < 1e-6
    assert (proba.argmax(axis=1) == y).mean() > 0.9


def test_mlp_head_outputs_all_classes_with_no_mass_on_absent_ones() -> None:
    trained = (10, 2583, 1160)
    x, y = _blobs(trained, 300, seed=1)
    x_val, y_val = _blobs(trained, 100, seed=2)
    def fitted() -> MLPHead:
        return MLPHead(hidden=(32,), max_epochs=40, batch_size=64, patience=5, progress=False).fit(x, y, x_val, y_val)

    head = fitted()
    absent = ~np.isin(np.arange(DEFAULT_MAPPING.n_classes), DEFAULT_MAPPING.encode(trained))
    _check_head_output(head.predict_proba(x_val), y_val, absent)
    assert head.result_.best_f1 > 0.9
    np.testing.assert_array_equal(fitted().predict_proba(x_val), head.predict_proba(x_val))  # seeded


def test_xgboost_head_is_sharpened_and_mapped_to_all_classes() -> None:
    trained = (50, 1560, 2522, 2905)
    x, y = _blobs(trained, 300, seed=3)
    x_val, y_val = _blobs(trained, 100, seed=4)
    head = XGBoostHead(n_estimators=30, max_depth=3, n_jobs=1).fit(x, y, x_val, y_val)
    proba = head.predict_proba(x_val)
    absent = ~np.isin(np.arange(DEFAULT_MAPPING.n_classes), DEFAULT_MAPPING.encode(trained))
    _check_head_output(proba, y_val, absent)
    np.testing.assert_allclose(proba[:, head.classes_], sharpen(head.model_.predict_proba(x_val), 3.0))
    assert proba.max(axis=1).mean() > head.model_.predict_proba(x_val).max(axis=1).mean()


# ----------------------------------------------------------------- voting

def test_soft_vote_weights_renormalised_over_present_members() -> None:
    one_hot = np.eye(3)
    members = {
        "a": (np.tile(one_hot[0], (3, 1)), np.array([True, True, False])),
        "b": (np.tile(one_hot[1], (3, 1)), np.array([True, False, False])),
        "ignored": (np.tile(one_hot[2], (3, 1)), np.array([True, True, True])),
    }
    proba, mask = soft_vote(members, {"a": 1 / 7, "b": 4 / 7})
    np.testing.assert_allclose(proba[0], [0.2, 0.8, 0.0])  # 1/7 : 4/7, renormalised to sum 1
    np.testing.assert_allclose(proba[1], [1.0, 0.0, 0.0])  # b cannot use this image: a alone
    np.testing.assert_allclose(proba[2], [1 / 3] * 3)  # no voter could use it: uniform, masked out
    assert mask.tolist() == [True, True, False]

    only_two = {MEMBER_EFFICIENTNET: members["a"], MEMBER_CNN_XGB: members["b"]}
    proba, _ = soft_vote(only_two, VisionEnsembleConfig().weights)  # vit-mlp absent: 2/7 vs 1/7 -> 2/3, 1/3
    np.testing.assert_allclose(proba[0], [2 / 3, 1 / 3, 0.0])
    with pytest.raises(ConfigurationError):
        soft_vote(members, {"a": 0.0})


# ----------------------------------------------------------------- the ensemble

def test_ensemble_predicts_all_classes_and_masks_unusable_images(ensemble, rendered) -> None:
    images, codes = rendered["test"]
    batch: list[bytes | None] = [*images[:6], None, b"\xff\xd8corrupt"]
    proba, mask = ensemble.predict_proba_images(batch)
    assert proba.shape == (8, DEFAULT_MAPPING.n_classes)
    assert mask.tolist() == [True] * 6 + [False, False]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(proba[6:], 1 / DEFAULT_MAPPING.n_classes)
    absent = ~np.isin(np.arange(DEFAULT_MAPPING.n_classes), DEFAULT_MAPPING.encode(CODES))
    assert proba[:6, absent].max() < 1e-6

    members = ensemble.predict_proba_members(batch)
    assert set(members) == set(MEMBERS)
    voted, _ = soft_vote(members, ensemble.config.weights)
    np.testing.assert_allclose(voted, proba)
    assert set(ensemble.member_metrics_) == {*MEMBERS, "ensemble"}
    assert all(0.0 <= f1 <= 1.0 for f1 in ensemble.member_metrics_.values())


def test_cpu_bf16_inference_runs_in_bf16_and_agrees_with_fp32(ensemble, rendered) -> None:
    images, codes = rendered["test"]
    fp32, mask = ensemble.predict_proba_images(images)
    bf16, mask_bf16 = ensemble.with_config(cpu_bf16=True).predict_proba_images(images)
    assert mask_bf16.tolist() == mask.tolist()
    assert not np.array_equal(bf16, fp32)  # the backbones really ran in reduced precision
    np.testing.assert_allclose(bf16.sum(axis=1), 1.0, atol=1e-6)
    assert (bf16.argmax(axis=1) == fp32.argmax(axis=1)).mean() >= 0.9
    assert _accuracy(bf16, codes) > 2 * CHANCE


def test_native_bf16_means_the_cpu_has_bf16_instructions() -> None:
    """``auto`` must not pick bf16 on a CPU that only emulates it (1.8x slower than fp32 there)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("reads the CPU flags from /proc/cpuinfo (Linux)")
    flags = set(next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split())
    assert cpu_has_native_bf16() is bool(flags & {"avx512_bf16", "amx_bf16"})


def test_cpu_bf16_choice_and_separate_feature_cache(tmp_path, rendered) -> None:
    assert resolve_cpu_bf16("on") is True and resolve_cpu_bf16("off") is False
    assert resolve_cpu_bf16("auto") is cpu_has_native_bf16()
    store = LocalObjectStore(tmp_path)
    images, ids = rendered["train"][0][:8], list(range(8))
    backbone = load_backbone("resnet18", seed=1)
    fp32, _ = cached_features(FeatureExtractor(backbone, 64), images, store=store, snapshot_id="s", row_ids=ids)
    bf16, _ = cached_features(FeatureExtractor(backbone, 64, cpu_bf16=True), images, store=store, snapshot_id="s", row_ids=ids)
    assert store.exists("features/s/resnet18-64-random-init-s1-fp32.npz")
    assert store.exists("features/s/resnet18-64-random-init-s1-bf16.npz")  # never served from the fp32 cache
    assert not np.array_equal(fp32, bf16)
    np.testing.assert_allclose(bf16, fp32, rtol=0.1, atol=0.05 * float(np.abs(fp32).max()))


def test_ensemble_reads_images_by_object_store_key(ensemble, rendered, store) -> None:
    images = rendered["test"][0][:3]
    keys = [f"images/test/{i}.jpg" for i in range(3)]
    for key, data in zip(keys, images, strict=True):
        store.put_bytes(key, data)
    by_key, mask = ensemble.predict_proba_images([*keys, "images/test/missing.jpg"], store=store)
    by_bytes, _ = ensemble.predict_proba_images(images)
    assert mask.tolist() == [True, True, True, False]
    np.testing.assert_allclose(by_key[:3], by_bytes, atol=1e-9)
    empty, empty_mask = ensemble.predict_proba_images([])
    assert empty.shape == (0, DEFAULT_MAPPING.n_classes) and empty_mask.shape == (0,)


def test_ensemble_is_the_fused_classifiers_image_model(ensemble, rendered) -> None:
    images = [*rendered["test"][0][:3], None]
    frame = pd.DataFrame({"designation": [""] * 4, "description": [""] * 4})
    predictions = FusedClassifier(image_model=ensemble, image_weight=1.0, confidence_threshold=0.8).predict(frame, images)
    assert predictions["modality"].tolist() == [MODALITY_IMAGE] * 3 + [MODALITY_NONE]
    assert set(predictions["prdtypecode"][:3]) <= set(CODES)


def test_ensemble_beats_chance_on_held_out_images(ensemble, rendered) -> None:
    images, codes = rendered["test"]
    proba, mask = ensemble.predict_proba_images(images)
    assert mask.all()
    accuracy = _accuracy(proba, codes)
    assert accuracy > 2 * CHANCE, f"ensemble accuracy {accuracy:.3f} on {len(codes)} held-out images"


def test_fit_keeps_the_best_fine_tuned_state_and_its_checkpoint(ensemble, checkpoints) -> None:
    result = ensemble.finetune_result_
    assert 1 <= result.epochs_run <= ensemble.config.max_epochs
    assert result.best_f1 == max(record.val_weighted_f1 for record in result.history)
    saved = torch.load(checkpoints / "efficientnet-best.pt", weights_only=True)
    assert saved["epoch"] == result.best_epoch and saved["val_weighted_f1"] == pytest.approx(result.best_f1)
    for key, value in ensemble.finetuned_.state_dict().items():
        torch.testing.assert_close(saved["state_dict"][key], value.cpu())


def test_fit_caches_frozen_features_per_snapshot(ensemble, store) -> None:
    cached = sorted(info.key for info in store.list(f"features/{SNAPSHOT_ID}"))
    assert cached == [
        f"features/{SNAPSHOT_ID}/resnet18-64-random-init-s42-fp32.npz",
        f"features/{SNAPSHOT_ID}/vit_tiny_patch16_224-64-random-init-s42-fp32.npz",
    ]


def test_joblib_round_trip_gives_identical_probabilities(ensemble, rendered, tmp_path) -> None:
    images = rendered["test"][0][:16]
    before, mask_before = ensemble.predict_proba_images(images)
    path = tmp_path / "vision.joblib"
    joblib.dump(ensemble, path)
    restored = joblib.load(path)
    after, mask_after = restored.predict_proba_images(images)
    np.testing.assert_array_equal(mask_after, mask_before)
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert restored.member_metrics_ == ensemble.member_metrics_


def test_concurrent_first_predictions_on_a_freshly_loaded_ensemble(ensemble, rendered, tmp_path) -> None:
    """A server's request threads all predict with one just-loaded model: the first calls place the
    networks (a weight rewrite) and must never do it under another thread's forward pass (this
    crashed uvicorn workers with a segmentation fault)."""
    images = rendered["test"][0][:8]
    expected, _ = ensemble.predict_proba_images(images)
    path = tmp_path / "fresh.joblib"
    joblib.dump(ensemble, path)
    for _attempt in range(3):
        fresh = joblib.load(path)  # weights contiguous on CPU: not placed yet
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _i, model=fresh: model.predict_proba_images(images)[0], range(16)))
        for proba in results:
            np.testing.assert_allclose(proba, expected, atol=1e-6)
    fresh.prepare()  # what serving calls at load; idempotent
    np.testing.assert_allclose(fresh.predict_proba_images(images)[0], expected, atol=1e-6)


def test_onnx_runtime_predicts_as_the_networks_and_is_never_pickled(ensemble, rendered, tmp_path) -> None:
    """Every member exports to ONNX Runtime (kept here whatever its speed) without changing a
    prediction, and the sessions stay out of the saved model (prepare() rebuilds them at load)."""
    images = rendered["test"][0][:12]
    path = tmp_path / "onnx.joblib"
    joblib.dump(ensemble, path)
    fresh = joblib.load(path)
    expected, mask = fresh.predict_proba_images(images)
    fresh.prepare(runtime_batch=8, runtime="onnxruntime")
    cpu = torch.device("cpu")
    assert set(fresh._deployment.sessions) == set(MEMBERS)
    assert all(isinstance(network, OnnxNetwork) for network in fresh._inference_networks(cpu).values())
    assert fresh.precision(cpu) == "fp32"
    got, got_mask = fresh.predict_proba_images(images)
    np.testing.assert_array_equal(got_mask, mask)
    # Reordered float sums move features by ~1e-6, which can tip an XGBoost split: probabilities move a little.
    np.testing.assert_allclose(got, expected, atol=1e-2)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    decode_s, networks_s = fresh.seconds_per_image(8)  # what batch scoring weighs to place decoding
    assert decode_s > 0 and networks_s > 0
    fresh.set_cpu_threads(1)
    assert {network.threads for network in fresh._deployment.sessions.values()} == {1}
    np.testing.assert_allclose(fresh.predict_proba_images(images)[0], got, atol=1e-6)
    joblib.dump(fresh, path)
    restored = joblib.load(path)
    assert "_deployment" not in restored.__dict__
    np.testing.assert_allclose(restored.predict_proba_images(images)[0], expected, atol=1e-6)
    fresh.prepare(runtime_batch=8, runtime="torch")
    assert fresh._inference_networks(cpu)[MEMBER_CNN_XGB] is fresh.backbones_[MEMBER_CNN_XGB]


def test_int8_runs_only_members_whose_predictions_survive_quantization(ensemble, rendered, monkeypatch, caplog) -> None:
    """int8 sessions are calibrated on the labelled validation photos kept with the model and checked
    on other ones: a member that loses too much accuracy stays in fp32, and the precision says int8."""
    cpu = torch.device("cpu")
    n_val = len(rendered["val"][0])
    assert len(ensemble.calibration_images_) == len(ensemble.calibration_codes_) == min(n_val, ensemble_module.CALIBRATION_IMAGES)
    val_images, val_codes = rendered["val"]
    truth = [val_codes[val_images.index(image)] for image in ensemble.calibration_images_]  # kept with their labels
    np.testing.assert_array_equal(ensemble.calibration_codes_, DEFAULT_MAPPING.encode(truth))
    fresh = copy.deepcopy(ensemble)
    monkeypatch.setattr(ensemble_module, "MAX_INT8_ACCURACY_DROP", 1.0)  # any accuracy passes
    fresh.prepare(runtime_batch=8, runtime="onnxruntime", int8=True)
    precisions = {member: network.precision for member, network in fresh._deployment.sessions.items()}
    assert precisions[MEMBER_CNN_XGB] == "int8"  # ResNet quantizes; the others may fall back to fp32
    assert fresh.precision(cpu) == "fp32+int8"
    images = rendered["test"][0][:24]
    expected, mask = ensemble.predict_proba_images(images)
    got, got_mask = fresh.predict_proba_images(images)
    np.testing.assert_array_equal(got_mask, mask)
    assert np.isfinite(got).all() and np.allclose(got.sum(axis=1), 1.0)

    monkeypatch.setattr(ensemble_module, "MAX_INT8_ACCURACY_DROP", -1.0)  # int8 would have to gain 100 points
    caplog.set_level(logging.WARNING, logger=deployment_module.__name__)
    fresh.prepare(runtime_batch=8, runtime="onnxruntime", int8=True)
    assert {network.precision for network in fresh._deployment.sessions.values()} == {"fp32"}
    assert "fp32 kept" in caplog.text and fresh.precision(cpu) == "fp32"

    del fresh.calibration_images_  # a model fitted before calibration photos were kept
    assert fresh.seconds_per_image(8) is None
    fresh.prepare(runtime_batch=8, runtime="onnxruntime", int8=True)
    assert {network.precision for network in fresh._deployment.sessions.values()} == {"fp32"}
    assert "retrain it to run in int8" in caplog.text


def test_fit_rejects_unknown_codes_and_bad_configs(rendered) -> None:
    images, codes = rendered["val"]
    with pytest.raises(UnknownLabelError):
        VisionEnsemble(VisionEnsembleConfig.tiny()).fit(images[:4], [999] * 4, images[:4], codes[:4])
    with pytest.raises(ConfigurationError, match="not in backbones"):
        VisionEnsemble(VisionEnsembleConfig.tiny(weights={"resnet": 1.0})).fit(images[:4], codes[:4], images[:4], codes[:4])
    with pytest.raises(ConfigurationError, match="unknown ensemble members"):
        VisionEnsembleConfig(backbones={"dino": "vit_small_patch16_224"}).validate()
    dino = VisionEnsembleConfig.full(dino_weights="/weights/dinov3.pth")
    assert dino.weights_paths == {MEMBER_VIT_MLP: "/weights/dinov3.pth"}
    assert dino.backbones[MEMBER_VIT_MLP] == "vit_large_patch16_dinov3" and dino.image_size == 224
    dino.validate()  # the architecture exists in timm's registry


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_inference_and_mixed_precision_training(ensemble, rendered, tmp_path) -> None:
    images, codes = rendered["test"]
    on_cpu, _ = ensemble.predict_proba_images(images)
    on_gpu, mask = ensemble.with_config(device="cuda").predict_proba_images(images)  # fp16 autocast
    assert mask.all()
    np.testing.assert_allclose(on_gpu, on_cpu, atol=0.05)
    assert (on_gpu.argmax(axis=1) == on_cpu.argmax(axis=1)).mean() > 0.95

    (train_x, train_y), (val_x, val_y) = rendered["train"], rendered["val"]
    config = VisionEnsembleConfig.tiny(progress=False, device="cuda", checkpoint_dir=str(tmp_path))
    on_cuda = VisionEnsemble(config).fit(train_x, train_y, val_x, val_y)  # autocast + GradScaler, XGBoost on GPU
    assert (tmp_path / "efficientnet-best.pt").is_file()
    path = tmp_path / "gpu.joblib"
    joblib.dump(on_cuda, path)
    restored = joblib.load(path).with_config(device="cpu")
    proba, _ = restored.predict_proba_images(images)
    assert _accuracy(proba, codes) > 2 * CHANCE
