"""The serving API through FastAPI's TestClient on real registered models: predictions, input
bounds, admin auth, readiness, A/B routing, model status, metrics and the generic 500."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rakuten_ml.data.contract import MAX_DESCRIPTION_CHARS, MAX_DESIGNATION_CHARS, MAX_IMAGE_BYTES
from rakuten_ml.labels import CLASS_NAMES
from rakuten_ml.promotion.routing import assign_variant
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from serving.app import create_app
from tests.support.catalogues import png_bytes
from tests.support.serving import (
    ADMIN_TOKEN,
    AUTH,
    POOL,
    assert_error,
    b64,
    metric_value,
    product_image,
    registry_settings,
    set_alias,
)


@pytest.fixture
def serving_settings(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> Settings:
    settings = registry_settings(tmp_path_factory, tmp_path, api_admin_token=ADMIN_TOKEN, ab_challenger_share=0.0)
    set_alias(settings, "champion", "1")
    return settings


@pytest.fixture
def client(serving_settings: Settings) -> Iterator[TestClient]:
    """A fresh app: for tests that move aliases, shares or models."""
    with TestClient(create_app(serving_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the read-only tests (validation, status): saves a model load per test."""
    settings = registry_settings(tmp_path_factory, tmp_path_factory.mktemp("shared"), api_admin_token=ADMIN_TOKEN)
    set_alias(settings, "champion", "1")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


# ----------------------------------------------------------------------------- predictions
def test_one_product_is_classified_with_version_and_variant(shared_client: TestClient) -> None:
    response = shared_client.post("/v1/predict", json=POOL | {"productid": 42})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["request_id"]) == 32 and response.headers["X-Request-ID"] == body["request_id"]
    [prediction] = body["predictions"]
    assert prediction["prdtypecode"] == 2583 and prediction["label"] == CLASS_NAMES[2583]
    assert prediction["model_version"] == "1" and prediction["variant"] == "champion" and prediction["cached"] is False
    assert prediction["modality"] == "text" and prediction["decision"] in ("auto", "review")
    assert prediction["top"][0] == {"prdtypecode": 2583, "probability": prediction["probability"]}
    assert [t["probability"] for t in prediction["top"]] == sorted((t["probability"] for t in prediction["top"]), reverse=True)
    assert response.headers["X-Model-Version"] == "1" and response.headers["X-Model-Variant"] == "champion"


def test_a_batch_keeps_order_and_a_text_only_model_ignores_the_image(shared_client: TestClient) -> None:
    products = [POOL | {"productid": 1}, {"designation": "Roman policier livre de poche"}, {"description": "chaise de jardin"},
                POOL | {"image_base64": b64(product_image())}]
    response = shared_client.post("/v1/predict", json={"products": products})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["productid"] for p in predictions] == [1, None, None, None]
    assert predictions[0]["prdtypecode"] == predictions[3]["prdtypecode"] == 2583
    assert {p["modality"] for p in predictions} == {"text"}  # the registered model is text-only


def test_an_image_can_come_from_the_object_store(client: TestClient, serving_settings: Settings) -> None:
    Platform(serving_settings).store.put_bytes("uploads/p1.jpg", product_image())
    response = client.post("/v1/predict", json=POOL | {"image_key": "uploads/p1.jpg"})
    assert response.status_code == 200, response.text
    assert_error(client.post("/v1/predict", json=POOL | {"image_key": "uploads/none.jpg"}), 422, "image_not_found", contains="uploads/none.jpg")
    assert_error(client.post("/v1/predict", json=POOL | {"image_key": "uploads"}), 422, "image_not_found")
    Platform(serving_settings).store.put_bytes("uploads/bad.jpg", b"not an image at all")
    assert_error(client.post("/v1/predict", json=POOL | {"image_key": "uploads/bad.jpg"}), 422, "invalid_image", contains="image")


# ----------------------------------------------------------------------------- input bounds
@pytest.mark.parametrize(
    ("product", "where", "contains"),
    [
        ({"designation": "x" * (MAX_DESIGNATION_CHARS + 1)}, "designation", "at most 1000 characters"),
        ({"designation": "ok", "description": "y" * (MAX_DESCRIPTION_CHARS + 1)}, "description", "at most 30000 characters"),
        ({"designation": "ok", "image_base64": "not base64 !!"}, "image_base64", "not valid base64"),
        ({"designation": "ok", "image_base64": b64(b"GIF89a but truncated")}, "image_base64", "not a readable image"),
        ({"designation": "ok", "image_base64": b64(png_bytes(4097, 16))}, "image_base64", "at most 4096x4096"),
        ({"designation": "ok", "image_base64": b64(png_bytes(4, 4))}, "image_base64", "too small"),
        ({"designation": "ok", "image_key": "../etc/passwd"}, "image_key", "without '..'"),
        ({"designation": "ok", "image_key": "a.jpg", "image_base64": b64(product_image())}, "products.0", "not both"),
        ({"designation": "  ", "description": ""}, "products.0", "needs a designation"),
        ({"designation": "ok", "productid": 0}, "productid", "greater than or equal to 1"),
        ({"designation": "ok", "productid": "\u0661\u0662\u0663"}, "productid", "ASCII digits 0-9"),  # Arabic-Indic 123
        ({"designation": "ok", "productid": "\uff14\uff15\uff16"}, "productid", "ASCII digits 0-9"),  # full-width 456
        ({"designation": "ok", "productid": "1_000"}, "productid", "ASCII digits 0-9"),
        ({"designation": "ok", "productid": True}, "productid", "got a boolean"),
        ({"designation": "ok", "colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_invalid_products_get_a_clear_422(shared_client: TestClient, product: dict, where: str, contains: str) -> None:
    response = shared_client.post("/v1/predict", json=product)
    body = assert_error(response, 422, "validation_error", contains=contains)
    assert where in body["message"]
    assert len(response.content) < 2000, "an error never echoes the input back"


def test_an_image_over_the_byte_limit_is_refused(shared_client: TestClient) -> None:
    oversized = b"\xff\xd8" + b"\0" * MAX_IMAGE_BYTES
    assert_error(shared_client.post("/v1/predict", json={"designation": "ok", "image_base64": b64(oversized)}), 422, "validation_error",
                 contains=f"> {MAX_IMAGE_BYTES}")


def test_batch_size_is_bounded_by_settings(shared_client: TestClient) -> None:
    client = shared_client
    limit = client.app.state.serving.settings.serving.max_batch_size
    assert client.post("/v1/predict", json={"products": [POOL] * limit}).status_code == 200
    assert_error(client.post("/v1/predict", json={"products": [POOL] * (limit + 1)}), 422, "batch_too_large", contains=str(limit))
    assert_error(client.post("/v1/predict", json={"products": []}), 422, "validation_error", contains="at least 1")
    assert_error(client.post("/v1/predict", content=b"{not json", headers={"Content-Type": "application/json"}), 422,
                 "validation_error", contains="JSON")


def test_feedback_rejects_unknown_labels(shared_client: TestClient) -> None:
    assert_error(shared_client.post("/v1/feedback", json={"productid": 5, "prdtypecode": 9999}), 422, "validation_error",
                 contains="not one of the 27 known classes")
    assert_error(shared_client.post("/v1/feedback", json={"productid": 5, "prdtypecode": 10, "source": "a b"}), 422, "validation_error",
                 contains="source")
    assert_error(shared_client.post("/v1/feedback", json={"productid": -1, "prdtypecode": 10}), 422, "validation_error")
    assert_error(shared_client.post("/v1/feedback", json={"productid": "\uff14\uff15\uff16", "prdtypecode": 10}), 422,
                 "validation_error", contains="ASCII digits 0-9")  # full-width 456 is not productid 456


# ----------------------------------------------------------------------------- admin auth
def test_admin_routes_need_the_bearer_token(client: TestClient) -> None:
    missing = assert_error(client.post("/v1/admin/reload"), 401, "unauthorized", contains="missing")
    assert missing["message"]
    assert client.post("/v1/admin/reload").headers["WWW-Authenticate"] == "Bearer"
    assert_error(client.post("/v1/admin/reload", headers={"Authorization": "Bearer nope"}), 401, "unauthorized", contains="invalid")
    assert_error(client.post("/v1/admin/traffic", json={"challenger_share": 0.1}, headers={"Authorization": "Basic dXNlcjpwYXNz"}),
                 401, "unauthorized")
    assert client.post("/v1/admin/reload", headers=AUTH).status_code == 200
    response = client.post("/v1/admin/traffic", json={"challenger_share": 0.2}, headers=AUTH)
    assert response.status_code == 200 and response.json()["challenger_share"] == 0.2
    assert_error(client.post("/v1/admin/traffic", json={"challenger_share": 0.9}, headers=AUTH), 422, "validation_error")


def test_drift_reports_are_listed_and_served_behind_the_token(client: TestClient, serving_settings: Settings) -> None:
    assert client.get("/v1/reports/drift", headers=AUTH).json() == {"reports": []}
    store = Platform(serving_settings).store
    for day in ("2026-11-24", "2026-11-25"):
        store.put_bytes(f"monitoring/reports/{day}/data_drift.html", f"<html><body>drift on {day}</body></html>".encode())
    store.put_bytes("monitoring/reports/notes.txt", b"not a report")
    listed = client.get("/v1/reports/drift", headers=AUTH).json()["reports"]
    assert [r["check_date"] for r in listed] == ["2026-11-25", "2026-11-24"]  # newest first
    page = client.get(listed[0]["url"], headers=AUTH)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "drift on 2026-11-25" in page.text
    assert_error(client.get("/v1/reports/drift/2026-01-01", headers=AUTH), 404, "not_found", contains="GET /v1/reports/drift")
    assert_error(client.get("/v1/reports/drift/yesterday", headers=AUTH), 422, "validation_error")
    assert_error(client.get("/v1/reports/drift"), 401, "unauthorized")
    assert_error(client.get("/v1/reports/drift/2026-11-25", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")


def test_an_unreachable_report_store_is_a_503_not_a_crash(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from rakuten_ml.errors import ObjectStoreError

    class DeadStore:
        url = "s3://down/reports"

        def list(self, prefix: str = ""):  # noqa: ANN202
            raise ObjectStoreError("endpoint unreachable")

        def get_bytes(self, key: str) -> bytes:
            raise ObjectStoreError("endpoint unreachable")

    monkeypatch.setattr(client.app.state.serving.platform, "store", DeadStore())
    assert_error(client.get("/v1/reports/drift", headers=AUTH), 503, "store_unavailable", contains="retry later")
    assert_error(client.get("/v1/reports/drift/2026-11-25", headers=AUTH), 503, "store_unavailable")


def test_admin_routes_are_off_without_a_configured_token(serving_settings: Settings) -> None:
    settings = serving_settings.replace(api_admin_token=None)
    with TestClient(create_app(settings)) as client:
        assert_error(client.post("/v1/admin/reload", headers=AUTH), 503, "admin_disabled", contains="RAKUTEN_API_ADMIN_TOKEN")
        assert_error(client.post("/v1/admin/traffic", json={"challenger_share": 0.1}), 503, "admin_disabled")


# ----------------------------------------------------------------------------- readiness
def test_readiness_follows_the_model(serving_settings: Settings) -> None:
    settings = serving_settings.replace(registered_model_name="never-registered")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/readyz").status_code == 503
        assert_error(client.post("/v1/predict", json=POOL), 503, "model_unavailable")
        status = client.get("/v1/model").json()
        assert status["champion"] is None and "no registered version" in status["last_errors"]["champion"]


def test_ready_app_reports_what_it_serves(shared_client: TestClient) -> None:
    assert shared_client.get("/readyz").json() == {"status": "ok", "champion_version": "1", "challenger_version": None}
    status = shared_client.get("/v1/model").json()
    assert status["champion"]["version"] == "1" and status["champion"]["alias"] == "champion"
    assert status["champion"]["modalities"] == ["text"] and status["challenger"] is None


# ----------------------------------------------------------------------------- A/B routing
def test_ab_share_is_respected_and_sticky(client: TestClient, serving_settings: Settings) -> None:
    set_alias(serving_settings, "challenger", "2")
    reload = client.post("/v1/admin/reload", headers=AUTH).json()
    assert reload["changed"] == ["challenger"] and reload["models"]["challenger"]["version"] == "2"
    share = 0.3
    assert client.post("/v1/admin/traffic", json={"challenger_share": share}, headers=AUTH).json()["previous_share"] == 0.0

    def route(ids: list[int]) -> dict[int, tuple[str, str]]:
        seen: dict[int, tuple[str, str]] = {}
        for start in range(0, len(ids), 64):
            body = client.post("/v1/predict", json={"products": [POOL | {"productid": i} for i in ids[start:start + 64]]}).json()
            seen |= {p["productid"]: (p["variant"], p["model_version"]) for p in body["predictions"]}
        return seen

    ids = list(range(10_000, 12_000))
    first = route(ids)
    counts = Counter(variant for variant, _ in first.values())
    assert abs(counts["challenger"] / len(ids) - share) < 0.04, counts  # 4 binomial standard deviations
    assert all(version == {"champion": "1", "challenger": "2"}[variant] for variant, version in first.values())
    assert all(first[i][0] == assign_variant(i, share, serving_settings.ab.salt) for i in ids), "same hash as batch scoring"
    assert route(ids[:300]) == {i: first[i] for i in ids[:300]}, "a product keeps its variant"
    # without a productid there is nothing to stick to: always the champion
    anonymous = client.post("/v1/predict", json={"products": [POOL] * 20}).json()["predictions"]
    assert {p["variant"] for p in anonymous} == {"champion"}
    # removing the challenger alias ends the experiment on the next reload
    set_alias(serving_settings, "challenger", None)
    assert client.post("/v1/admin/reload", headers=AUTH).json()["models"]["challenger"] is None
    assert {v for v, _ in route(ids[:200]).values()} == {"champion"}


# ----------------------------------------------------------------------------- metrics
def test_metrics_expose_requests_predictions_and_model(client: TestClient, serving_settings: Settings) -> None:
    for _ in range(3):
        client.post("/v1/predict", json={"products": [POOL, {"designation": "Roman policier"}]})
    client.post("/v1/predict", json={"designation": "x" * 2000})
    text = client.get("/metrics").text
    assert metric_value(text, "rakuten_http_requests_total", route="/v1/predict", status="200", variant="champion") == 3
    assert metric_value(text, "rakuten_http_requests_total", route="/v1/predict", status="422") == 1
    assert metric_value(text, "rakuten_http_request_duration_seconds_count", route="/v1/predict", variant="champion") == 3
    assert metric_value(text, "rakuten_prediction_confidence_count", variant="champion") == 6
    assert metric_value(text, "rakuten_predicted_class_total", variant="champion", prdtypecode="2583") == 3
    assert metric_value(text, "rakuten_model_info", variant="champion", model_version="1") == 1
    assert metric_value(text, "rakuten_model_loads_total", variant="champion", outcome="success") == 1
    assert "rakuten_rollbacks_total" in text
    assert metric_value(text, "rakuten_cache_requests_total", result="hit") == 0
    # a second app in the same process has its own registry
    with TestClient(create_app(serving_settings)) as other:
        assert metric_value(other.get("/metrics").text, "rakuten_http_requests_total", route="/v1/predict") == 0


def test_a_champion_moving_back_counts_a_rollback(client: TestClient, serving_settings: Settings) -> None:
    set_alias(serving_settings, "champion", "2")
    assert client.post("/v1/admin/reload", headers=AUTH).json()["changed"] == ["champion"]
    assert metric_value(client.get("/metrics").text, "rakuten_model_info", variant="champion", model_version="1") == 0
    set_alias(serving_settings, "champion", "1")
    client.post("/v1/admin/reload", headers=AUTH)
    text = client.get("/metrics").text
    assert metric_value(text, "rakuten_rollbacks_total") == 1
    assert metric_value(text, "rakuten_model_info", variant="champion", model_version="1") == 1


def test_the_batcher_sees_how_many_predict_requests_are_in_flight(client: TestClient) -> None:
    """The middleware counts /v1/predict requests (only those) for the batcher's early end of a wait."""
    state = client.app.state.serving
    seen: list[int] = []
    champion = state.manager.models.champion

    class Counting:
        modalities = champion.classifier.modalities

        def predict(self, *args: object) -> object:
            seen.append(state.batcher.requests_in_flight())
            return champion.classifier.predict(*args)

    from dataclasses import replace

    state.manager._models = replace(state.manager.models, champion=replace(champion, classifier=Counting()))
    assert client.post("/v1/predict", json=POOL).status_code == 200
    assert client.post("/v1/predict", json={"products": [{"designation": ""}]}).status_code == 422  # counted, then left
    assert client.get("/healthz").status_code == 200
    assert seen == [1]
    assert state.batcher.requests_in_flight() == 0


# ----------------------------------------------------------------------------- 500s
def test_an_unexpected_error_is_logged_and_answered_without_the_trace(client: TestClient, caplog) -> None:
    class Exploding:
        modalities = ["text"]

        def predict(self, *args: object) -> None:
            raise RuntimeError("secret internal detail")

    manager = client.app.state.serving.manager
    from dataclasses import replace

    manager._models = replace(manager.models, champion=replace(manager.models.champion, classifier=Exploding()))
    with caplog.at_level("ERROR"):
        response = client.post("/v1/predict", json=POOL)
    body = assert_error(response, 500, "internal_error", contains=response.headers["X-Request-ID"])
    assert "secret internal detail" not in response.text and "RuntimeError" not in response.text
    assert any(body["request_id"] in r.getMessage() and r.exc_info for r in caplog.records), "the trace is in the server log"
    assert metric_value(client.get("/metrics").text, "rakuten_http_requests_total", route="/v1/predict", status="500") == 1


def test_openapi_documents_every_route(shared_client: TestClient) -> None:
    paths = shared_client.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/v1/predict", "/v1/feedback", "/v1/admin/reload", "/v1/admin/traffic", "/healthz", "/readyz",
                          "/v1/model", "/metrics", "/v1/reports/drift", "/v1/reports/drift/{check_date}"}
    assert os.environ.get("RAKUTEN_API_ADMIN_TOKEN") is None  # conftest isolates the environment
