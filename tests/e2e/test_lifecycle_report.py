"""The life-cycle report: console timeline and the one-file HTML page, on a SQLite database (no services)."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from rakuten_ml.lifecycle.report import (
    CONSOLE_WIDTH,
    ab_records,
    alias_states,
    alias_text,
    drift_value,
    timeline_text,
    truncate,
    write_html_report,
)
from rakuten_ml.lifecycle.timeline import TRIGGER_REST, TRIGGER_SCHEDULE, Step, Timeline, asset_trigger
from rakuten_ml.monitoring import DRIFT_ALERT_ASSET_URI
from rakuten_ml.promotion.audit import Actor, PromotionEvent, record
from rakuten_ml.storage.database import drift_checks, init_db

HEADINGS = ("Timeline", "Model quality", "Drift checks", "A/B tests", "Alias history")
CHROMIUM = Path("/usr/bin/chromium")
START = date(2025, 3, 1)


def _arm(variant: str, version: str, n: int, correct: int, low: float, high: float) -> dict:
    return {"variant": variant, "version": version, "n": n, "correct": correct,
            "accuracy": correct / n if n else None, "ci95_low": low, "ci95_high": high}


def _ab_result(action: str | None, champion: dict | None, challenger: dict | None, message: str) -> dict:
    decision = None if champion is None else {"action": action, "reason": message, "champion": champion, "challenger": challenger}
    return {"champion": "1", "challenger": "2", "action": action, "message": message, "decision": decision, "move": None}


def _step(day: int, dag_id: str, state: str = "success", outcome: str = "ok", *, trigger: str = TRIGGER_SCHEDULE,
          aliases: dict | None = None, results: dict | None = None) -> Step:
    return Step(day, (START + timedelta(days=day)).isoformat(), dag_id, f"scheduled__{dag_id}_day{day:02d}", trigger, state, outcome,
                aliases or {"champion": "1", "challenger": None, "previous-champion": None},
                {"task_a": "success", "task_b": "success" if state == "success" else "failed"}, results or {})


@pytest.fixture
def timeline() -> Timeline:
    on_test = {"champion": "1", "challenger": "2", "previous-champion": None}
    steps = [
        _step(0, "ingest_products", outcome="snapshot abc123: 9000 accepted, 12 quarantined", trigger=TRIGGER_REST),
        _step(0, "retrain_classifier", outcome="v1 trained, gate passed, champion", trigger=TRIGGER_REST),
        _step(3, "retrain_classifier", outcome="v2 trained " + "and a very long outcome text " * 10, aliases=on_test,
              trigger=asset_trigger(DRIFT_ALERT_ASSET_URI)),
        _step(4, "evaluate_ab_test", outcome="no labels yet", aliases=on_test,
              results={"evaluate_ab": _ab_result(None, None, None, "challenger has no labelled predictions yet")}),
        _step(5, "evaluate_ab_test", outcome="keep testing", aliases=on_test, results={"evaluate_ab": _ab_result(
            "keep_testing", _arm("champion", "1", 120, 90, 0.67, 0.82), _arm("challenger", "2", 0, 0, 0.0, 1.0),
            "need 200 labelled predictions per arm")}),
        _step(6, "monitor_drift", state="failed", outcome="drift check failed: object store unreachable", aliases=on_test),
        _step(9, "evaluate_ab_test", outcome="promoted v2",
              aliases={"champion": "2", "challenger": None, "previous-champion": "1"}, results={"evaluate_ab": _ab_result(
                  "promote", _arm("champion", "1", 400, 300, 0.705, 0.790), _arm("challenger", "2", 410, 350, 0.815, 0.885),
                  "challenger better (p=0.001)")}),
    ]
    traffic = [
        {"day": d, "requests": 50, "predictions": 400, "feedback": 40, "errors": 1 if d == 6 else 0, "seconds": 12.5,
         "by_version": {"1": 380, "2": 20} if d >= 3 else {"1": 400},
         "correct_by_version": {"1": 290, "2": 17} if d >= 3 else {"1": 300}, "modalities": {"text": 400},
         "accuracy_by_version": {"1": 290 / 380, "2": 17 / 20} if d >= 3 else {"1": 0.75}}
        for d in range(0, 10)
    ]
    return Timeline(steps, traffic, ["day 6: the drift check's object store was down"])


@pytest.fixture
def versions() -> list[dict]:
    return [
        {"version": "1", "created_day": 0, "f1_weighted": 0.78, "accuracy": 0.79, "aliases": ["previous-champion"], "gate": "pass"},
        {"version": "2", "created_day": 3, "f1_weighted": 0.83, "accuracy": 0.84, "aliases": ["champion"], "gate": "pass"},
        {"version": "3", "created_day": None, "f1_weighted": None, "accuracy": None, "aliases": [], "gate": None},
    ]


def _drift_rows() -> list[dict]:
    rows = []
    for offset, (share, kl, confidence, status) in enumerate(
        [(0.05, 0.02, 0.81, "ok"), (0.40, 0.08, 0.78, "drift"), (0.45, 0.09, 0.77, "drift"), (0.55, 0.14, 0.72, "alert")]
    ):
        check_date = START + timedelta(days=5 + offset)
        common = {"check_date": check_date, "model_version": "1", "checked_at": datetime.now(UTC)}
        rows += [
            common | {"metric": "data_drift", "feature": "share", "statistic": share, "p_value": 0.001, "threshold": 0.3,
                      "status": status, "details": {"method": "share", "n_tested": 20}},
            common | {"metric": "prediction_drift", "feature": "prdtypecode", "statistic": kl, "p_value": None, "threshold": 0.1,
                      "status": "alert" if kl > 0.1 else "ok", "details": {"n": 900}},
            common | {"metric": "confidence_drift", "feature": "confidence", "statistic": confidence, "p_value": None,
                      "threshold": 0.75, "status": "alert" if confidence < 0.75 else "ok", "details": {"n": 900}},
            common | {"metric": "concept_drift", "feature": "accuracy", "statistic": None, "p_value": None, "threshold": None,
                      "status": "insufficient_data", "details": {"why": "no baseline accuracy"}},
            common | {"metric": "ks", "feature": "svd_0", "statistic": 0.2, "p_value": 0.01, "threshold": 0.05,
                      "status": "drift", "details": {}},
        ]
    return rows


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def filled_engine(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        conn.execute(sa.insert(drift_checks), _drift_rows())
    at = datetime(2025, 3, 1, 12, tzinfo=UTC)
    ab = Actor.dag("evaluate_ab_test", "scheduled__evaluate_ab_test_day09")
    retrain = Actor.dag("retrain_classifier", "scheduled__retrain_classifier_day00")
    for n, event in enumerate([
        PromotionEvent("rakuten-product-classifier", "register", retrain, "trained on abc123", None, "1"),
        PromotionEvent("rakuten-product-classifier", "promote", retrain, "first version: no champion to beat", None, "1"),
        PromotionEvent("rakuten-product-classifier", "challenger_set", Actor("alice"), "gate passed", None, "2"),
        PromotionEvent("rakuten-product-classifier", "promote", ab, "A/B test: challenger better", "1", "2",
                       {"diff": 0.09, "p_better": 0.001}),
        PromotionEvent("rakuten-product-classifier", "rollback", Actor("bob"), "latency regression <script>", "2", "1"),
    ]):
        record(engine, PromotionEvent(event.model_name, event.action, event.actor, event.reason, event.from_version,
                                      event.to_version, event.metrics, at + timedelta(hours=n)))
    return engine


# ------------------------------------------------------------------------------------------ console


def test_timeline_text_one_row_per_step_within_140_columns(timeline: Timeline) -> None:
    lines = timeline_text(timeline).splitlines()
    assert all(len(line) <= CONSOLE_WIDTH for line in lines)
    rows = [line for line in lines[2:] if line[:4].strip()]  # a step's first line starts with its day
    assert len(rows) == len(timeline.steps)
    for line, step in zip(rows, timeline.steps, strict=True):
        assert step.dag_id in line and step.state in line
    long_outcome = timeline.steps[2].outcome
    assert len(long_outcome) > CONSOLE_WIDTH and " ".join(long_outcome.split()[-3:]) in timeline_text(timeline)  # wrapped, not cut
    assert "v1 / v2 / -" in rows[3]  # champion / challenger / previous-champion
    assert "v2 / - / v1" in rows[6]
    assert "REST API" in rows[0] and "asset drift-alert" in rows[2]


def test_timeline_text_empty() -> None:
    lines = timeline_text(Timeline()).splitlines()
    assert len(lines) == 3 and "no data yet" in lines[2]


def test_helpers() -> None:
    assert alias_text({}) == "champion -, challenger -"
    assert truncate("a\nb  c", 10) == "a b c"
    assert truncate("x" * 20, 5) == "xxxx…"
    events = [{"action": "promote", "to_version": "1"}, {"action": "challenger_set", "to_version": "2"},
              {"action": "gate_fail", "to_version": "3"}, {"action": "promote", "to_version": "2"},
              {"action": "rollback", "to_version": "1"}]
    assert alias_states(events) == [("1", None), ("1", "2"), ("1", "2"), ("2", None), ("1", None)]
    bonferroni = {"metric": "data_drift", "statistic": 0.1, "p_value": 0.0001, "threshold": 0.0025, "details": {"method": "bonferroni"}}
    assert drift_value(bonferroni) == (0.0001, 0.0025)


def test_ab_records_keep_runs_without_a_decision(timeline: Timeline) -> None:
    records = ab_records(timeline)
    assert [r.action for r in records] == [None, "keep_testing", "promote"]
    assert not records[0].decided and records[0].message == "challenger has no labelled predictions yet"
    assert records[1].challenger["accuracy"] is None


# ------------------------------------------------------------------------------------------ html


def test_html_report_has_every_section(tmp_path: Path, timeline: Timeline, versions: list[dict], filled_engine: sa.Engine) -> None:
    path = write_html_report(tmp_path / "out" / "report.html", timeline, filled_engine, versions)
    assert path.exists()
    page = path.read_text(encoding="utf-8")
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in page
    for step in timeline.steps:
        assert step.run_id in page
    assert page.count("data:image/png;base64,") == 5  # runs, quality, drift, A/B, aliases
    assert 'class="failed"' in page and 'class="alert"' in page  # the failed run and the alert day
    assert "2025-03-08" in page  # the alert day is named
    assert "promote" in page and "keep_testing" in page and "no decision" in page
    assert "latency regression &lt;script&gt;" in page and "<script" not in page  # escaped, and no script at all
    assert not re.search(r"""(src|href)=["']https?:""", page)  # self-contained
    assert "no data yet" not in page


def test_html_report_renders_with_no_data(tmp_path: Path, engine: sa.Engine) -> None:
    path = write_html_report(tmp_path / "empty.html", Timeline(), engine, [])
    page = path.read_text(encoding="utf-8")
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in page
    assert page.count("no data yet") >= len(HEADINGS)
    assert "data:image/png;base64," not in page


def test_html_report_survives_missing_tables(tmp_path: Path, timeline: Timeline, versions: list[dict]) -> None:
    """A database without the platform's tables costs the drift and alias sections only."""
    bare = sa.create_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    page = write_html_report(tmp_path / "report.html", timeline, bare, versions).read_text(encoding="utf-8")
    assert "cannot read drift_checks" in page and "cannot read promotion_events" in page
    assert page.count("data:image/png;base64,") == 3
    bare.dispose()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_report_opens_in_headless_chromium(tmp_path: Path, timeline: Timeline, versions: list[dict], filled_engine: sa.Engine) -> None:
    report = write_html_report(tmp_path / "report.html", timeline, filled_engine, versions)
    shot, profile = tmp_path / "shot.png", tmp_path / "profile"
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={shot}",
               "--window-size=1400,1000", report.resolve().as_uri()]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert shot.exists(), f"no screenshot (rc {completed.returncode}): {completed.stderr[-2000:]}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000, "a blank page compresses to a few KiB"
