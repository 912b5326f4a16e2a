"""Prometheus alert rules of drift monitoring: they parse, use only exported metrics, and fire as intended
under promtool (the gauges they read are filled in ``tests/integration/test_drift_prometheus.py``)."""

from __future__ import annotations

import re

import yaml

from rakuten_ml.monitoring.metrics import DriftMetrics
from tests.support.paths import REPO_ROOT
from tests.support.promtool import alert_rules, check_and_unit_test_rules, needs_promtool

RULES_FILE = REPO_ROOT / "monitoring" / "prometheus" / "rules" / "drift.yml"


def test_alert_rules_parse_and_use_only_exported_metrics():
    document = yaml.safe_load(RULES_FILE.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert {r["alert"] for r in rules} >= {"RakutenDataDrift", "RakutenPredictionDrift", "RakutenConfidenceDrift", "RakutenConceptDrift",
                                        "RakutenEstimatedPerformanceDrop"}
    exported = {m.name for m in DriftMetrics().registry.collect()}
    for rule in rules:
        assert set(re.findall(r"rakuten_[a-z_]+", rule["expr"])) <= exported, rule["expr"]
        assert rule["labels"]["severity"] in {"warning", "critical"} and rule["annotations"]["summary"]


@needs_promtool
def test_alert_rules_pass_promtool_check_and_unit_tests(tmp_path):
    rules = alert_rules(RULES_FILE)

    def firing(name: str, **labels: str) -> list[dict]:
        annotations = {k: v.replace("{{ $labels.model_version }}", "3") for k, v in rules[name]["annotations"].items()}
        return [{"exp_labels": {"severity": "warning", "team": "ml-platform", **labels}, "exp_annotations": annotations}]

    check_and_unit_test_rules(RULES_FILE, {
        "rule_files": [str(RULES_FILE)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": 'rakuten_drift_alert{metric="data_drift", model_version="3"}', "values": "0 0 1 1"},
                {"series": 'rakuten_drift_alert{metric="concept_drift", model_version="3"}', "values": "0 0 0 0"},
                {"series": 'rakuten_drift_last_check_timestamp_seconds{model_version="3"}', "values": "0x2300"},
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "RakutenDataDrift", "exp_alerts": []},
                {"eval_time": "3m", "alertname": "RakutenDataDrift", "exp_alerts": firing("RakutenDataDrift", model_version="3")},
                {"eval_time": "3m", "alertname": "RakutenConceptDrift", "exp_alerts": []},
                {"eval_time": "200m", "alertname": "RakutenDriftCheckStale", "exp_alerts": []},
                # the last check's timestamp (0) is more than 36 h old at 2200 minutes, for more than 15 minutes
                {"eval_time": "2200m", "alertname": "RakutenDriftCheckStale", "exp_alerts": firing("RakutenDriftCheckStale")},
            ],
        }],
    }, tmp_path)
