"""The guard reads the champion's online P95 latency from the prediction log itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rakuten_ml.promotion.rollback import serving_p95_latency_ms
from rakuten_ml.resources import Platform
from rakuten_ml.storage.database import prediction_log, upsert


def log_requests(platform: Platform, latencies: list[float], *, version: str = "3", age: timedelta = timedelta(minutes=5)) -> None:
    at = datetime.now(UTC) - age
    rows = [
        {"request_id": f"{version}-{age.seconds}-{i}", "position": pos, "productid": i, "model_name": "clf", "model_version": version,
         "variant": "champion", "prdtypecode": 10, "confidence": 0.9, "decision": "auto", "modality": "text",
         "latency_ms": latency, "created_at": at}
        for i, latency in enumerate(latencies)
        for pos in range(2)  # a batch of two products shares its request's latency
    ]
    upsert(platform.engine, prediction_log, rows)


def test_p95_latency_of_recent_requests_only(settings):
    platform = Platform(settings).prepare()
    log_requests(platform, [10.0] * 95 + [2000.0] * 5)
    log_requests(platform, [9000.0] * 100, age=timedelta(hours=3))  # too old to count
    log_requests(platform, [9000.0] * 100, version="4")  # another version
    p95 = serving_p95_latency_ms(platform.engine, "clf", "3")
    assert p95 is not None and 10.0 <= p95 <= 2000.0
    assert serving_p95_latency_ms(platform.engine, "clf", "4") == 9000.0


def test_too_few_requests_give_no_verdict(settings):
    platform = Platform(settings).prepare()
    log_requests(platform, [5000.0] * 10)
    assert serving_p95_latency_ms(platform.engine, "clf", "3") is None
