"""Simulated human reviewers for the demo: log in to the serving app's review queue over HTTP and label it.

Each reviewer answers the true label, or with probability ``error_rate`` another class, the way a
tired human would; the labels reach feedback and the labelled-products table like real ones.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import httpx

from rakuten_ml.errors import ConfigurationError
from rakuten_ml.labels import CLASS_CODES

log = logging.getLogger(__name__)

JSON = {"Accept": "application/json"}


def simulate_reviewers(
    serving_url: str, reviewer: str, token: str, true_labels: Mapping[int, int], *, limit: int, error_rate: float, seed: int,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Label up to ``limit`` products of ``reviewer``'s queue (skipping those without a true label); the counts."""
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
    rng = random.Random(seed)
    counts = {"labelled": 0, "correct": 0, "wrong": 0, "skipped": 0, "agreed_with_model": 0}
    with httpx.Client(base_url=serving_url.rstrip("/"), timeout=timeout_s, headers=JSON) as client:
        anonymous = _ok(client.get("/review/login")).json()["csrf_token"]
        csrf = _ok(client.post("/review/login", data={"token": token, "csrf_token": anonymous})).json()["csrf_token"]
        if _ok(client.get("/review/login")).json()["reviewer"] != reviewer:
            raise ConfigurationError(f"the token given for reviewer {reviewer!r} logs in as someone else; check RAKUTEN_REVIEW_REVIEWER_TOKENS")
        items = _ok(client.get("/review/queue.json", params={"limit": limit * 2})).json()["items"]
        for item in items:
            if counts["labelled"] >= limit:
                break
            productid = int(item["productid"])
            truth = true_labels.get(productid)
            if truth is None:
                _ok(client.post("/review/skip", data={"productid": productid, "csrf_token": csrf}))
                counts["skipped"] += 1
                continue
            wrong = rng.random() < error_rate
            code = rng.choice([c for c in CLASS_CODES if c != truth]) if wrong else truth
            answer = _ok(client.post("/review/label", data={"productid": productid, "prdtypecode": code, "csrf_token": csrf})).json()
            counts["labelled"] += 1
            counts["wrong" if wrong else "correct"] += 1
            counts["agreed_with_model"] += int(bool(answer["agrees"]))
    log.info("reviewer %s: %s", reviewer, counts)
    return {"reviewer": reviewer, **counts}


def _ok(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise ConfigurationError(f"review queue: {response.request.method} {response.request.url.path} answered {response.status_code}: {response.text[:300]} (is the review queue configured and the serving app up?)")
    return response
