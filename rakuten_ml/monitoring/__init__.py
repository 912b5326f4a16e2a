"""Drift monitoring and the retraining it triggers (the production plan: docs/production-plan.md).

``features`` (what is compared) -> ``statistics`` (pure KS/KL/confidence/concept math) -> ``rules``
(the seed's four rules on one day's inputs, no I/O) -> ``checks`` (the daily job: load through
``drift_store``, ``reference`` and ``sampling``, evaluate, store, decide alerts) -> ``metrics`` (Prometheus) and
``evidently_report`` (HTML); ``retrain_guard`` debounces the retraining that alerts trigger.

This package's own namespace stays stdlib-only: DAG files import the asset URI from here at parse time,
and the serving app's /metrics imports ``metrics`` without pulling in the drift math.
"""

from __future__ import annotations

# The Airflow asset the drift DAG emits an event on when an alert fires; the retraining DAG listens to it.
DRIFT_ALERT_ASSET_URI = "rakuten://drift-alert"

# The rows of ``drift_checks``: one per KS feature, one per rule (the rules can raise alerts).
METRIC_KS = "ks"
METRIC_DATA = "data_drift"
METRIC_PREDICTION = "prediction_drift"
METRIC_CONFIDENCE = "confidence_drift"
METRIC_CONCEPT = "concept_drift"
METRIC_ESTIMATED = "estimated_performance"  # label-free: the champion's accuracy estimated from its probabilities
METRIC_ESTIMATED_F1 = "estimated_f1"  # the same estimate's weighted F1, shown beside it (not a rule of its own)
RULE_METRICS = (METRIC_DATA, METRIC_PREDICTION, METRIC_CONFIDENCE, METRIC_CONCEPT, METRIC_ESTIMATED)

STATUS_OK = "ok"
STATUS_DRIFT = "drift"  # today's data-drift threshold breached, not yet for enough consecutive days
STATUS_ALERT = "alert"
STATUS_NO_DATA = "insufficient_data"
STATUS_UNTRUSTED = "untrusted"  # the label-free estimate, when the labelled sample says confidence no longer matches accuracy
DRIFTED_STATUSES = (STATUS_DRIFT, STATUS_ALERT)
