"""What training writes on a registered version and what promotion, drift, scoring and serving read
back: alias names, tag keys and artifact paths. One place, so a rename cannot break a reader."""

from __future__ import annotations

# Aliases of the registered model (rakuten_ml.promotion moves them, through the audited path only).
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"

# Version tags written by training (registry.model_registry.log_and_register).
SNAPSHOT_TAG = "snapshot_id"
DAG_RUN_TAG = "dag_run_id"
DAG_ID_TAG = "dag_id"
DAG_RUN_URL_TAG = "airflow.dag_run_url"  # the DAG run's page in the Airflow UI (also linked from the description)
GIT_COMMIT_TAG = "git_commit"
TRIGGER_REASON_TAG = "trigger_reason"
METRIC_TAG_PREFIX = "metric."  # + a validation metric name, e.g. metric.accuracy
ACCURACY_TAG = METRIC_TAG_PREFIX + "accuracy"  # the rollback guard's and concept drift's baseline
F1_TAG = METRIC_TAG_PREFIX + "f1_weighted"

# Version tags written by the gate and the alias moves (rakuten_ml.promotion).
GATE_TAG_PREFIX = "gate."
GATE_VERDICT_TAG = GATE_TAG_PREFIX + "verdict"  # pass | fail | identical
PROMOTION_TAG_PREFIX = "promotion."
LAST_ACTION_TAG = PROMOTION_TAG_PREFIX + "last_action"
LAST_MOVE_TAG = PROMOTION_TAG_PREFIX + "last_move"  # on the registered model: the write-ahead record of an alias move

# Run artifacts written by training.
EVALUATION_REPORT = "evaluation/report.json"  # metrics, per-class report, fusion scores, robustness
EVALUATION_PRODUCTIDS = "evaluation/eval_productids.json"  # the held-out products the gate re-scores
EVALUATION_MARKDOWN = "evaluation/report.md"
CONFUSION_FIGURE = "evaluation/confusion_matrix.png"
RELIABILITY_FIGURE = "evaluation/reliability.png"


def metric_tag(metric: str) -> str:
    return METRIC_TAG_PREFIX + metric
