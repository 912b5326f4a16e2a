"""The serving alert rules and Grafana dashboards read only metrics the app exports, and the rules
do what they say (promtool unit tests on synthetic series, when promtool is installed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from rakuten_ml.monitoring.metrics import DriftMetrics
from rakuten_ml.scoring.metrics import ScoringMetrics
from serving.metrics import ServingMetrics
from serving.review.metrics import ReviewMetrics
from tests.support.paths import REPO_ROOT
from tests.support.promtool import check_and_unit_test_rules, needs_promtool

RULES = REPO_ROOT / "monitoring" / "prometheus" / "rules" / "serving.yml"
DASHBOARDS = [REPO_ROOT / "monitoring" / "grafana" / "dashboards" / name for name in ("serving.json", "model_quality.json", "drift.json")]
METRIC = re.compile(r"\brakuten_[a-z0-9_]+\b")
RECORDED = re.compile(r"\brakuten:[a-z0-9_:]+\b")


def exported_names() -> set[str]:
    """What /metrics serves: the app's own metrics and the batch jobs' textfiles (scoring, drift)."""
    names: set[str] = set()
    serving = ServingMetrics()
    ReviewMetrics(serving.registry)  # the review queue's, on the app's registry (serving.review.include_review)
    families = [*serving.registry.collect(), *ScoringMetrics().registry.collect(), *DriftMetrics().registry.collect()]
    for family in families:
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}[family.type]
        names |= {family.name + suffix for suffix in suffixes}
    return names


def rule_groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["groups"]


def dashboard_exprs(path: Path) -> list[str]:
    document = json.loads(path.read_text())
    exprs = [t["expr"] for p in document["panels"] for t in p.get("targets", [])]
    return exprs + [a["expr"] for a in document["annotations"]["list"] if "expr" in a]


def test_rules_and_dashboards_only_read_exported_metrics() -> None:
    exported = exported_names()
    recorded = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}
    exprs = [r["expr"] for g in rule_groups() for r in g["rules"]] + [e for d in DASHBOARDS for e in dashboard_exprs(d)]
    unknown = {name for expr in exprs for name in METRIC.findall(expr)} - exported
    assert not unknown, f"exported by neither serving/metrics.py nor a batch job textfile: {sorted(unknown)}"
    undefined = {name for expr in exprs for name in RECORDED.findall(expr)} - recorded
    assert not undefined, f"recording rules used but not defined: {sorted(undefined)}"
    assert "rakuten_rollbacks_total" in exported


def test_alerts_are_labelled_and_explained() -> None:
    alerts = [r for g in rule_groups() for r in g["rules"] if "alert" in r]
    assert {"RakutenServingLatencyP95High", "RakutenServingErrorRateHigh", "RakutenModelRollback"} <= {a["alert"] for a in alerts}
    for alert in alerts:
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]


def test_dashboards_use_the_provisioned_datasource() -> None:
    uids = set()
    for path in DASHBOARDS:
        document = json.loads(path.read_text())
        assert document["title"] and document["uid"] not in uids
        uids.add(document["uid"])
        ids = [p["id"] for p in document["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicated panel ids"
        for panel in document["panels"]:
            assert panel["gridPos"]["w"] <= 24
            for target in panel.get("targets", []):
                assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}, (path.name, panel["title"])


PROMTOOL_TESTS = """
rule_files: [{rules}]
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
      - series: 'rakuten_rollbacks_total{{model_name="clf", job="serving", instance="s:8000"}}'
        values: '0x10 1x20'
      - series: 'rakuten_http_request_duration_seconds_bucket{{route="/v1/predict", variant="champion", le="1.0", job="serving", instance="s:8000"}}'
        values: '0+10x60'
      - series: 'rakuten_http_request_duration_seconds_bucket{{route="/v1/predict", variant="champion", le="2.0", job="serving", instance="s:8000"}}'
        values: '0+100x60'
      - series: 'rakuten_http_request_duration_seconds_bucket{{route="/v1/predict", variant="champion", le="+Inf", job="serving", instance="s:8000"}}'
        values: '0+100x60'
      - series: 'rakuten_http_request_duration_seconds_count{{route="/v1/predict", variant="champion", job="serving", instance="s:8000"}}'
        values: '0+100x60'
      - series: 'rakuten_http_requests_total{{route="/v1/predict", method="POST", status="200", variant="champion", job="serving", instance="s:8000"}}'
        values: '0+90x60'
      - series: 'rakuten_http_requests_total{{route="/v1/predict", method="POST", status="500", variant="champion", job="serving", instance="s:8000"}}'
        values: '0+10x60'
    promql_expr_test:
      - expr: rakuten:predict_within_slo:ratio_rate5m
        eval_time: 20m
        exp_samples:
          - labels: 'rakuten:predict_within_slo:ratio_rate5m'
            value: 0.1
      # at 20 min: a rollback happened, 90 % of requests took 1-2 s, 10 % failed with 5xx
      - expr: count by (alertname) (ALERTS{{alertstate="firing"}})
        eval_time: 20m
        exp_samples:
          - labels: '{{alertname="RakutenModelRollback"}}'
            value: 1
          - labels: '{{alertname="RakutenServingLatencyP95High"}}'
            value: 1
          - labels: '{{alertname="RakutenServingLatencyP50High"}}'
            value: 1
          - labels: '{{alertname="RakutenServingErrorRateHigh"}}'
            value: 1
    alert_rule_test:
      - eval_time: 4m
        alertname: RakutenModelRollback
        exp_alerts: []
      - eval_time: 8m
        alertname: RakutenServingLatencyP95High
        exp_alerts: []
"""


@needs_promtool
def test_rules_pass_promtool_and_fire_as_intended(tmp_path: Path) -> None:
    check_and_unit_test_rules(RULES, PROMTOOL_TESTS.format(rules=json.dumps(str(RULES))), tmp_path)


def test_every_provisioned_dashboard_is_checked_and_each_concern_has_one() -> None:
    folder = REPO_ROOT / "monitoring" / "grafana" / "dashboards"
    assert {p.name for p in folder.glob("*.json")} == {d.name for d in DASHBOARDS}
    tags = {tag for d in DASHBOARDS for tag in json.loads(d.read_text())["tags"]}
    assert {"serving", "drift", "model-quality"} <= tags
    drift = json.loads((folder / "drift.json").read_text())
    exprs = " ".join(dashboard_exprs(folder / "drift.json"))
    for metric in ("data_drift", "ks", "prediction_drift", "confidence_drift", "concept_drift"):
        assert f'metric="{metric}"' in exprs, metric  # one panel per drift rule of seed 7.5.1
    assert any(p["type"] == "text" and "data_drift.html" in p["options"]["content"] for p in drift["panels"])
