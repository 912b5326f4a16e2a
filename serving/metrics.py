"""Prometheus metrics of the serving app, in a registry of its own per app instance.

A registry per app keeps several apps in one process (tests, benchmarks) from clashing on
metric names. When uvicorn runs several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set before
they start (``rakuten-ml serve`` does it) and ``/metrics`` aggregates every worker's values.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Around the seed targets (P50 < 0.5 s, P95 < 1 s, P99 < 2 s): bucket edges sit on each target
# so histogram_quantile() and SLO ratios are exact there.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0)
# 0.8 is the seed's auto/review threshold: an edge there makes the review share readable.
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)

# Powers of two up to the largest allowed request batch (RAKUTEN_SERVING_MAX_BATCH_SIZE <= 1024).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    """Every metric the app exports; one instance per app, bound to ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "rakuten_http_requests", "HTTP requests by route template, method, status and A/B variant.",
            ["route", "method", "status", "variant"], registry=r,
        )
        self.latency = Histogram(
            "rakuten_http_request_duration_seconds", "Wall time of a request inside the app.",
            ["route", "variant"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge("rakuten_http_requests_in_flight", "Requests being served.", registry=r, multiprocess_mode="livesum")
        self.inference = Histogram(
            "rakuten_model_inference_seconds", "Time of one classifier.predict call (one batch, one variant).",
            ["variant"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.inference_batch = Histogram(
            "rakuten_inference_batch_products", "Products per micro-batch run by the inference thread.",
            buckets=BATCH_BUCKETS, registry=r,
        )
        self.predictions = Counter(
            "rakuten_predictions", "Products predicted, by variant, model version, decision and modality.",
            ["variant", "model_version", "decision", "modality"], registry=r,
        )
        self.predicted_class = Counter(
            "rakuten_predicted_class", "Predicted prdtypecode distribution (prediction drift).",
            ["variant", "prdtypecode"], registry=r,
        )
        self.confidence = Histogram(
            "rakuten_prediction_confidence", "Top-class probability of each prediction.",
            ["variant"], buckets=CONFIDENCE_BUCKETS, registry=r,
        )
        self.model_info = Gauge(
            "rakuten_model_info", "1 for the model version each variant serves.",
            ["variant", "model_name", "model_version"], registry=r, multiprocess_mode="livemax",
        )
        self.model_loaded_at = Gauge(
            "rakuten_model_loaded_timestamp_seconds", "When each variant's model was loaded.",
            ["variant"], registry=r, multiprocess_mode="livemax",
        )
        self.model_loads = Counter(
            "rakuten_model_loads", "Model (re)loads by variant and outcome (success, failure).",
            ["variant", "outcome"], registry=r,
        )
        self.rollbacks = Counter(
            "rakuten_rollbacks", "Champion alias moved to an older version than the one served.",
            ["model_name"], registry=r,
        )
        self.challenger_share = Gauge(
            "rakuten_challenger_share", "Share of products routed to the challenger.", registry=r, multiprocess_mode="livemax",
        )
        self.cache = Counter("rakuten_cache_requests", "Prediction cache lookups by result (hit, miss, error).", ["result"], registry=r)
        self.log_rows = Counter(
            "rakuten_prediction_log_rows", "Online predictions sent to prediction_log, by outcome (written, dropped).",
            ["outcome"], registry=r,
        )
        self.log_queue = Gauge(
            "rakuten_prediction_log_queue_size", "Predictions waiting to be written.", registry=r, multiprocess_mode="livesum",
        )
        self.feedback = Counter("rakuten_feedback", "True labels received, by source.", ["source"], registry=r)
        self.shadow_predictions = Counter(
            "rakuten_shadow_predictions", "Live products the model that did not answer also predicted (shadow scoring).",
            registry=r,
        )
        self.shadow_dropped = Counter(
            "rakuten_shadow_dropped", "Products whose shadow pair was lost, by reason (queue_full, error, database).",
            ["reason"], registry=r,
        )
        self.shadow_disagreements = Counter(
            "rakuten_shadow_disagreements", "Shadow-scored products champion and challenger put in different classes.",
            registry=r,
        )
        self.shadow_batch = Histogram(
            "rakuten_shadow_batch_duration_seconds", "Time of one shadow batch: the other model's predictions and their write.",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.shadow_queue = Gauge(
            "rakuten_shadow_queue_size", "Requests waiting for shadow scoring.", registry=r, multiprocess_mode="livesum",
        )

    def set_model(self, variant: str, model_name: str | None, model_version: str | None, loaded_at: float | None) -> None:
        """Point the info gauge of ``variant`` at one version (or none), clearing the previous one."""
        for labels in self._info_labels(variant):
            # 0 first: in multiprocess mode remove() does not erase the value already in the mmap file
            self.model_info.labels(*labels).set(0)
            self.model_info.remove(*labels)
        if model_name and model_version:
            self.model_info.labels(variant, model_name, model_version).set(1)
            self.model_loaded_at.labels(variant).set(loaded_at or 0.0)
        else:
            self.model_loaded_at.labels(variant).set(0.0)

    def _info_labels(self, variant: str) -> list[tuple[str, ...]]:
        # prometheus_client has no public "labels of a metric"; collect() is the public way
        found: list[tuple[str, ...]] = []
        for family in self.model_info.collect():
            for sample in family.samples:
                if sample.labels.get("variant") == variant:
                    found.append((variant, sample.labels["model_name"], sample.labels["model_version"]))
        return found

    def render(self, textfile_dir: Path | None = None) -> tuple[bytes, str]:
        """The exposition text: this app's registry (every worker's values in multiprocess mode),
        then the ``*.prom`` files of ``textfile_dir``."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            body = generate_latest(registry)
        else:
            body = generate_latest(self.registry)
        return body + self._textfiles(textfile_dir), CONTENT_TYPE_LATEST

    def _textfiles(self, folder: Path | None) -> bytes:
        """Batch jobs' metrics (drift checks, batch scoring) written as node-exporter textfiles, served here so the
        stack needs no node-exporter. A file that does not parse, or reuses a serving metric name,
        is skipped: Prometheus rejects a whole scrape on one bad line."""
        if folder is None or not folder.is_dir():
            return b""
        own = {family.name for family in self.registry.collect()}
        chunks: list[bytes] = []
        for path in sorted(folder.glob("*.prom")):
            try:
                text = path.read_text(encoding="utf-8")
                names = {family.name for family in text_string_to_metric_families(text)}
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                log.warning("skipping metrics textfile %s: %s", path, exc)
                continue
            if names & own:
                log.warning("skipping metrics textfile %s: it redefines %s", path, sorted(names & own))
                continue
            chunks.append(text.rstrip("\n").encode("utf-8") + b"\n")
        return b"".join(chunks)
