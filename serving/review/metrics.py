"""Prometheus metrics of the review queue, registered on the serving app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ReviewMetrics:
    """Backlog, labels and agreement with the model; one instance per app, on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.backlog = Gauge(
            "rakuten_review_backlog", "Queued products no reviewer has labelled yet (as of the last queue read).",
            registry=registry, multiprocess_mode="livemax",
        )
        self.labels = Counter("rakuten_review_labels", "Review labels written, by reviewer.", ["reviewer"], registry=registry)
        self.agreements = Counter(
            "rakuten_review_agreements", "Review labels equal to the champion's prediction that queued the product, by reviewer.",
            ["reviewer"], registry=registry,
        )
        self.skips = Counter("rakuten_review_skips", "Products a reviewer skipped, by reviewer.", ["reviewer"], registry=registry)
