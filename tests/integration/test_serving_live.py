"""The app as deployed: a real uvicorn process on a loopback port, real HTTP clients.

Hot swap under load (zero failed requests while the champion alias moves), the prediction log
flushed to PostgreSQL on shutdown, and ``rakuten-ml serve`` with several workers sharing one
Prometheus view.
"""

from __future__ import annotations

import sys
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from rakuten_ml.storage.database import count_rows, prediction_log
from tests.support.services import free_port
from tests.support.serving import (
    ADMIN_TOKEN,
    POOL,
    metric_value,
    registry_settings,
    server_process,
    set_alias,
    settings_env,
    uvicorn_server,
)


def test_hot_swap_under_load_fails_no_request(tmp_path_factory: pytest.TempPathFactory, tmp_path, pg_url: str) -> None:
    settings = registry_settings(tmp_path_factory, tmp_path, database_url=pg_url)
    set_alias(settings, "champion", "1")
    env = settings_env(settings) | {"RAKUTEN_SERVING_POLL_INTERVAL_S": "0.3", "RAKUTEN_SERVING_LOG_FLUSH_S": "0.5"}
    failures: list[str] = []
    per_thread: list[list[str]] = [[] for _ in range(4)]
    products_ok = [0] * 4
    stop = threading.Event()

    def hammer(slot: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            i = 0
            while not stop.is_set():
                i += 1
                body = {"products": [POOL | {"productid": slot * 1_000_000 + i}, {"designation": f"Roman policier tome {i}"}]}
                try:
                    response = client.post("/v1/predict", json=body)
                except httpx.HTTPError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                versions = {p["model_version"] for p in response.json()["predictions"]}
                if len(versions) != 1 or response.headers["X-Model-Version"] != next(iter(versions)):
                    failures.append(f"one request mixed versions: {versions}")
                per_thread[slot].append(next(iter(versions)))
                products_ok[slot] += 2

    with uvicorn_server(env, tmp_path / "uvicorn.log") as url:
        threads = [threading.Thread(target=hammer, args=(slot, url)) for slot in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.5)
            set_alias(settings, "champion", "2")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not all(seen and seen[-1] == "2" for seen in per_thread):
                time.sleep(0.1)
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        model = httpx.get(f"{url}/v1/model").json()
        metrics = httpx.get(f"{url}/metrics").text
    # the server has shut down: its prediction log is flushed
    assert not failures, failures[:5]
    assert model["champion"]["version"] == "2"
    assert metric_value(metrics, "rakuten_model_info", variant="champion", model_version="2") == 1
    for seen in per_thread:
        assert seen[0] == "1" and seen[-1] == "2", "each client saw the swap"
        first_new = seen.index("2")
        assert set(seen[first_new:]) == {"2"}, "after its first v2 answer, a client never gets v1 again"
    engine = sa.create_engine(pg_url)
    try:
        assert count_rows(engine, prediction_log) == sum(products_ok), "every answered product is logged, the last ones at shutdown"
        assert count_rows(engine, prediction_log, model_version="2") > 0
    finally:
        engine.dispose()


@pytest.mark.slow
def test_rakuten_ml_serve_runs_workers_with_one_metrics_view(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> None:
    settings = registry_settings(tmp_path_factory, tmp_path)
    set_alias(settings, "champion", "1")
    port = free_port()
    env = settings_env(settings) | {"RAKUTEN_API_ADMIN_TOKEN": ADMIN_TOKEN}
    command = [sys.executable, "-m", "rakuten_ml.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    with server_process(command, port, env, tmp_path / "serve.log") as url:
        with httpx.Client(base_url=url, timeout=10, headers={"Connection": "close"}) as client:
            # each new connection lands on either worker: 12 ready answers in a row mean both loaded their model
            deadline, in_a_row = time.monotonic() + 120, 0
            while in_a_row < 12 and time.monotonic() < deadline:
                in_a_row = in_a_row + 1 if client.get("/readyz").status_code == 200 else 0
            assert in_a_row == 12, "a worker never became ready"
            for _ in range(20):
                assert client.post("/v1/predict", json=POOL).status_code == 200
            text = client.get("/metrics").text
        assert metric_value(text, "rakuten_http_requests_total", route="/v1/predict", status="200") == 20, text[:2000]
        assert metric_value(text, "rakuten_model_info", variant="champion", model_version="1") == 1
