"""Review labels end to end on SQLite and PostgreSQL: what one label writes, idempotence per reviewer, two
reviewers kept apart, and the next ingest's snapshot carrying the label (with the product's photo)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from rakuten_ml.data.ingest import ingest
from rakuten_ml.data.snapshot import load_products
from rakuten_ml.labels import CLASS_CODES
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import feedback, fetch_all, labelled_products_table, predictions, review_labels, upsert
from rakuten_ml.storage.object_store import open_store
from serving.app import create_app
from tests.support.platforms import build_platform
from tests.support.serving import metric_value

JSON = {"Accept": "application/json"}


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path) -> Settings:
    values: dict[str, object] = {"home": tmp_path / "home", "review_reviewer_tokens": "alice:token-a,bob:token-b",
                                 "review_session_secret": "s" * 32, "review_queue_cache_s": 0.0}
    if request.param == "postgresql":
        values["database_url"] = request.getfixturevalue("pg_url")
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def queued(settings: Settings) -> tuple[str, list[dict]]:
    """A 30-product catalogue with photos, ingested; its first 6 products predicted with decision review."""
    platform, snapshot_id = build_platform(settings, rows=30, images=30)
    products = load_products(platform.store, snapshot_id).sort_values("productid").to_dict("records")[:6]
    at = datetime(2026, 12, 1, tzinfo=UTC)
    upsert(platform.engine, predictions, [
        {"run_id": "run-1", "productid": p["productid"], "model_name": "m", "model_version": "1", "variant": "champion",
         "prdtypecode": p["prdtypecode"], "confidence": 0.5 + i / 100, "decision": "review", "modality": "text", "scored_at": at}
        for i, p in enumerate(products)
    ])
    return snapshot_id, products


def client_for(settings: Settings, token: str) -> tuple[TestClient, str]:
    app = create_app(settings, load_models=False)
    client = TestClient(app)
    csrf = client.get("/review/login", headers=JSON).json()["csrf_token"]
    return client, client.post("/review/login", data={"token": token, "csrf_token": csrf}, headers=JSON).json()["csrf_token"]


def other_code(code: int) -> int:
    return next(c for c in CLASS_CODES if c != code)


def test_a_label_writes_three_tables_once_and_the_next_snapshot_carries_it(settings: Settings, queued) -> None:
    snapshot_id, products = queued
    alice, csrf = client_for(settings, "token-a")
    queue = alice.get("/review/queue.json", headers=JSON).json()
    assert queue["total"] == 6 and [i["productid"] for i in queue["items"]] == [p["productid"] for p in products]  # least sure first
    target = products[0]
    label = other_code(target["prdtypecode"])
    for _ in range(2):  # a repeated POST (double click, retry) changes nothing
        response = alice.post("/review/label", data={"productid": target["productid"], "prdtypecode": label, "csrf_token": csrf}, headers=JSON)
        assert response.status_code == 200 and response.json()["agrees"] is False, response.text
    engine = alice.app.state.serving.platform.engine
    [row] = fetch_all(engine, sa.select(review_labels))
    assert (row["productid"], row["reviewer"], row["prdtypecode"], row["predicted_code"], row["model_version"]) == (
        target["productid"], "alice", label, target["prdtypecode"], "1")
    [fb] = fetch_all(engine, sa.select(feedback))
    assert (fb["productid"], fb["prdtypecode"], fb["source"]) == (target["productid"], label, "review:alice")
    [labelled] = fetch_all(engine, sa.select(labelled_products_table(settings.ingest.labelled_products_table)))
    assert labelled["prdtypecode"] == label and labelled["designation"] == target["designation"]
    assert labelled["imageid"] == target["imageid"] and labelled["image_key"] is None
    queue = alice.get("/review/queue.json", headers=JSON).json()
    assert queue["total"] == 5 and target["productid"] not in [i["productid"] for i in queue["items"]]
    metrics = alice.app.state.serving.metrics.render()[0].decode()
    assert metric_value(metrics, "rakuten_review_labels_total", reviewer="alice") == 2.0
    assert metric_value(metrics, "rakuten_review_backlog") == 5.0
    # the next ingest (catalogue files + labelled table, photos required) takes the human label
    platform = alice.app.state.serving.platform
    result = ingest(source_store=open_store(settings.catalogue_url, settings), source_prefix="", target_store=platform.store,
                    engine=platform.engine, policy=settings.ingest, labelled_engine=platform.engine)
    assert result.snapshot_id != snapshot_id and result.run.n_quarantined == 1  # the export's row, superseded
    after = load_products(platform.store, result.snapshot_id).set_index("productid")
    assert after.loc[target["productid"], "prdtypecode"] == label
    assert after.loc[target["productid"], "image_sha256"] == target["image_sha256"], "the label kept the product's photo"
    assert after.loc[target["productid"], "source"] == "postgres"


def test_two_reviewers_who_disagree_are_both_kept_and_feedback_holds_the_latest(settings: Settings, queued) -> None:
    _, products = queued
    target = products[1]
    alice, alice_csrf = client_for(settings, "token-a")
    bob, bob_csrf = client_for(settings, "token-b")
    first, second = target["prdtypecode"], other_code(target["prdtypecode"])
    assert alice.post("/review/label", data={"productid": target["productid"], "prdtypecode": first, "csrf_token": alice_csrf},
                      headers=JSON).json()["agrees"] is True
    assert bob.post("/review/label", data={"productid": target["productid"], "prdtypecode": second, "csrf_token": bob_csrf},
                    headers=JSON).status_code == 200
    engine = alice.app.state.serving.platform.engine
    rows = {r["reviewer"]: r["prdtypecode"] for r in fetch_all(engine, sa.select(review_labels))}
    assert rows == {"alice": first, "bob": second}
    [fb] = fetch_all(engine, sa.select(feedback))
    assert (fb["prdtypecode"], fb["source"]) == (second, "review:bob")
    # alice corrects herself: her row changes, bob's does not
    alice.post("/review/label", data={"productid": target["productid"], "prdtypecode": second, "csrf_token": alice_csrf}, headers=JSON)
    rows = {r["reviewer"]: r["prdtypecode"] for r in fetch_all(engine, sa.select(review_labels))}
    assert rows == {"alice": second, "bob": second}
    # a skip leaves only the skipper's queue
    skipped = products[2]["productid"]
    assert alice.post("/review/skip", data={"productid": skipped, "csrf_token": alice_csrf}, headers=JSON).status_code == 200
    assert skipped not in [i["productid"] for i in alice.get("/review/queue.json").json()["items"]]
    assert skipped in [i["productid"] for i in bob.get("/review/queue.json").json()["items"]]


def test_only_queued_products_can_be_labelled_or_have_their_photo_served(settings: Settings, queued) -> None:
    _, products = queued
    alice, csrf = client_for(settings, "token-a")
    image = alice.get(f"/review/image/{products[0]['productid']}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg" and image.content[:2] == b"\xff\xd8"
    not_queued = 999_999_999
    assert alice.get(f"/review/image/{not_queued}").status_code == 404
    assert alice.get("/review/image/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)
    response = alice.post("/review/label", data={"productid": not_queued, "prdtypecode": 10, "csrf_token": csrf}, headers=JSON)
    assert response.status_code == 404 and response.json()["error"] == "not_queued"
