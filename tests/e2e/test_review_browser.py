"""The review page in a real browser (Debian's chromium, headless) on a uvicorn server with a trained champion:
log in, label three products with the keyboard, skip one, and a hostile description that stays inert."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import uvicorn

from rakuten_ml.data.ingest import ingest
from rakuten_ml.data.snapshot import load_products
from rakuten_ml.lifecycle.reviewers import simulate_reviewers
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import fetch_all, predictions, review_labels, review_skips, upsert
from rakuten_ml.storage.object_store import open_store
from serving.app import create_app
from tests.support.catalogues import good_rows, write_catalogue
from tests.support.paths import REPO_ROOT
from tests.support.services import free_port
from tests.support.serving import registry_settings, set_alias

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"]
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("RAKUTEN_TEST_UPDATE_SCREENSHOTS") == "1"  # read at import: the suite clears RAKUTEN_*
HOSTILE = '<p>Coussin</p><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><img src="https://evil.example/p.png">'


@contextmanager
def serve(app) -> Iterator[str]:
    """``app`` under uvicorn in a thread on a free loopback port (its lifespan loads the champion)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def review_server(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[tuple[str, Settings, list[dict]]]:
    settings = registry_settings(tmp_path_factory, tmp_path, review_reviewer_tokens="alice:token-a,carol:token-c",
                                 review_session_secret="s" * 32, review_queue_cache_s=0.0)
    set_alias(settings, "champion", "1")
    platform = Platform(settings).prepare()
    catalogue = open_store(settings.catalogue_url, settings)
    rows = good_rows(8)
    rows[0]["description"] = HOSTILE
    write_catalogue(catalogue, rows)
    result = ingest(source_store=catalogue, source_prefix="", target_store=platform.store, engine=platform.engine, policy=settings.ingest)
    products = load_products(platform.store, result.snapshot_id).sort_values("productid").to_dict("records")
    assert products[0]["description"] == HOSTILE
    upsert(platform.engine, predictions, [  # the hostile product is the least sure: it is the first card
        {"run_id": "run-1", "productid": p["productid"], "model_name": "m", "model_version": "1", "variant": "champion",
         "prdtypecode": p["prdtypecode"], "confidence": 0.3 + i / 20, "decision": "review", "modality": "text",
         "scored_at": datetime(2026, 12, 1, tzinfo=UTC)}
        for i, p in enumerate(products)
    ])
    app = create_app(settings)
    with serve(app) as url:
        yield url, settings, products


def test_a_reviewer_labels_with_the_keyboard_and_a_hostile_description_stays_inert(review_server) -> None:
    from playwright.sync_api import sync_playwright

    url, settings, products = review_server
    shots = SCREENSHOTS if UPDATE_SCREENSHOTS else None
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(f"{url}/review")
            assert page.url.endswith("/review/login")
            if shots:
                page.screenshot(path=shots / "review-login.png")
            page.fill("#token", "token-a")
            with page.expect_navigation():
                page.press("#token", "Enter")
            assert page.url == f"{url}/review"
            # the hostile product: its script did not run, its images are gone, its text is there
            assert page.locator(".card").get_attribute("data-productid") == str(products[0]["productid"])
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert page.locator(".description img, .description script").count() == 0
            assert "Coussin" in page.inner_text("#description")
            assert page.locator("#label-form button[data-key]").count() == 3
            chosen = [int(page.locator('#label-form button[data-key="1"]').get_attribute("value") or 0)]
            with page.expect_navigation():
                page.keyboard.press("1")
            assert page.evaluate("typeof window.__pwned") == "undefined"
            if shots:
                page.screenshot(path=shots / "review-queue.png")
            chosen.append(int(page.locator('#label-form button[data-key="3"]').get_attribute("value") or 0))
            with page.expect_navigation():
                page.keyboard.press("3")
            with page.expect_navigation():  # skip the third card
                page.keyboard.press("s")
            page.keyboard.press("c")  # the fourth from the list of all classes, filtered by typing
            page.keyboard.type("piscine")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "4 products waiting" in page.inner_text(".backlog")
        finally:
            browser.close()
    hosts = {urlsplit(r).hostname for r in requests}
    assert hosts == {"127.0.0.1"}, f"the page reached out: {sorted(r for r in requests if '127.0.0.1' not in r)}"
    engine = Platform(settings).engine
    labels = {r["productid"]: r["prdtypecode"] for r in fetch_all(engine, sa.select(review_labels).where(review_labels.c.reviewer == "alice"))}
    pids = [p["productid"] for p in products]
    assert labels == {pids[0]: chosen[0], pids[1]: chosen[1], pids[3]: 2583}  # 2583: "Piscine et accessoires"
    assert [r["productid"] for r in fetch_all(engine, sa.select(review_skips))] == [pids[2]]
    # the demo's reviewer, over plain HTTP: right labels but for every other one
    truth = {p["productid"]: p["prdtypecode"] for p in products[:6]}
    counts = simulate_reviewers(url, "carol", "token-c", truth, limit=10, error_rate=0.0, seed=1)
    assert counts | {"agreed_with_model": 0} == {"reviewer": "carol", "labelled": 6, "correct": 6, "wrong": 0, "skipped": 2,
                                                 "agreed_with_model": 0}
    assert counts["agreed_with_model"] == 6  # the queued predictions were the true classes
