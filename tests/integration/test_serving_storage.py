"""Serving against the real shared services: feedback and prediction_log in PostgreSQL, the
prediction cache in Redis (127.0.0.1:6379, under a unique key prefix removed afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient

from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import feedback, fetch_all, prediction_log
from serving.app import create_app
from tests.support.services import admin_sql, free_port
from tests.support.serving import ADMIN_TOKEN, AUTH, POOL, assert_error, metric_value, registry_settings, set_alias

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def pg_settings(tmp_path_factory: pytest.TempPathFactory, tmp_path, pg_url: str) -> Settings:
    settings = registry_settings(tmp_path_factory, tmp_path, database_url=pg_url, api_admin_token=ADMIN_TOKEN)
    set_alias(settings, "champion", "1")
    return settings


def rows(settings: Settings, statement: sa.Select) -> list[dict]:
    engine = sa.create_engine(settings.database_url)
    try:
        return fetch_all(engine, statement)
    finally:
        engine.dispose()


def test_feedback_round_trip_to_postgresql(pg_settings: Settings) -> None:
    with TestClient(create_app(pg_settings)) as client:
        first = client.post("/v1/feedback", json={"productid": 987654321, "prdtypecode": 2583})
        assert first.status_code == 200, first.text
        assert first.json()["champion_version"] == "1" and first.json()["source"] == "human"
        corrected = client.post("/v1/feedback", json={"productid": 987654321, "prdtypecode": 1560, "source": "qa-team"})
        assert corrected.status_code == 200
        client.post("/v1/feedback", json={"productid": 5, "prdtypecode": 10})
        assert metric_value(client.get("/metrics").text, "rakuten_feedback_total", source="human") == 2
    stored = rows(pg_settings, sa.select(feedback).order_by(feedback.c.productid))
    assert [(r["productid"], r["prdtypecode"], r["source"]) for r in stored] == [(5, 10, "human"), (987654321, 1560, "qa-team")]
    assert stored[1]["received_at"].tzinfo is not None


def test_predictions_are_logged_to_postgresql(pg_settings: Settings) -> None:
    settings = pg_settings.replace(serving_log_flush_s=0.1)
    with TestClient(create_app(settings)) as client:
        batch = client.post("/v1/predict", json={"products": [POOL | {"productid": 100 + i} for i in range(5)]}).json()
        single = client.post("/v1/predict", json={"designation": "Roman policier"}).json()
        assert client.app.state.serving.prediction_logger.flush(10)
    logged = rows(settings, sa.select(prediction_log).order_by(prediction_log.c.request_id, prediction_log.c.position))
    by_request = {r["request_id"]: [] for r in logged}
    for r in logged:
        by_request[r["request_id"]].append(r)
    assert set(by_request) == {batch["request_id"], single["request_id"]}
    assert [r["productid"] for r in by_request[batch["request_id"]]] == [100, 101, 102, 103, 104]
    assert [r["position"] for r in by_request[batch["request_id"]]] == [0, 1, 2, 3, 4]
    [anonymous] = by_request[single["request_id"]]
    assert anonymous["productid"] is None and anonymous["prdtypecode"] == single["predictions"][0]["prdtypecode"]
    assert {(r["model_name"], r["model_version"], r["variant"]) for r in logged} == {(settings.registered_model_name, "1", "champion")}
    assert all(r["latency_ms"] > 0 and r["decision"] in ("auto", "review") for r in logged)


def test_a_dead_database_fails_no_prediction(pg_settings: Settings) -> None:
    dead = pg_settings.replace(database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nothing", serving_log_flush_s=0.05)
    with TestClient(create_app(dead)) as client:
        for _ in range(3):
            assert client.post("/v1/predict", json={"products": [POOL, POOL]}).status_code == 200
        assert client.app.state.serving.prediction_logger.flush(20)
        assert metric_value(client.get("/metrics").text, "rakuten_prediction_log_rows_total", outcome="dropped") == 6
        assert_error(client.post("/v1/feedback", json={"productid": 1, "prdtypecode": 10}), 503, "database_unavailable")


@pytest.fixture
def doomed_database(pg_server_url: str) -> Iterator[str]:
    """A PostgreSQL database of its own, which the test may drop while the app holds an engine on it."""
    name = f"rakuten_doomed_{uuid.uuid4().hex[:10]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_feedback_while_the_database_is_gone_is_a_503(tmp_path_factory: pytest.TempPathFactory, tmp_path, doomed_database: str) -> None:
    """The engine was made while the database was up: the upsert itself meets the outage."""
    settings = registry_settings(tmp_path_factory, tmp_path, database_url=doomed_database)
    set_alias(settings, "champion", "1")
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/feedback", json={"productid": 1, "prdtypecode": 10}).status_code == 200
        admin_sql(f'DROP DATABASE "{doomed_database.rsplit("/", 1)[1]}" WITH (FORCE)')
        response = client.post("/v1/feedback", json={"productid": 2, "prdtypecode": 10})
        body = assert_error(response, 503, "database_unavailable", contains="retry later")
        assert response.headers["Retry-After"] == "10" and "productid" not in body["message"]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"rakuten-test:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}. Start it (see .ci/run).")
    yield prefix
    for key in client.scan_iter(match=f"{prefix}:*", count=500):
        client.delete(key)
    client.close()


def test_redis_cache_hits_and_misses(tmp_path_factory: pytest.TempPathFactory, tmp_path, redis_prefix: str) -> None:
    settings = registry_settings(tmp_path_factory, tmp_path, api_admin_token=ADMIN_TOKEN, serving_cache_enabled=True,
                                 serving_redis_url=REDIS_URL, serving_cache_prefix=redis_prefix, serving_cache_ttl_s=120)
    set_alias(settings, "champion", "1")
    products = {"products": [POOL | {"productid": 7}, {"designation": "Roman policier"}]}
    with TestClient(create_app(settings)) as client:
        first = client.post("/v1/predict", json=products).json()["predictions"]
        again = client.post("/v1/predict", json=products).json()["predictions"]
        assert [p["cached"] for p in first] == [False, False] and [p["cached"] for p in again] == [True, True]
        assert [{k: v for k, v in p.items() if k != "cached"} for p in first] == [{k: v for k, v in p.items() if k != "cached"} for p in again]
        # outer whitespace and a missing vs empty description are the same input
        same = client.post("/v1/predict", json={"designation": "  Roman policier ", "description": ""}).json()["predictions"]
        assert same[0]["cached"] is True
        text = client.get("/metrics").text
        assert metric_value(text, "rakuten_cache_requests_total", result="hit") == 3
        assert metric_value(text, "rakuten_cache_requests_total", result="miss") == 2
        # the version is in the key: after a swap the new model answers, not the old cache
        set_alias(settings, "champion", "2")
        client.post("/v1/admin/reload", headers=AUTH)
        swapped = client.post("/v1/predict", json=products).json()["predictions"]
        assert [(p["model_version"], p["cached"]) for p in swapped] == [("2", False), ("2", False)]
    keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(match=f"{redis_prefix}:*"))
    assert len(keys) == 4 and all(k.decode().split(":")[3] in ("1", "2") for k in keys)
    ttl = redis.Redis.from_url(REDIS_URL).ttl(keys[0])
    assert 0 < ttl <= 120
