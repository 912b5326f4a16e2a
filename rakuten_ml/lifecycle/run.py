"""``make demo`` end to end: fresh home, services up, the story, the timeline and report, services down."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import httpx

from rakuten_ml.errors import RakutenError
from rakuten_ml.lifecycle.scenario import LifeCycle, Story, story_environment
from rakuten_ml.lifecycle.stack import Ports, Stack
from rakuten_ml.lifecycle.timeline import Timeline
from rakuten_ml.registry.contract import ACCURACY_TAG, F1_TAG, GATE_VERDICT_TAG, SNAPSHOT_TAG, TRIGGER_REASON_TAG

log = logging.getLogger(__name__)


def _where(stack: Stack) -> str:
    # the reviewers' tokens were made for this run only (story_environment): showing them is how a user logs in
    tokens = os.environ.get("RAKUTEN_REVIEW_REVIEWER_TOKENS", "")
    return (f"Airflow UI  {stack.airflow_url}  (every visitor is admin: loopback only)\n"
            f"MLflow UI   {stack.mlflow_url}  (registry: {stack.mlflow_url}/#/models)\n"
            f"Serving API {stack.serving_url}/docs  (from day 1)\n"
            f"Review page {stack.serving_url}/review  (reviewer:token of this run: {tokens.replace(',', ', ')})\n"
            f"Logs        {stack.logs}\n")


def registry_versions(timeline: Timeline) -> list[dict]:
    """Every registered version with its headline metrics, aliases, gate verdict and the day it appeared."""
    from rakuten_ml.registry.gateway import ModelRegistry
    from rakuten_ml.resources import Platform

    registry = ModelRegistry(Platform.from_env().settings)
    state = registry.state().as_dict()
    created = {str((s.results.get("register") or {}).get("model_version")): s.day for s in timeline.steps if s.dag_id == "retrain_classifier"}
    out = []
    for info in sorted(registry.versions(limit=100), key=lambda v: int(v.version)):
        tags = info.tags
        out.append({
            "version": info.version, "created_day": created.get(info.version),
            "f1_weighted": float(tags[F1_TAG]) if F1_TAG in tags else None,
            "accuracy": float(tags[ACCURACY_TAG]) if ACCURACY_TAG in tags else None,
            "aliases": [alias for alias, version in state.items() if version == info.version],
            "gate": tags.get(GATE_VERDICT_TAG), "snapshot_id": tags.get(SNAPSHOT_TAG), "reason": tags.get(TRIGGER_REASON_TAG),
        })
    return out


def write_outputs(home: Path, timeline: Timeline) -> tuple[Path, Path]:
    from rakuten_ml.lifecycle.report import write_html_report
    from rakuten_ml.resources import Platform

    timeline_path = home / "timeline.json"
    timeline_path.write_text(json.dumps(timeline.as_dict(), indent=2, default=str))
    report = write_html_report(home / "report.html", timeline, Platform.ready().engine, registry_versions(timeline))
    return timeline_path, report


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """This process reads the same settings as the services, and only while the demo runs (a caller, e.g. a
    test session, gets its own environment back)."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_demo(home: Path, ports: Ports, *, keep_running: bool = False, story: Story | None = None, out: TextIO = sys.stdout) -> int:
    """0 when the story ran to its end and every DAG run succeeded; the services are stopped on every path out."""
    from rakuten_ml.lifecycle.report import timeline_text

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll of the Airflow API otherwise
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    started = time.monotonic()
    env = story_environment(home, f"http://127.0.0.1:{ports.mlflow}")
    with _environment(env), Stack(home, ports, os.environ) as stack:
        stack.start_mlflow()
        stack.start_airflow()
        out.write("\nThe platform is up:\n" + _where(stack) + "\nRunning the simulated month (about 15 minutes on 2 cores)...\n")
        out.flush()
        lifecycle = LifeCycle(stack, story or Story())
        stopped: Exception | None = None
        try:
            lifecycle.run()
        except (RakutenError, TimeoutError, httpx.HTTPError) as exc:  # a service died, a run timed out: report what happened so far
            stopped = exc
            log.error("the life cycle stopped: %s", exc)
        finally:
            lifecycle.close()
        timeline = lifecycle.timeline
        timeline_path, report = write_outputs(home, timeline)
        out.write("\n" + timeline_text(timeline) + "\n")
        failed = timeline.failed()
        out.write(f"\n{len(timeline.steps)} DAG runs in {(time.monotonic() - started) / 60:.1f} min, {len(failed)} failed.\n"
                  f"Report:   file://{report}\nTimeline: {timeline_path}\n")
        if stopped is not None:
            out.write(f"\nThe life cycle STOPPED before its end: {stopped}\nService logs: {stack.logs}\n")
        if keep_running:
            out.write("\nServices stay up (Ctrl-C stops them):\n" + _where(stack))
            out.flush()
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        else:
            out.write(f"Services stopped. To look around afterwards: make demo DEMO_ARGS=--keep-running, "
                      f"or start the MLflow UI on the kept store: .venv/bin/mlflow ui --backend-store-uri sqlite:///{home / 'mlflow' / 'mlflow.db'}\n")
    return 1 if failed or stopped is not None else 0
