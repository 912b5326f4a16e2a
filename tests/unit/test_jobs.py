"""The jobs layer: one function per DAG task, Airflow-free; the DAG files only name them."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk import Asset

from rakuten_ml.jobs import monitoring, promotion, retraining, scoring
from rakuten_ml.jobs.context import JobContext, JobSkipped
from rakuten_ml.orchestration import SNAPSHOT_ASSET_URI, job_context, resolve_job
from tests.support.paths import DAGS_FOLDER

DAGS = DAGS_FOLDER


def _task_functions(tree: ast.AST) -> list[ast.FunctionDef]:
    def is_task(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "task":
            return True  # @task.branch, @task.short_circuit...
        return (isinstance(target, ast.Name) and target.id == "task") or (isinstance(target, ast.Attribute) and target.attr == "task")

    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and any(is_task(d) for d in node.decorator_list)]


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.stem)
def test_every_dag_task_is_one_call_to_a_named_job(path):
    """A task body is a docstring at most and one ``run_job("module.function", ...)``: logic lives in the library."""
    tasks = _task_functions(ast.parse(path.read_text()))
    assert tasks, f"{path.name} defines no task"
    for function in tasks:
        body = [s for s in function.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))]
        assert len(body) == 1, f"{path.name}:{function.name} has {len(body)} statements"
        call = body[0].value if isinstance(body[0], (ast.Return, ast.Expr)) else None
        assert isinstance(call, ast.Call) and getattr(call.func, "id", None) == "run_job", f"{path.name}:{function.name} does not call run_job"
        name = call.args[0].value  # type: ignore[attr-defined]
        assert callable(resolve_job(name)), f"{path.name}:{function.name} names {name!r}, which is not a job"


def test_the_context_reads_what_airflow_gives_a_task():
    event = SimpleNamespace(extra={"snapshot_id": "snap-1", "as_of": "2026-06-01T00:00:00+00:00"}, timestamp="2026-06-01T01:00")
    older = SimpleNamespace(extra={"snapshot_id": "snap-0"}, timestamp="2026-05-31T01:00")
    context = {
        "run_id": "asset_triggered__1",
        "dag_run": SimpleNamespace(run_type=SimpleNamespace(value="asset_triggered"), run_after=datetime(2026, 6, 1, 1, tzinfo=UTC)),
        "params": {"snapshot_id": None, "partition_size": 500},
        "logical_date": None,
        "triggering_asset_events": {Asset(SNAPSHOT_ASSET_URI): [older, event]},
    }
    ctx = job_context(context)
    assert (ctx.run_id, ctx.run_type, ctx.logical_date) == ("asset_triggered__1", "asset_triggered", None)
    assert ctx.as_of == datetime(2026, 6, 1, 1, tzinfo=UTC)  # no logical date: when the run was due
    assert ctx.param("snapshot_id", "default") == "default" and ctx.param("partition_size") == 500
    assert ctx.latest_extra(SNAPSHOT_ASSET_URI)["snapshot_id"] == "snap-1"
    assert ctx.recent("rakuten://drift-alert", 5) == []


def test_refusals_and_empty_days_are_skips_with_their_reason():
    ctx = JobContext(run_id="r1", params={"apply": False})
    with pytest.raises(JobSkipped, match="skipped_cooldown.*force=true"):
        retraining.cooldown_gate(ctx, {"proceed": False, "status": "skipped_cooldown", "decision": "run r0 trained 2 h ago"})
    retraining.cooldown_gate(ctx, {"proceed": True, "status": "started", "decision": "ok"})  # proceeds: no exception
    with pytest.raises(JobSkipped, match="no drift rule fired"):
        monitoring.emit_alert(ctx, {"alerts": []})
    assert monitoring.emit_alert(ctx, {"alerts": ["data_drift"], "alert": {"alert_id": "a1"}}).events == {"rakuten://drift-alert": {"alert_id": "a1"}}
    with pytest.raises(JobSkipped, match="dry run"):
        promotion.gate_new_version(ctx)
    with pytest.raises(JobSkipped, match="nothing to score: no model yet"):
        scoring.plan(ctx, {"skip_reason": "no model yet"})
    with pytest.raises(JobSkipped, match="nothing was scored"):
        scoring.summarise(ctx, {"skip_reason": "no model yet"})
