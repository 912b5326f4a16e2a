"""The review queue without a model: its order, the description sanitizer, the queue query on SQLite, and the
pages' guards (503 unconfigured, login required, CSRF refused)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings, parse_reviewer_tokens
from rakuten_ml.storage.database import paired_predictions, prediction_log, predictions, review_skips, upsert
from serving.app import create_app
from serving.review.auth import reviewer_for
from serving.review.order import QueueItem, rarity_boost, review_order
from serving.review.queue import done_by, read_queue_state
from serving.review.sanitize import sanitize_description

TOKENS = "alice:token-a,bob:token-b"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


# ----------------------------------------------------------------------------- the order
def item(pid: int, code: int, confidence: float, *, disagreement: bool = False) -> QueueItem:
    return QueueItem(pid, code, confidence, "1", disagreement=disagreement)


def test_disagreements_come_first_then_the_least_confident() -> None:
    share = {10: 0.5, 40: 0.5}
    items = [item(1, 10, 0.7), item(2, 10, 0.3), item(3, 40, 0.95, disagreement=True), item(4, 40, 0.5)]
    assert [r.item.productid for r in review_order(items, share, boost_cap=5.0, n_classes=2)] == [3, 2, 4, 1]


def test_a_rare_predicted_class_is_boosted_but_capped() -> None:
    share = {10: 0.9, 40: 0.09, 50: 0.01}
    items = [item(1, 10, 0.5), item(2, 40, 0.8), item(3, 50, 0.95)]
    ranked = review_order(items, share, boost_cap=4.0, n_classes=3)
    # 40: (1-0.8) * 1/(3*0.09) = 0.74 > 10: 0.5 * 1 ; 50: 0.05 * min(4, 33) = 0.2
    assert [r.item.productid for r in ranked] == [2, 1, 3]
    assert ranked[0].priority == pytest.approx(0.2 / 0.27)
    assert ranked[2].priority == pytest.approx(0.05 * 4.0)


def test_the_boost_is_one_at_or_above_the_uniform_share_and_the_cap_for_an_unseen_class() -> None:
    assert rarity_boost(1 / 27, boost_cap=5.0) == pytest.approx(1.0)
    assert rarity_boost(0.5, boost_cap=5.0) == 1.0
    assert rarity_boost(0.0, boost_cap=5.0) == 5.0


def test_ties_are_broken_by_productid_so_the_order_is_stable() -> None:
    items = [item(9, 10, 0.6), item(2, 10, 0.6), item(5, 10, 0.6)]
    assert [r.item.productid for r in review_order(items, {10: 1.0}, boost_cap=5.0)] == [2, 5, 9]
    assert review_order([], {}, boost_cap=5.0) == []


# ----------------------------------------------------------------------------- the sanitizer
@pytest.mark.parametrize(
    ("html", "gone"),
    [
        ("<script>window.__pwned=1</script>ok", ["script", "__pwned"]),
        ('<img src=x onerror="window.__pwned=2">ok', ["img", "onerror", "src"]),
        ('<a href="javascript:alert(1)">ok</a>', ["javascript", "href", "<a"]),
        ('<iframe src="https://evil.example/"></iframe>ok', ["iframe", "evil"]),
        ('<p style="background:url(https://evil.example/x.png)" onclick="x()">ok</p>', ["style", "evil", "onclick"]),
        ('<svg onload="x()"><image href="https://evil.example/"/></svg>ok', ["svg", "onload", "evil"]),
        ('<link rel=stylesheet href="https://evil.example/c.css"><style>body{}</style>ok', ["link", "style", "evil"]),
        ('<form action="https://evil.example/"><input name=q></form>ok', ["form", "input", "evil"]),
    ],
)
def test_the_sanitizer_removes_scripts_handlers_and_remote_loads(html: str, gone: list[str]) -> None:
    clean = sanitize_description(html)
    assert "ok" in clean
    for fragment in gone:
        assert fragment not in clean


def test_the_sanitizer_keeps_harmless_formatting_and_text() -> None:
    html = "<p>Très <b>bon</b> &eacute;tat<br><ul><li>pompe</li></ul> 3 &lt; 4</p><div>piscine</div>"
    assert sanitize_description(html) == "<p>Très <b>bon</b> état<br></p><ul><li>pompe</li></ul> 3 &lt; 4<p></p>piscine"
    assert sanitize_description(None) == sanitize_description("") == ""


def test_reviewer_tokens_parse_and_match() -> None:
    tokens = parse_reviewer_tokens(" alice:token-a , bob:token-b,")
    assert tokens == {"alice": "token-a", "bob": "token-b"}
    assert reviewer_for(tokens, "token-b") == "bob" and reviewer_for(tokens, "token-c") is None
    with pytest.raises(ValueError, match="RAKUTEN_REVIEW_REVIEWER_TOKENS"):
        parse_reviewer_tokens("alice")


# ----------------------------------------------------------------------------- the queue query
def prediction(pid: int, code: int, confidence: float, decision: str, at: datetime, run: str = "run-1") -> dict:
    return {"run_id": run, "productid": pid, "model_name": "m", "model_version": "1", "variant": "champion", "prdtypecode": code,
            "confidence": confidence, "decision": decision, "modality": "text", "scored_at": at}


def test_the_queue_reads_the_latest_prediction_and_pair_of_each_product(tmp_path) -> None:
    engine = Platform(Settings(home=tmp_path)).prepare().engine
    upsert(engine, predictions, [
        prediction(1, 10, 0.5, "review", T0), prediction(1, 10, 0.9, "auto", T0 + timedelta(days=1), run="run-2"),  # now sure
        prediction(2, 40, 0.95, "auto", T0), prediction(3, 50, 0.6, "review", T0), prediction(4, 10, 0.9, "auto", T0),
    ])
    upsert(engine, prediction_log, [  # online traffic is newer than the nightly run for product 2
        {"request_id": "r1", "position": 0, "productid": 2, "model_name": "m", "model_version": "2", "variant": "challenger",
         "prdtypecode": 40, "confidence": 0.4, "decision": "review", "modality": "text", "latency_ms": 1.0, "created_at": T0 + timedelta(hours=1)},
        {"request_id": "r1", "position": 1, "productid": None, "model_name": "m", "model_version": "2", "variant": "challenger",
         "prdtypecode": 40, "confidence": 0.1, "decision": "review", "modality": "text", "latency_ms": 1.0, "created_at": T0},
    ])
    pair = {"origin": "batch", "model_name": "m", "champion_version": "1", "challenger_version": "2", "champion_confidence": 0.9,
            "challenger_confidence": 0.8}
    upsert(engine, paired_predictions, [
        pair | {"source_id": "run-1", "productid": 4, "champion_code": 10, "challenger_code": 1280, "scored_at": T0},
        pair | {"source_id": "run-1", "productid": 3, "champion_code": 50, "challenger_code": 60, "scored_at": T0},
        pair | {"source_id": "run-2", "productid": 3, "champion_code": 50, "challenger_code": 50, "scored_at": T0 + timedelta(days=1)},
    ])
    state = read_queue_state(engine)
    assert sorted(state.items) == [2, 3, 4]
    assert state.items[2].model_version == "2" and state.items[2].confidence == 0.4
    assert state.items[4].disagreement and state.items[4].challenger_code == 1280 and not state.items[3].disagreement
    assert state.class_share == {10: 0.5, 40: 0.25, 50: 0.25}
    upsert(engine, review_skips, [{"productid": 3, "reviewer": "alice", "skipped_at": T0}])
    assert done_by(engine, "alice") == {3} and done_by(engine, "bob") == set()


# ----------------------------------------------------------------------------- the guards
def review_client(tmp_path, **review: str) -> TestClient:
    app = create_app(Settings(home=tmp_path, review_queue_cache_s=0.0, **review), load_models=False)  # type: ignore[arg-type]
    return TestClient(app)


@pytest.mark.parametrize(("method", "path"), [("get", "/review"), ("get", "/review/login"), ("get", "/review/queue.json"),
                                              ("post", "/review/label"), ("post", "/review/login"), ("get", "/review/image/1")])
@pytest.mark.parametrize("review", [{}, {"review_reviewer_tokens": TOKENS}, {"review_session_secret": "k" * 32}])
def test_without_tokens_and_a_session_secret_the_pages_answer_503(tmp_path, method: str, path: str, review: dict) -> None:
    response = getattr(review_client(tmp_path, **review), method)(path)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "review_disabled"
    assert "RAKUTEN_REVIEW_REVIEWER_TOKENS" in response.json()["message"]


@pytest.fixture
def client(tmp_path) -> TestClient:
    return review_client(tmp_path, review_reviewer_tokens=TOKENS, review_session_secret="k" * 32)


def login(client: TestClient, token: str) -> str:
    csrf = client.get("/review/login", headers={"Accept": "application/json"}).json()["csrf_token"]
    response = client.post("/review/login", data={"token": token, "csrf_token": csrf}, headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    return response.json()["csrf_token"]


def test_the_pages_need_a_login(client: TestClient) -> None:
    response = client.get("/review", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/review/login"
    assert client.get("/review/queue.json").status_code == 401
    assert client.get("/review/image/1").status_code == 401
    csrf = client.get("/review/login", headers={"Accept": "application/json"}).json()["csrf_token"]
    assert client.post("/review/label", data={"productid": 1, "prdtypecode": 10, "csrf_token": csrf}).status_code == 401
    page = client.get("/review/login")
    assert page.status_code == 200 and 'name="csrf_token"' in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'; img-src 'self'; script-src 'self'")


def test_a_wrong_token_is_refused_and_a_good_one_starts_a_fresh_session(client: TestClient) -> None:
    csrf = client.get("/review/login", headers={"Accept": "application/json"}).json()["csrf_token"]
    refused = client.post("/review/login", data={"token": "token-x", "csrf_token": csrf})
    assert refused.status_code == 401 and "Unknown token" in refused.text
    fresh = login(client, "token-b")
    assert fresh != csrf, "the anonymous session's CSRF token does not survive the login"
    assert client.get("/review/login", headers={"Accept": "application/json"}).json()["reviewer"] == "bob"


def test_a_post_without_the_sessions_csrf_token_is_refused(client: TestClient) -> None:
    assert client.post("/review/login", data={"token": "token-a"}).status_code == 403
    csrf = login(client, "token-a")
    for data, headers in [({}, {}), ({"csrf_token": "forged"}, {}), ({}, {"X-CSRF-Token": "forged"})]:
        response = client.post("/review/label", data={"productid": 1, "prdtypecode": 10} | data, headers=headers)
        assert response.status_code == 403 and response.json()["error"] == "csrf_failed", response.text
        assert client.post("/review/skip", data={"productid": 1} | data, headers=headers).status_code == 403
    other = review_client(client.app.state.serving.settings.home, review_reviewer_tokens=TOKENS, review_session_secret="k" * 32)
    other_csrf = login(other, "token-a")  # a token of another session is no good here
    response = client.post("/review/label", data={"productid": 1, "prdtypecode": 10, "csrf_token": other_csrf})
    assert response.status_code == 403
    # with the right token it gets past CSRF (the product is not queued: there is no snapshot of it)
    assert client.post("/review/label", data={"productid": 1, "prdtypecode": 999, "csrf_token": csrf}).status_code == 422
    assert client.post("/review/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/review/queue.json").status_code == 401
