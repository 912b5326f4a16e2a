"""Serving parts on their own: the model manager's swap and failure rules, the prediction log
writer's batching and failure handling, the cache key and a dead Redis, the token check, the
body cap."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from rakuten_ml.errors import DatabaseError, ModelLoadError
from rakuten_ml.registry.resolve import ResolvedModel
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import init_db, make_engine, prediction_log
from serving.app import ObservabilityMiddleware
from serving.auth import token_matches
from serving.cache import PredictionCache, input_digest
from serving.metrics import ServingMetrics
from serving.model_manager import SERVING_PROBE_BATCH, ModelManager, load_checked
from serving.prediction_logger import PredictionLogger
from serving.routes.errors import install_error_handlers
from tests.support.services import free_port
from tests.support.serving import registry_settings, set_alias


# ----------------------------------------------------------------------------- model manager
class FakeClassifier:
    modalities = ["text"]

    def __init__(self, version: str, fail: bool = False) -> None:
        self.version, self.fail = version, fail

    def predict(self, frame: pd.DataFrame, images: Any = None) -> pd.DataFrame:
        if self.fail:
            raise ValueError("broken pickle")
        return pd.DataFrame({"prdtypecode": [10] * len(frame), "probability": 0.9, "decision": "auto", "modality": "text"})


class FakeRegistry:
    """Aliases in a dict; ``broken`` versions fail to load."""

    def __init__(self, **aliases: str) -> None:
        self.aliases: dict[str, str | None] = dict(aliases)
        self.broken: set[str] = set()
        self.down = False
        self.loads: list[str] = []

    def resolve(self, settings: Settings, variant: str) -> ResolvedModel | None:
        if self.down:
            raise ModelLoadError("registry unreachable")
        version = self.aliases.get(variant)
        return ResolvedModel("m", version, variant) if version else None

    def load(self, settings: Settings, resolved: ResolvedModel) -> FakeClassifier:
        self.loads.append(resolved.version)
        if resolved.version in self.broken:
            raise ModelLoadError(f"cannot load models:/m/{resolved.version}")
        return FakeClassifier(resolved.version)


def make_manager(registry: FakeRegistry, tmp_path) -> tuple[ModelManager, ServingMetrics]:
    metrics = ServingMetrics()
    settings = Settings(home=tmp_path, serving_poll_interval_s=0.05)
    return ModelManager(settings, metrics=metrics, resolver=registry.resolve, loader=registry.load), metrics


def test_a_failed_load_keeps_the_served_model(tmp_path, caplog) -> None:
    registry = FakeRegistry(champion="1")
    manager, metrics = make_manager(registry, tmp_path)
    assert manager.refresh().changed == ("champion",)
    served = manager.models
    registry.aliases["champion"] = "2"
    registry.broken.add("2")
    with caplog.at_level("ERROR"):
        report = manager.refresh()
    assert report.changed == () and "cannot load models:/m/2" in report.errors["champion"]
    assert manager.models is served and manager.models.champion.version == "1"
    assert "keeping champion m v1" in caplog.text
    assert metrics.model_loads.labels("champion", "failure")._value.get() == 1
    registry.down = True
    assert "unreachable" in manager.refresh().errors["champion"] and manager.models is served
    registry.down = False
    registry.broken.clear()
    assert manager.refresh().changed == ("champion",) and manager.models.champion.version == "2"


def test_the_challenger_comes_and_goes_and_shares_a_twin(tmp_path) -> None:
    registry = FakeRegistry(champion="3")
    manager, _ = make_manager(registry, tmp_path)
    manager.refresh()
    registry.aliases["challenger"] = "3"
    manager.refresh()
    assert manager.models.challenger.classifier is manager.models.champion.classifier, "same version loaded once"
    assert registry.loads == ["3"]
    registry.aliases["challenger"] = None
    assert manager.refresh().changed == ("challenger",) and manager.models.challenger is None
    assert manager.refresh(force=True).changed == ("champion",) and registry.loads == ["3", "3"]


def test_the_poller_swaps_without_a_reader_ever_seeing_nothing(tmp_path) -> None:
    registry = FakeRegistry(champion="1")
    manager, _ = make_manager(registry, tmp_path)
    manager.start()
    seen: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            champion = manager.models.champion
            seen.append(champion.version if champion else "none")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        time.sleep(0.1)
        registry.aliases["champion"] = "2"
        deadline = time.monotonic() + 5
        while manager.models.champion.version != "2" and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
        manager.stop()
    assert "none" not in seen and seen[0] == "1" and seen[-1] == "2"
    assert seen.index("2") == len(seen) - seen[::-1].index("1"), "once v2 is seen, v1 never comes back"


def test_share_is_bounded(tmp_path) -> None:
    manager, metrics = make_manager(FakeRegistry(), tmp_path)
    assert manager.set_challenger_share(0.25) == Settings(home=tmp_path).ab.challenger_share
    assert metrics.challenger_share._value.get() == 0.25
    with pytest.raises(ValueError, match="within"):
        manager.set_challenger_share(1.5)


def test_a_model_that_loads_but_cannot_predict_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("serving.model_manager.load_classifier", lambda s, r: FakeClassifier("9", fail=True))
    with pytest.raises(ModelLoadError, match="loads but cannot predict: ValueError: broken pickle"):
        load_checked(Settings(home=tmp_path), ResolvedModel("m", "9", None))


def test_serving_prepares_the_image_model_for_its_micro_batches(tmp_path, monkeypatch) -> None:
    """The loader hands the CPU runtime settings to the vision ensemble, timed at serving's batch size."""

    @dataclasses.dataclass(frozen=True)
    class Config:
        image_size: int = 64
        inference_batch_size: int = 128
        num_workers: int = 2
        cpu_bf16: bool = False
        device: str = "cpu"

    class ImageModel:
        config = Config()
        prepared: dict[str, Any] = {}

        def prepare(self, **kwargs: Any) -> None:
            self.prepared = kwargs

    classifier = FakeClassifier("9")
    classifier.image_model = ImageModel()  # type: ignore[attr-defined]
    monkeypatch.setattr("serving.model_manager.load_classifier", lambda s, r: classifier)
    settings = Settings(home=tmp_path, vision_cpu_runtime="onnxruntime", vision_cpu_int8="on", vision_cpu_bf16="off")
    assert load_checked(settings, ResolvedModel("m", "9", None)) is classifier
    prepared = dict(classifier.image_model.prepared)
    cache = prepared.pop("onnx_cache")
    assert prepared == {"runtime_batch": SERVING_PROBE_BATCH, "runtime": "onnxruntime", "int8": True}
    assert cache.directory == tmp_path / "cache" / "onnx"  # exports kept for the next worker start
    assert classifier.image_model.config.num_workers == 0 and classifier.image_model.config.cpu_bf16 is False


def test_serving_threads_follow_the_settings_else_the_usable_cpus(tmp_path, monkeypatch) -> None:
    """Unset, a worker takes the CPUs its container may use, not torch's count of the node's cores."""
    import torch

    from serving import app as app_module

    monkeypatch.setattr(app_module, "available_cpus", lambda: 1)
    assert app_module.torch_threads_per_worker(1) == 1 and app_module.torch_threads_per_worker(4) == 1
    def threads_of_a_new_thread() -> int:  # what the inference and model-loading threads get
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        return seen[0]

    torch.set_num_threads(2)
    with TestClient(app_module.create_app(Settings(home=tmp_path), load_models=False)):
        assert threads_of_a_new_thread() == 1
    with TestClient(app_module.create_app(Settings(home=tmp_path, serving_torch_threads=2), load_models=False)):
        assert threads_of_a_new_thread() == 2


def test_the_real_resolver_reads_both_aliases(tmp_path_factory, tmp_path) -> None:
    settings = registry_settings(tmp_path_factory, tmp_path)
    manager = ModelManager(settings)
    manager.refresh()
    assert manager.models.champion.version == "2" and manager.models.champion.alias is None  # newest, no alias yet
    assert manager.models.challenger is None
    set_alias(settings, "champion", "1")
    set_alias(settings, "challenger", "2")
    assert set(manager.refresh().changed) == {"champion", "challenger"}
    assert (manager.models.champion.version, manager.models.challenger.version) == ("1", "2")
    assert manager.models.champion.modalities == ["text"]


# ----------------------------------------------------------------------------- prediction log
def log_row(i: int, request: str = "r") -> dict[str, Any]:
    return {"request_id": request, "position": i, "productid": i + 1, "model_name": "m", "model_version": "1",
            "variant": "champion", "prdtypecode": 10, "confidence": 0.5, "decision": "review", "modality": "text",
            "latency_ms": 3.0, "created_at": pd.Timestamp.now(tz="UTC").to_pydatetime()}


@pytest.fixture
def sqlite_engine(tmp_path) -> sa.Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    init_db(engine)
    return engine


def count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(prediction_log)).scalar_one())


def test_the_log_writes_in_batches_by_size_and_by_time(sqlite_engine) -> None:
    metrics = ServingMetrics()
    writer = PredictionLogger(lambda: sqlite_engine, batch_size=10, flush_interval_s=0.3, metrics=metrics)
    writer.start()
    try:
        writer.log([log_row(i, "a") for i in range(25)])
        deadline = time.monotonic() + 2
        while count(sqlite_engine) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert count(sqlite_engine) == 20, "two full batches go at once"
        time.sleep(0.6)
        assert count(sqlite_engine) == 25, "the remainder goes after the flush interval"
        writer.log([log_row(i, "b") for i in range(3)])
    finally:
        writer.close()
    assert count(sqlite_engine) == 28, "close() writes what is queued"
    assert writer.written == 28 and metrics.log_rows.labels("written")._value.get() == 28


def test_a_dead_database_drops_rows_without_raising(caplog) -> None:
    def dead() -> sa.Engine:
        raise DatabaseError("cannot reach database")

    metrics = ServingMetrics()
    writer = PredictionLogger(dead, batch_size=5, flush_interval_s=0.05, metrics=metrics)
    writer.start()
    with caplog.at_level("WARNING"):
        writer.log([log_row(i) for i in range(12)])
        assert writer.flush(5)
    writer.close()
    assert writer.dropped == 12 and writer.written == 0
    assert metrics.log_rows.labels("dropped")._value.get() == 12
    assert "dropped 5 prediction_log rows" in caplog.text and "cannot reach database" in caplog.text


def test_a_full_queue_drops_instead_of_blocking(sqlite_engine) -> None:
    writer = PredictionLogger(lambda: sqlite_engine, max_queue=5)  # not started: nothing drains the queue
    started = time.perf_counter()
    writer.log([log_row(i) for i in range(8)])
    assert time.perf_counter() - started < 0.5 and writer.dropped == 3


# ----------------------------------------------------------------------------- cache
def test_cache_key_normalises_only_what_no_model_can_tell_apart() -> None:
    base = input_digest("Piscine ronde", None, None)
    assert input_digest("  Piscine ronde \n", "", None) == base
    assert input_digest("Piscine  ronde", None, None) != base
    assert input_digest("piscine ronde", None, None) != base
    assert input_digest("Piscine ronde", None, b"\xff\xd8image") != base
    assert input_digest("Piscine ronde", None, b"\xff\xd8image") != input_digest("Piscine ronde", None, b"\xff\xd8other")


def test_a_dead_redis_is_a_fast_miss_and_is_not_retried_at_once(tmp_path) -> None:
    metrics = ServingMetrics()
    settings = Settings(home=tmp_path, serving_cache_enabled=True, serving_redis_url=f"redis://127.0.0.1:{free_port()}/0")
    cache = PredictionCache.from_settings(settings, metrics)
    started = time.perf_counter()
    assert cache.get_many(["a", "b"]) == [None, None]
    assert time.perf_counter() - started < 1.0, "no retry with backoff"
    cache.put_many({"a": {"x": 1}})
    started = time.perf_counter()
    assert cache.get_many(["a"]) == [None]
    assert time.perf_counter() - started < 0.05, "backing off: no second connection attempt"
    assert metrics.cache.labels("error")._value.get() == 2


# ----------------------------------------------------------------------------- auth, body cap
def test_token_comparison() -> None:
    assert token_matches("s3cret", "s3cret")
    assert not token_matches("s3cret ", "s3cret") and not token_matches("", "s3cret")
    # what Starlette hands over for a UTF-8 header: its bytes decoded as latin-1
    assert token_matches("jeton-\u00e9".encode().decode("latin-1"), "jeton-\u00e9")


def test_the_body_cap_answers_413_for_declared_and_streamed_bodies() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"n": len(await request.json())}

    app.add_middleware(ObservabilityMiddleware, metrics=ServingMetrics(), max_body_bytes=100)
    client = TestClient(app)
    assert client.post("/echo", json=[1] * 10).json() == {"n": 10}
    declared = client.post("/echo", json=[1] * 100)
    assert declared.status_code == 413 and declared.json()["error"] == "payload_too_large"

    def chunks():  # no Content-Length: the cap must hold while reading
        for _ in range(50):
            yield b"[1,1,1,1,1,1,1,1,1,1]"

    streamed = client.post("/echo", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error"] == "payload_too_large"


def test_batch_job_textfiles_are_served_beside_the_app_metrics(tmp_path) -> None:
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    Gauge("rakuten_drift_alert", "drift alert", ["metric"], registry=registry).labels("data_drift").set(1)
    write_to_textfile(str(tmp_path / "rakuten_drift.prom"), registry)
    (tmp_path / "broken.prom").write_text("rakuten_half_written{metric=\"x\" 1\n")
    (tmp_path / "clash.prom").write_text("# TYPE rakuten_challenger_share gauge\nrakuten_challenger_share 0.9\n")
    metrics = ServingMetrics()
    body, _ = metrics.render(tmp_path)
    text = body.decode()
    assert 'rakuten_drift_alert{metric="data_drift"} 1.0' in text
    assert "rakuten_half_written" not in text and "0.9" not in text
    assert metrics.render(tmp_path / "absent")[0] == metrics.render(None)[0]
