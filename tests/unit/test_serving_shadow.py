"""Shadow scoring through the API on real registered models: pairs in ``paired_predictions``, an
unchanged response, the products it skips, work only while the worker is idle and in small slices,
drops under saturation, a failing database, and its thread limits."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from rakuten_ml.errors import DatabaseError
from rakuten_ml.promotion.routing import assign_variant
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import paired_predictions
from serving.app import create_app
from serving.metrics import ServingMetrics
from serving.shadow import PAIRED_ONLINE, THREAD_NAME, ShadowScorer
from tests.support.serving import POOL, metric_value, registry_settings, set_alias


def experiment_settings(tmp_path_factory: pytest.TempPathFactory, tmp_path, **overrides: object) -> Settings:
    """Champion v1, challenger v2 (the same artifact registered twice: they agree on every product)."""
    settings = registry_settings(tmp_path_factory, tmp_path, **{"ab_challenger_share": 0.5, "serving_shadow_share": 1.0} | overrides)
    set_alias(settings, "champion", "1")
    set_alias(settings, "challenger", "2")
    return settings


@pytest.fixture
def client(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> Iterator[TestClient]:
    with TestClient(create_app(experiment_settings(tmp_path_factory, tmp_path))) as test_client:
        yield test_client


class ShadowHook:
    """Wraps a served classifier; its calls from the shadow thread are recorded (sizes, torch threads),
    can run a callback or be made to disagree."""

    def __init__(self, inner: Any, *, disagree: bool = False, on_call: Callable[[], None] | None = None) -> None:
        self.inner, self.disagree, self.on_call = inner, disagree, on_call
        self.modalities = inner.modalities
        self.threads: list[int] = []
        self.sizes: list[int] = []

    def predict(self, frame: pd.DataFrame, images: Any = None) -> pd.DataFrame:
        out = self.inner.predict(frame, images)
        if threading.current_thread().name != THREAD_NAME:
            return out
        import torch

        self.threads.append(torch.get_num_threads())
        self.sizes.append(len(frame))
        if self.on_call is not None:
            self.on_call()
        if self.disagree:
            out["prdtypecode"] = out["prdtypecode"].map(lambda code: 10 if code != 10 else 40)
        return out


def hook_challenger(client: TestClient, **kwargs: Any) -> ShadowHook:
    manager = client.app.state.serving.manager
    hook = ShadowHook(manager.models.challenger.classifier, **kwargs)
    manager._models = replace(manager.models, challenger=replace(manager.models.challenger, classifier=hook))
    return hook


def pairs(client: TestClient) -> pd.DataFrame:
    state = client.app.state.serving
    assert state.shadow.flush(30), "shadow work still queued"
    with state.platform.prepare().engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.select(paired_predictions)).mappings().all(), columns=[c.name for c in paired_predictions.columns])


def products(ids: range) -> dict:
    return {"products": [POOL | {"productid": i} for i in ids]}


def test_each_live_product_is_paired_with_the_other_variant(client: TestClient) -> None:
    body = products(range(1000, 1040))
    body["products"].append({"designation": "Roman policier, sans identifiant"})  # no productid: no pair
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 200, response.text
    served = {p["productid"]: p for p in response.json()["predictions"] if p["productid"] is not None}
    assert {p["variant"] for p in served.values()} == {"champion", "challenger"}, "both directions of pairing are exercised"
    anonymous = client.post("/v1/predict", json={"designation": "Chaise de jardin"})

    found = pairs(client)
    assert sorted(found["productid"]) == sorted(served)
    assert set(found["source_id"]) == {response.json()["request_id"]} == {response.headers["X-Request-ID"]}
    assert anonymous.json()["request_id"] not in set(found["source_id"])
    assert set(found["origin"]) == {PAIRED_ONLINE} and set(found["model_name"]) == {served[1000]["model_name"]}
    assert set(found["champion_version"]) == {"1"} and set(found["challenger_version"]) == {"2"}
    for row in found.itertuples():
        answer = served[row.productid]
        side = "champion" if answer["variant"] == "champion" else "challenger"
        assert (getattr(row, f"{side}_code"), getattr(row, f"{side}_confidence")) == (answer["prdtypecode"], answer["probability"])
    assert (found["champion_code"] == found["challenger_code"]).all(), "one artifact under two versions agrees with itself"
    text = client.get("/metrics").text
    assert metric_value(text, "rakuten_shadow_predictions_total") == 40
    assert metric_value(text, "rakuten_shadow_disagreements_total") == 0
    assert metric_value(text, "rakuten_shadow_batch_duration_seconds_count") >= 1


def test_the_response_is_the_same_with_and_without_shadow(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> None:
    bodies = [products(range(start, start + 16)) for start in range(5000, 5064, 16)] + [POOL | {"productid": 77}]

    def answers(share: float) -> tuple[list[list[dict]], pd.DataFrame]:
        folder = tmp_path / f"share-{share}"
        folder.mkdir()
        settings = experiment_settings(tmp_path_factory, folder, serving_shadow_share=share)
        with TestClient(create_app(settings)) as client:
            seen = []
            for body in bodies:
                response = client.post("/v1/predict", json=body)
                assert response.status_code == 200, response.text
                seen.append([response.json()["predictions"], response.headers["X-Model-Variant"], response.headers["X-Model-Version"]])
            return seen, pairs(client)

    without, none = answers(0.0)
    with_shadow, found = answers(1.0)
    assert with_shadow == without
    assert none.empty, "shadow_share=0 pairs nothing"
    assert len(found) == 65


def test_a_share_below_one_shadows_a_sticky_slice_independent_of_the_variant() -> None:
    scorer = ShadowScorer(lambda: None, share=0.3, salt="s", max_queue=1)
    ids = range(1, 20_001)
    chosen = [i for i in ids if scorer.selected(i)]
    assert abs(len(chosen) / len(ids) - 0.3) < 0.015  # 4.6 binomial standard deviations
    assert chosen == [i for i in ids if scorer.selected(i)], "the same products every time"
    challenger = sum(assign_variant(i, 0.5, "s") == "challenger" for i in chosen) / len(chosen)
    assert abs(challenger - 0.5) < 0.03, "the slice does not lean towards one variant"
    assert not scorer.selected(None)


def test_without_a_challenger_nothing_is_submitted(tmp_path_factory: pytest.TempPathFactory, tmp_path, monkeypatch) -> None:
    settings = experiment_settings(tmp_path_factory, tmp_path)
    set_alias(settings, "challenger", None)
    with TestClient(create_app(settings)) as client:
        calls: list[object] = []
        monkeypatch.setattr(client.app.state.serving.shadow, "submit", lambda *args: calls.append(args))
        assert client.post("/v1/predict", json=products(range(1, 9))).status_code == 200
        assert calls == [] and pairs(client).empty


class Clients:
    """The worker's predict requests in flight, as the test sets them; counts the shadow thread's looks
    that find the worker busy, so a test can wait until the thread is waiting instead of sleeping."""

    def __init__(self, in_flight: int) -> None:
        self.in_flight = in_flight
        self.busy_looks = 0
        self._changed = threading.Condition()

    def __call__(self) -> int:
        with self._changed:
            if self.in_flight:
                self.busy_looks += 1
                self._changed.notify_all()
            return self.in_flight

    def wait_until_waited(self, looks: int = 2) -> None:
        """Until the shadow thread has found the worker busy ``looks`` more times."""
        with self._changed:
            target = self.busy_looks + looks
            assert self._changed.wait_for(lambda: self.busy_looks >= target, 30), "the shadow thread never looked"


def idle_gated_app(tmp_path_factory: pytest.TempPathFactory, tmp_path, clients: Clients, **overrides: object) -> TestClient:
    """The champion answers everything and the challenger shadows it, in slices of 4, with ``clients`` as the worker's load."""
    settings = experiment_settings(tmp_path_factory, tmp_path, ab_challenger_share=0.0, **overrides)
    metrics = ServingMetrics()
    app = create_app(settings, metrics=metrics, shadow=ShadowScorer(
        lambda: app.state.serving.platform.prepare().engine, share=1.0, salt=settings.ab.salt,
        max_queue=settings.serving.shadow_queue_size, metrics=metrics, busy=clients, slice_products=4,
    ))
    return TestClient(app)


def test_shadow_work_waits_while_clients_are_in_flight_and_runs_once_idle(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> None:
    clients = Clients(in_flight=1)
    with idle_gated_app(tmp_path_factory, tmp_path, clients) as client:
        hook = hook_challenger(client)
        assert client.post("/v1/predict", json=products(range(1, 6))).status_code == 200
        clients.wait_until_waited()
        assert hook.sizes == [] and client.app.state.serving.shadow.scored == 0, "no shadow call while a client is in flight"
        clients.in_flight = 0
        assert sorted(pairs(client)["productid"]) == [1, 2, 3, 4, 5]


def test_shadow_work_runs_in_small_slices_and_yields_between_them(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> None:
    clients = Clients(in_flight=0)
    with idle_gated_app(tmp_path_factory, tmp_path, clients) as client:
        hook = hook_challenger(client, on_call=lambda: setattr(clients, "in_flight", 1))  # a request arrives mid-slice
        assert client.post("/v1/predict", json=products(range(1, 21))).status_code == 200
        clients.wait_until_waited()
        assert hook.sizes == [4], "the arrival waits for one slice, not for the request's 20 products"
        hook.on_call = None
        clients.in_flight = 0
        assert sorted(pairs(client)["productid"]) == list(range(1, 21))
        assert hook.sizes == [4, 4, 4, 4, 4]


def test_a_slice_gathers_the_products_of_several_requests(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> None:
    clients = Clients(in_flight=1)
    with idle_gated_app(tmp_path_factory, tmp_path, clients) as client:
        hook = hook_challenger(client)
        for start in (1, 10, 20):
            assert client.post("/v1/predict", json=products(range(start, start + 3))).status_code == 200
        clients.in_flight = 0
        assert len(pairs(client)) == 9
        assert hook.sizes == [4, 4, 1], "calls of what came while busy, each topped up to the slice size"


def test_a_saturated_worker_drops_and_counts_shadow_work_while_clients_are_answered(
    tmp_path_factory: pytest.TempPathFactory, tmp_path
) -> None:
    clients = Clients(in_flight=1)  # never idle
    with idle_gated_app(tmp_path_factory, tmp_path, clients, serving_shadow_queue_size=2) as client:
        hook = hook_challenger(client)
        assert client.post("/v1/predict", json=products(range(1, 4))).status_code == 200
        clients.wait_until_waited()  # the thread holds the first request, waiting for idle
        for start in (10, 20, 30, 40):  # two fill the queue behind it, two find it full
            assert client.post("/v1/predict", json=products(range(start, start + 3))).status_code == 200
        clients.wait_until_waited()
        text = client.get("/metrics").text
        assert metric_value(text, "rakuten_shadow_dropped_total", reason="queue_full") == 6
        assert metric_value(text, "rakuten_shadow_queue_size") == 2
        assert hook.sizes == [], "saturated: nothing scored, however long it lasts"
        clients.in_flight = 0
        assert sorted(pairs(client)["productid"]) == [1, 2, 3, 10, 11, 12, 20, 21, 22]
        assert client.app.state.serving.shadow.dropped == {"queue_full": 6}


def test_closing_scores_what_is_queued_without_waiting_for_idle(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> None:
    clients = Clients(in_flight=1)
    with idle_gated_app(tmp_path_factory, tmp_path, clients) as client:
        for start in (1, 10):
            assert client.post("/v1/predict", json=products(range(start, start + 3))).status_code == 200
        clients.wait_until_waited()
    assert sorted(pairs(client)["productid"]) == [1, 2, 3, 10, 11, 12], "the shutdown paired both requests"


def test_disagreements_are_counted(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> None:
    with TestClient(create_app(experiment_settings(tmp_path_factory, tmp_path, ab_challenger_share=0.0))) as client:
        hook = hook_challenger(client, disagree=True)
        response = client.post("/v1/predict", json=products(range(1, 6)))
        assert response.status_code == 200
        served = {p["productid"]: p["prdtypecode"] for p in response.json()["predictions"]}
        found = pairs(client).set_index("productid")
        assert found["champion_code"].to_dict() == served, "the champion answered: its side is what the client got"
        assert found["challenger_code"].to_dict() == {i: 10 if code != 10 else 40 for i, code in served.items()}
        assert metric_value(client.get("/metrics").text, "rakuten_shadow_disagreements_total") == 5
        assert hook.threads and set(hook.threads) == {1}, "the shadow thread predicts with one torch thread"


def test_the_shadow_thread_limits_only_its_own_torch_threads() -> None:
    import torch

    torch.set_num_threads(2)
    scorer = ShadowScorer(lambda: None, share=1.0, salt="s", max_queue=1)
    scorer.start()
    try:
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert seen == [2] and torch.get_num_threads() == 2, "threads started later keep the process default"
    finally:
        scorer.close()


def test_a_database_failure_is_counted_and_the_server_still_answers(tmp_path_factory: pytest.TempPathFactory, tmp_path, caplog) -> None:
    def dead() -> sa.Engine:
        raise DatabaseError("cannot reach database")

    settings = experiment_settings(tmp_path_factory, tmp_path)
    metrics = ServingMetrics()
    shadow = ShadowScorer(dead, share=1.0, salt=settings.ab.salt, max_queue=8, metrics=metrics)
    with caplog.at_level("WARNING"), TestClient(create_app(settings, metrics=metrics, shadow=shadow)) as client:
        for start in (1, 20):
            assert client.post("/v1/predict", json=products(range(start, start + 4))).status_code == 200
        assert shadow.flush(30)
        assert client.post("/v1/predict", json=POOL).status_code == 200
        text = client.get("/metrics").text
    assert metric_value(text, "rakuten_shadow_dropped_total", reason="database") == 8
    assert metric_value(text, "rakuten_shadow_predictions_total") == 8
    assert shadow.written == 0
    assert sum("shadow pairs" in r.getMessage() for r in caplog.records) == 1, "one warning, not one per batch"
    assert "cannot reach database" in caplog.text
