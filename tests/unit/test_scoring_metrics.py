"""Batch scoring in Prometheus: the textfile each finished run rewrites, served by the serving app,
and the alert rules on it (promtool unit tests when promtool is installed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rakuten_ml.registry.resolve import resolve_model
from rakuten_ml.scoring import batch
from rakuten_ml.scoring.batch import RunModels, score_partition, score_products, start_run
from rakuten_ml.scoring.metrics import ScoringMetrics, textfile_path
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import init_db, paired_predictions, scoring_runs, upsert
from rakuten_ml.training.train import train_and_register
from serving.metrics import ServingMetrics
from tests.support.paths import REPO_ROOT
from tests.support.platforms import build_platform
from tests.support.promtool import alert_rules, check_and_unit_test_rules, needs_promtool

RULES = REPO_ROOT / "monitoring" / "prometheus" / "rules" / "scoring.yml"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def kind(value: str) -> frozenset:
    return frozenset({"kind": value}.items())


NONE = frozenset()


def test_no_finished_run_exports_no_last_run_series(tmp_path) -> None:  # noqa: ANN001
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    init_db(engine)
    started = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    upsert(engine, scoring_runs, [{"run_id": "r", "snapshot_id": "s", "models": {}, "n_partitions": 1, "status": "running",
                                   "counts": {}, "started_at": started, "finished_at": None}])
    metrics = ScoringMetrics()
    assert metrics.refresh(engine) == 0  # a run in progress is not counted yet
    values = samples(generate_latest(metrics.registry).decode())
    assert ("rakuten_batch_scoring_last_run_success", NONE) not in values


def test_the_latest_runs_pairs_become_disagreement_rates(tmp_path) -> None:  # noqa: ANN001
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    init_db(engine)
    night = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)

    def run(run_id: str, hours: int, counts: dict[str, int]) -> dict:
        return {"run_id": run_id, "snapshot_id": "s", "models": {}, "n_partitions": 1, "status": "done", "counts": counts,
                "started_at": night.replace(hour=hours), "finished_at": night.replace(hour=hours, minute=30)}

    def pair(run_id: str, productid: int, champion: int, challenger: int) -> dict:
        return {"source_id": run_id, "productid": productid, "origin": "batch", "model_name": "m", "champion_version": "1",
                "challenger_version": "2", "champion_code": champion, "challenger_code": challenger,
                "champion_confidence": 0.9, "challenger_confidence": 0.8, "scored_at": night}

    upsert(engine, scoring_runs, [run("night-1", 2, {"scored": 5, "paired": 5, "disagreed": 2})])
    # class 10: 1 of 3 disagreed, class 2280: 1 of 2; an earlier run's pair of the same product does not count
    upsert(engine, paired_predictions, [pair("night-1", 1, 10, 10), pair("night-1", 2, 10, 10), pair("night-1", 3, 10, 40),
                                        pair("night-1", 4, 2280, 2280), pair("night-1", 5, 2280, 10), pair("night-0", 1, 10, 40)])
    metrics = ScoringMetrics()
    assert metrics.refresh(engine) == 1
    values = samples(generate_latest(metrics.registry).decode())
    assert values[("rakuten_batch_scoring_last_run_disagreement_rate", NONE)] == pytest.approx(2 / 5)
    per_class = {dict(labels)["prdtypecode"]: value for (name, labels), value in values.items()
                 if name == "rakuten_batch_scoring_last_run_class_disagreement_rate"}
    assert per_class == {"10": pytest.approx(1 / 3), "2280": pytest.approx(1 / 2)}

    # the next night ran without a challenger: no disagreement series, though night-1's pairs are still stored
    upsert(engine, scoring_runs, [run("night-2", 3, {"scored": 5})])
    metrics = ScoringMetrics()
    assert metrics.refresh(engine) == 2
    names = {name for name, _ in samples(generate_latest(metrics.registry).decode())}
    assert "rakuten_batch_scoring_last_run_success" in names
    assert not {n for n in names if "disagreement" in n}


def test_finished_runs_become_totals_and_latest_run_series(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    platform, snapshot_id = build_platform(Settings(home=tmp_path), rows=900)
    train_and_register(platform, snapshot_id=snapshot_id)
    first = score_products(platform, run_id="night-1", snapshot_id=snapshot_id, partition_size=300)
    path = textfile_path(platform.settings)
    assert path == tmp_path.resolve() / "metrics" / "rakuten_scoring.prom"
    values = samples(path.read_text())
    assert values[("rakuten_batch_scoring_runs_total", frozenset({"outcome": "done"}.items()))] == 1
    assert values[("rakuten_batch_scoring_products_total", kind("scored"))] == 900 == first.n_scored
    assert values[("rakuten_batch_scoring_last_run_products", kind("text_only"))] == 900
    assert values[("rakuten_batch_scoring_last_run_success", NONE)] == 1
    assert values[("rakuten_batch_scoring_last_run_model_info", frozenset({"model_version": "1"}.items()))] == 1
    good_at = values[("rakuten_batch_scoring_last_success_timestamp_seconds", NONE)]
    assert abs(good_at - datetime.now(UTC).timestamp()) < 600

    # the next night dies on its second partition: the run is finished as failed, totals add up
    models = RunModels(resolve_model(platform.settings))
    _, parts = start_run(platform, run_id="night-2", snapshot_id=snapshot_id, models=models, partition_size=300)
    score_partition(platform, run_id="night-2", snapshot_id=snapshot_id, partition=parts[0], models=models)
    monkeypatch.setattr(batch, "_predict", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("worker killed")))
    with pytest.raises(RuntimeError):
        score_partition(platform, run_id="night-2", snapshot_id=snapshot_id, partition=parts[1], models=models)
    batch.finish_run(platform, run_id="night-2")
    values = samples(path.read_text())
    assert values[("rakuten_batch_scoring_runs_total", frozenset({"outcome": "failed"}.items()))] == 1
    assert values[("rakuten_batch_scoring_products_total", kind("scored"))] == 900 + 300
    assert values[("rakuten_batch_scoring_last_run_products", kind("scored"))] == 300
    assert values[("rakuten_batch_scoring_last_run_success", NONE)] == 0
    assert values[("rakuten_batch_scoring_last_success_timestamp_seconds", NONE)] == good_at  # still night 1

    body, _ = ServingMetrics().render(path.parent)  # what /metrics serves
    assert samples(body.decode())[("rakuten_batch_scoring_last_run_success", NONE)] == 0


def test_unwritable_metrics_folder_never_fails_the_run(tmp_path, caplog) -> None:  # noqa: ANN001
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the metrics folder should be")
    settings = Settings(home=tmp_path / "home", scoring_metrics_textfile=str(blocker / "rakuten_scoring.prom"))
    platform, snapshot_id = build_platform(settings, rows=900)
    train_and_register(platform, snapshot_id=snapshot_id)
    assert score_products(platform, run_id="r", snapshot_id=snapshot_id).n_scored == 900
    assert "batch scoring metrics not written" in caplog.text


def test_alert_rules_read_only_exported_series() -> None:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert {r["alert"] for r in rules} == {"RakutenBatchScoringFailed", "RakutenBatchScoringStale", "RakutenBatchScoringUnscoredProducts"}
    exported = {m.name for m in ScoringMetrics().registry.collect()}
    for rule in rules:
        used = {name.removesuffix("_total") for name in re.findall(r"rakuten_[a-z_]+", rule["expr"])}
        assert used <= exported, rule["expr"]
        assert rule["labels"]["severity"] in {"warning", "critical"} and rule["annotations"]["summary"]


@needs_promtool
def test_alert_rules_pass_promtool_and_fire_as_intended(tmp_path) -> None:  # noqa: ANN001
    rules = alert_rules(RULES)

    def firing(name: str) -> list[dict]:
        return [{"exp_labels": {"severity": "warning", "team": "ml-platform"}, "exp_annotations": rules[name]["annotations"]}]

    check_and_unit_test_rules(RULES, {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                # a good run, then from minute 10 a failed one
                {"series": "rakuten_batch_scoring_last_run_success", "values": "1x9 0x30"},
                # the last complete run finished at t=0 and none since
                {"series": "rakuten_batch_scoring_last_success_timestamp_seconds", "values": "0x2000"},
                {"series": 'rakuten_batch_scoring_last_run_products{kind="scored"}', "values": "1000x40"},
                {"series": 'rakuten_batch_scoring_last_run_products{kind="failed"}', "values": "5x9 300x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "8m", "alertname": "RakutenBatchScoringFailed", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "RakutenBatchScoringFailed", "exp_alerts": firing("RakutenBatchScoringFailed")},
                {"eval_time": "8m", "alertname": "RakutenBatchScoringUnscoredProducts", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "RakutenBatchScoringUnscoredProducts",
                 "exp_alerts": firing("RakutenBatchScoringUnscoredProducts")},
                {"eval_time": "20h", "alertname": "RakutenBatchScoringStale", "exp_alerts": []},
                # 30 h after the last complete run, plus the 15 minutes the rule waits
                {"eval_time": f"{30 * 60 + 30}m", "alertname": "RakutenBatchScoringStale", "exp_alerts": firing("RakutenBatchScoringStale")},
            ],
        }],
    }, tmp_path)


def test_the_dag_records_a_failed_run_then_fails(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """summarise runs after a partition failed for good (all_done): the run is recorded as failed and
    its metrics exported, then the task, and so the DAG run, fails with what to do."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import AirflowFailException

    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "score_catalogue.py")).dags["score_catalogue"]
    summarise = dag.get_task("summarise")
    assert summarise.trigger_rule == "all_done"

    settings = Settings(home=tmp_path)
    platform, snapshot_id = build_platform(settings, rows=900)
    train_and_register(platform, snapshot_id=snapshot_id)
    models = RunModels(resolve_model(settings))
    _, parts = start_run(platform, run_id="scheduled__night", snapshot_id=snapshot_id, models=models, partition_size=300)
    score_partition(platform, run_id="scheduled__night", snapshot_id=snapshot_id, partition=parts[0], models=models)
    monkeypatch.setenv("RAKUTEN_HOME", str(tmp_path))
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: {"run_id": "scheduled__night", "params": {}})
    with pytest.raises(AirflowFailException, match="2 of 3 partitions are not scored; clear the failed score_partition"):
        summarise.python_callable(_counts=[], models=models.as_dict())
    with platform.engine.connect() as conn:
        assert conn.execute(sa.select(scoring_runs.c.status)).scalar_one() == "failed"
    assert samples(textfile_path(settings).read_text())[("rakuten_batch_scoring_last_run_success", NONE)] == 0
