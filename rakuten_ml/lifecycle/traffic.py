"""Live traffic for the life cycle: the shop asks the serving API for predictions, human labellers send the
true class of a share of them back as feedback. Loopback only, bounded in requests and time."""

from __future__ import annotations

import base64
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd

from rakuten_ml.errors import ConfigurationError

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
PRODUCTS_PER_REQUEST = 8
FEEDBACK_SOURCE = "demo-labeller"


@dataclass
class TrafficSummary:
    requests: int = 0
    predictions: int = 0
    feedback: int = 0
    errors: int = 0
    seconds: float = 0.0
    by_version: dict[str, int] = field(default_factory=dict)
    correct_by_version: dict[str, int] = field(default_factory=dict)
    modalities: dict[str, int] = field(default_factory=dict)

    def accuracy(self, version: str) -> float | None:
        n = self.by_version.get(version, 0)
        return self.correct_by_version.get(version, 0) / n if n else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"accuracy_by_version": {v: self.accuracy(v) for v in self.by_version}}


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise ConfigurationError(f"live traffic goes to loopback addresses only, not {url!r}")


def _payload(rows: pd.DataFrame, images: dict[int, bytes]) -> dict[str, Any]:
    products = []
    for row in rows.itertuples(index=False):
        product: dict[str, Any] = {"productid": int(row.productid), "designation": row.designation,
                                   "description": row.description if isinstance(row.description, str) else None}
        if int(row.productid) in images:
            product["image_base64"] = base64.b64encode(images[int(row.productid)]).decode("ascii")
        products.append(product)
    return {"products": products}


def send_traffic(
    serving_url: str, products: pd.DataFrame, images: dict[int, bytes], *, feedback_share: float, seed: int,
    max_seconds: float = 300.0,
) -> TrafficSummary:
    """Predict every product (``productid, designation, description, prdtypecode``), then label a seeded share.

    Stops after ``max_seconds`` whatever is left; each failed call is counted, never retried.
    """
    _check_loopback(serving_url)
    summary, started = TrafficSummary(), time.monotonic()
    labels = dict(zip(products["productid"].astype(int), products["prdtypecode"].astype(int), strict=True))
    labelled = set(np.random.default_rng(seed).permutation(list(labels))[: int(round(feedback_share * len(labels)))].tolist())
    versions: Counter[str] = Counter()
    modalities: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    with httpx.Client(base_url=serving_url, timeout=60.0) as client:
        for start in range(0, len(products), PRODUCTS_PER_REQUEST):
            if time.monotonic() - started > max_seconds:
                log.warning("live traffic stopped after %.0f s with %d products left", max_seconds, len(products) - start)
                break
            summary.requests += 1
            try:
                response = client.post("/v1/predict", json=_payload(products.iloc[start : start + PRODUCTS_PER_REQUEST], images))
                response.raise_for_status()
            except httpx.HTTPError as exc:
                summary.errors += 1
                log.warning("predict call failed: %s", exc)
                continue
            for prediction in response.json()["predictions"]:
                summary.predictions += 1
                version = str(prediction["model_version"])
                versions[version] += 1
                modalities[prediction["modality"]] += 1
                correct[version] += int(prediction["prdtypecode"] == labels[int(prediction["productid"])])
        for productid in sorted(labelled):
            if time.monotonic() - started > max_seconds:
                break
            try:
                client.post("/v1/feedback", json={"productid": productid, "prdtypecode": labels[productid], "source": FEEDBACK_SOURCE}).raise_for_status()
                summary.feedback += 1
            except httpx.HTTPError as exc:
                summary.errors += 1
                log.warning("feedback call failed: %s", exc)
    summary.seconds = time.monotonic() - started
    summary.by_version, summary.correct_by_version, summary.modalities = dict(versions), dict(correct), dict(modalities)
    log.info("live traffic: %s", summary.as_dict())
    return summary
