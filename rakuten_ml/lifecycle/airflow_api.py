"""Airflow driven the way its users drive it: the REST API (``/api/v2``) the UI itself calls.

Runs are triggered with a logical date and the params form's ``conf``; asset-triggered runs are the
scheduler's own, found by waiting for a new run of the downstream DAG.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from rakuten_ml.errors import RakutenError
from rakuten_ml.lifecycle.polling import poll_until

log = logging.getLogger(__name__)

FINISHED = frozenset({"success", "failed"})
POLL_S = 1.0


class AirflowApiError(RakutenError):
    """The Airflow API refused a call, or a run did not finish in time."""


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    run_id: str
    state: str
    run_type: str
    logical_date: str | None
    conf: dict[str, Any]
    note: str | None

    @classmethod
    def from_api(cls, payload: dict[str, Any]) -> DagRun:
        return cls(payload["dag_id"], payload["dag_run_id"], payload["state"], payload["run_type"],
                   payload.get("logical_date"), payload.get("conf") or {}, payload.get("note"))


class AirflowClient:
    def __init__(self, base_url: str, *, token: str | None = None, timeout_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=f"{base_url.rstrip('/')}/api/v2", headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AirflowApiError(f"Airflow API {method} {path} unreachable ({exc}); is the api-server running?") from exc
        if response.status_code >= 400:
            raise AirflowApiError(f"Airflow API {method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def wait_for_dags(self, dag_ids: list[str], timeout_s: float = 180.0) -> None:
        """Block until the dag-processor has parsed every DAG (without import errors)."""
        known: set[str] = set()

        def parsed() -> bool | None:
            known.update(d["dag_id"] for d in self._call("GET", "/dags", params={"limit": 100})["dags"])
            errors = self._call("GET", "/importErrors")["import_errors"]
            if errors:
                raise AirflowApiError(f"DAG import errors: {[(e['filename'], e['stack_trace'][-500:]) for e in errors]}")
            return True if set(dag_ids) <= known else None

        poll_until(parsed, timeout_s=timeout_s, interval_s=POLL_S, timeout_error=lambda: AirflowApiError(
            f"DAGs {sorted(set(dag_ids) - known)} not parsed after {timeout_s:.0f} s"
        ))

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, *, logical_date: datetime | None, conf: dict[str, Any] | None = None, note: str | None = None) -> DagRun:
        """What the UI's trigger button does: a manual run with the form's params as ``conf``."""
        body: dict[str, Any] = {"logical_date": logical_date.isoformat() if logical_date else None, "conf": conf or {}}
        if note:
            body["note"] = note
        return DagRun.from_api(self._call("POST", f"/dags/{dag_id}/dagRuns", json=body))

    def run(self, dag_id: str, run_id: str) -> DagRun:
        return DagRun.from_api(self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def runs(self, dag_id: str) -> list[DagRun]:
        payload = self._call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "-run_after"})
        return [DagRun.from_api(r) for r in payload["dag_runs"]]

    def wait(self, dag_id: str, run_id: str, *, timeout_s: float) -> DagRun:
        last: list[DagRun] = []

        def finished() -> DagRun | None:
            last[:] = [self.run(dag_id, run_id)]
            return last[0] if last[0].state in FINISHED else None

        return poll_until(finished, timeout_s=timeout_s, interval_s=POLL_S, timeout_error=lambda: AirflowApiError(
            f"{dag_id} run {run_id} still {last[0].state} after {timeout_s:.0f} s"
        ))

    def wait_for_new_run(self, dag_id: str, known: set[str], *, timeout_s: float, run_type: str = "asset_triggered") -> DagRun:
        """The first run of ``dag_id`` of ``run_type`` not in ``known`` (an asset event's run, created by the scheduler)."""

        def appeared() -> DagRun | None:
            fresh = [r for r in self.runs(dag_id) if r.run_id not in known and r.run_type == run_type]
            return fresh[-1] if fresh else None

        return poll_until(appeared, timeout_s=timeout_s, interval_s=POLL_S, timeout_error=lambda: AirflowApiError(
            f"no new {dag_id} run appeared in {timeout_s:.0f} s"
        ))

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """task id -> state; a mapped task reports its instances' states joined, e.g. 'success x3'."""
        payload = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        by_task: dict[str, list[str]] = {}
        for ti in payload["task_instances"]:
            by_task.setdefault(ti["task_id"], []).append(str(ti["state"]))
        return {task: states[0] if len(states) == 1 else ", ".join(f"{s} x{states.count(s)}" for s in sorted(set(states)))
                for task, states in by_task.items()}

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run as the API gives it (state, try_number, queue, hostname, map_index...)."""
        return list(self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})["task_instances"])

    def extra_links(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, str | None]:
        """The task's extra links, as the UI's buttons show them (name -> URL, None when the link has no target)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"
        return dict(self._call("GET", path, params={"map_index": map_index})["extra_links"])

    def return_value(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """The task's return value (its ``return_value`` XCom), None when it pushed none."""
        try:
            entry = self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value")
        except AirflowApiError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        return entry.get("value")

    def set_note(self, dag_id: str, run_id: str, note: str) -> None:
        self._call("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"note": note[:1000]})
