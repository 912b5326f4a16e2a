"""Workers killed with SIGKILL and commands started at once, in real processes.

* a batch scoring worker killed in the middle of a partition (half of its predictions committed, the
  other half inside an open transaction): `rakuten-ml score --run-id` of the same run resumes it with
  exactly one prediction per product;
* retraining requests started together while another one holding the advisory lock is killed: the lock
  dies with its process, exactly one request proceeds, the other is refused by the cool-down;
* promotions started together while another one, killed in the middle of its alias move, still holds
  the promotion lock: exactly one proceeds (after settling the killed move), the other gets a typed
  conflict error, and the audit trail has one row per completed move.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from rakuten_ml.promotion import aliases
from rakuten_ml.promotion.audit import Actor
from rakuten_ml.registry.gateway import ModelRegistry, RegistryState
from rakuten_ml.resources import Platform
from rakuten_ml.scoring.batch import split_partitions
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import predictions, retrain_requests, scoring_partitions, scoring_runs
from tests.faults.conftest import PARTITION_SIZE, REPO_ROOT, python_process, subprocess_env
from tests.faults.figures import record_figures
from tests.support.promotion import events, register_versions

pytestmark = pytest.mark.faults

PROCESS_TIMEOUT_S = 180  # a subprocess pays the platform's imports (torch for scoring) on 2 busy cores
_FIGURES: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield
    record_figures("killed_and_concurrent", {
        "faults_injected": sum(f["faults"] for f in _FIGURES.values()),
        "rows_checked": sum(f["rows"] for f in _FIGURES.values()),
        "rows_lost": sum(f["lost"] for f in _FIGURES.values()),
        "duplicates": sum(f["duplicates"] for f in _FIGURES.values()),
        "cases": _FIGURES,
    })


def wait_for(condition: Callable[[], bool], what: str, processes: list[subprocess.Popen], logs: list[Path], timeout_s: float = PROCESS_TIMEOUT_S) -> None:
    """Poll ``condition``; fail with the processes' logs when one exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        exited = [p for p in processes if p.poll() is not None]
        if exited or time.monotonic() > deadline:
            for p in processes:
                if p.poll() is None:
                    p.kill()
            output = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
            pytest.fail(f"{what}: {'a process exited first' if exited else f'not within {timeout_s:.0f} s'}\n{output}")
        time.sleep(0.1)


def finish(process: subprocess.Popen, log: Path, timeout_s: float = PROCESS_TIMEOUT_S) -> tuple[int, str]:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"{log.name} did not finish within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")
    return process.returncode, log.read_text()


def sigkill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


# --- a scoring worker killed mid-partition --------------------------------------------------------------

# A worker whose second partition stalls after committing half of its predictions and writing the other half
# inside an open transaction (then it is killed from outside): python -c CODE marker run_id snapshot_id partition_size
KILLED_SCORING_WORKER = """
import pathlib, sys, time
from rakuten_ml.storage import database
from rakuten_ml.scoring import batch
marker, run_id, snapshot_id, partition_size = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
real_upsert, real_upsert_rows = batch.upsert, database.upsert_rows
calls = []

def stall_in_transaction(conn, table, rows, **kwargs):
    written = real_upsert_rows(conn, table, rows, **kwargs)  # in the transaction, not committed
    marker.write_text(str(written))
    time.sleep(600)

def upsert(engine, table, rows, **kwargs):
    if table.name == "predictions":
        calls.append(len(rows))
        if len(calls) == 2:
            half = len(rows) // 2
            real_upsert(engine, table, rows[:half], **kwargs)  # committed
            database.upsert_rows = stall_in_transaction
            return real_upsert(engine, table, rows[half:], **kwargs)
    return real_upsert(engine, table, rows, **kwargs)

batch.upsert = upsert
from rakuten_ml.resources import Platform
batch.score_products(Platform.ready(), run_id=run_id, snapshot_id=snapshot_id, partition_size=partition_size)
"""


def test_a_scoring_worker_killed_mid_partition_resumes_with_one_prediction_per_product(scoring_setup, tmp_path):
    setup = scoring_setup
    engine = setup.platform.engine
    run_id = f"killed-{uuid.uuid4().hex[:6]}"
    marker, log = tmp_path / "stalled", tmp_path / "worker.log"
    worker = python_process(KILLED_SCORING_WORKER, str(marker), run_id, setup.snapshot_id, str(PARTITION_SIZE), env=setup.env(), log_path=log)
    wait_for(marker.exists, "the worker reaching the middle of partition 1", [worker], [log])
    sigkill(worker)

    sizes = [p.n_products for p in split_partitions(np.asarray(setup.productids), 3)]
    with engine.connect() as conn:
        committed = conn.execute(sa.select(sa.func.count()).select_from(predictions).where(predictions.c.run_id == run_id)).scalar_one()
        states = dict(conn.execute(sa.select(scoring_partitions.c.partition_id, scoring_partitions.c.status)
                                   .where(scoring_partitions.c.run_id == run_id)).all())
    # partition 0 and the committed half of partition 1 survive; the open transaction died with the process
    assert committed == sizes[0] + sizes[1] // 2, (committed, sizes, marker.read_text())
    assert states == {0: "done", 1: "running"}

    rerun_log = tmp_path / "rerun.log"
    with open(rerun_log, "w") as errors:  # the real CLI, as an operator or a cleared DAG task reruns it
        rerun = subprocess.run([sys.executable, "-m", "rakuten_ml.cli", "score", "--run-id", run_id], env=setup.env(), cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=errors, text=True, timeout=PROCESS_TIMEOUT_S)
    assert rerun.returncode == 0, rerun_log.read_text()[-3000:]
    out = rerun.stdout
    summary = json.loads(out)
    assert (summary["status"], summary["n_scored"], summary["n_partitions"], summary["snapshot_id"]) == ("done", len(setup.productids), 3, setup.snapshot_id)
    with engine.connect() as conn:
        ids = conn.execute(sa.select(predictions.c.productid).where(predictions.c.run_id == run_id)).scalars().all()
        attempts = dict(conn.execute(sa.select(scoring_partitions.c.partition_id, scoring_partitions.c.attempts)
                                     .where(scoring_partitions.c.run_id == run_id, scoring_partitions.c.status == "done")).all())
        run = conn.execute(sa.select(scoring_runs).where(scoring_runs.c.run_id == run_id)).one()
    duplicates, lost = len(ids) - len(set(ids)), len(set(setup.productids) - set(ids))
    assert (lost, duplicates) == (0, 0) and sorted(ids) == setup.productids
    assert attempts == {0: 1, 1: 2, 2: 1}  # the finished partition is not rescored; the killed one is, once
    assert run.status == "done" and run.counts["scored"] == len(setup.productids)
    _FIGURES["scoring_worker_sigkill_mid_partition"] = {"faults": 1, "rows": len(ids), "lost": lost, "duplicates": duplicates}


# --- retraining requests racing while one holding the lock is killed ------------------------------------

# python -c CODE dag_run_id go_file stall_marker(or "-"): waits for go_file, then asks the retrain guard;
# with a stall marker it stops while holding the advisory lock (and is killed there).
RETRAIN_REQUEST = """
import json, pathlib, sys, time
from rakuten_ml.monitoring import retrain_guard as guard
from rakuten_ml.resources import Platform
from datetime import datetime, UTC
run_id, go, stall = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
engine = Platform.ready().engine
if stall != "-":
    real_last_active = guard._last_active
    def last_active(conn, since, exclude_run_id):
        pathlib.Path(stall).write_text("holding the lock")
        time.sleep(600)
    guard._last_active = last_active
while not go.exists():
    time.sleep(0.02)
alert = {"alert_id": "drift:2026-06-01:v1", "alerts": [{"metric": "data_drift", "statistic": 0.4, "threshold": 0.1}]}
summary = guard.begin_retrain(engine, dag_run_id=run_id, run_type="manual", triggering=[], recent=[alert], reason=None,
                              force=False, cooldown_hours=168.0, as_of=datetime(2026, 6, 1, 12, tzinfo=UTC))
print("RESULT " + json.dumps({k: summary[k] for k in ("proceed", "status", "blocking_run_id", "dag_run_id")}))
"""


def waiting_on_locks(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).scalar_one())


def test_two_retrains_at_once_while_the_lock_holder_is_killed_exactly_one_proceeds(outage_db_url, tmp_path):
    settings = Settings(home=tmp_path, database_url=outage_db_url)
    engine = Platform(settings).prepare().engine
    go, stall = tmp_path / "go", tmp_path / "holding"
    env = subprocess_env(settings)
    logs = {name: tmp_path / f"{name}.log" for name in ("killed", "asset__a", "asset__b")}
    killed = python_process(RETRAIN_REQUEST, "killed", str(go), str(stall), env=env, log_path=logs["killed"])
    go.write_text("go")
    wait_for(stall.exists, "the first request holding the advisory lock", [killed], [logs["killed"]])
    racers = {name: python_process(RETRAIN_REQUEST, name, str(go), "-", env=env, log_path=logs[name]) for name in ("asset__a", "asset__b")}
    wait_for(lambda: waiting_on_locks(engine) == 2, "both requests waiting on the lock", [killed, *racers.values()], list(logs.values()))
    sigkill(killed)  # the lock dies with its session: the waiting requests must not hang

    results = {}
    for name, process in racers.items():
        rc, output = finish(process, logs[name])
        assert rc == 0, output[-3000:]
        results[name] = json.loads(output.split("RESULT ", 1)[1])
    proceeded = [name for name, r in results.items() if r["proceed"]]
    assert len(proceeded) == 1, results
    [winner], [loser] = proceeded, [name for name in results if name not in proceeded]
    assert results[loser]["status"] == "skipped_cooldown" and results[loser]["blocking_run_id"] == winner
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(retrain_requests.c.dag_run_id, retrain_requests.c.status)).all())
    assert rows == {winner: "started", loser: "skipped_cooldown"}  # the killed request recorded nothing
    _FIGURES["retrain_requests_racing_lock_holder_sigkill"] = {"faults": 1, "rows": len(rows), "lost": 0, "duplicates": len(proceeded) - 1}


# --- promotions racing while one killed mid-move holds the promotion lock --------------------------------

# python -c CODE marker version expected_champion: promotes, and stops right after its first alias step
# (previous-champion re-pointed, champion not yet), holding the promotion lock, to be killed there.
KILLED_PROMOTION = """
import pathlib, sys, time
from rakuten_ml.promotion import aliases
from rakuten_ml.resources import Platform
from rakuten_ml.promotion.audit import Actor
marker, version, expected = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
real_move = aliases.ModelRegistry.move
def move(self, alias, target):
    real_move(self, alias, target)
    marker.write_text(alias)
    time.sleep(600)
aliases.ModelRegistry.move = move
aliases.promote(Platform.ready(), version, actor=Actor("killed-worker"), reason="race", expected_champion=expected)
"""


def test_two_promotions_at_once_while_a_killed_one_holds_the_lock(outage_db_url, tmp_path):
    settings = Settings(home=tmp_path, database_url=outage_db_url, registered_model_name=f"clf-{uuid.uuid4().hex[:8]}")
    platform = Platform(settings).prepare()
    name = settings.registered_model_name
    v1, v2, v3, v4 = register_versions(settings, [0.8, 0.81, 0.82, 0.83])
    aliases.promote(platform, v1, actor=Actor("setup"), reason="first model", expected_champion=None)
    env = subprocess_env(settings, USER="ops")
    marker = tmp_path / "moved-one-alias"
    logs = {"killed": tmp_path / "killed.log", v3: tmp_path / f"promote-{v3}.log", v4: tmp_path / f"promote-{v4}.log"}
    killed = python_process(KILLED_PROMOTION, str(marker), v2, v1, env=env, log_path=logs["killed"])
    wait_for(marker.exists, "the first promotion half-way through its move", [killed], [logs["killed"]])
    registry = ModelRegistry(settings)
    half_moved, record = registry.state_and_last_move()
    assert half_moved == RegistryState(name, champion=v1, challenger=None, previous_champion=v1) and record["state"] == "moving"

    cli = "import sys; from rakuten_ml.cli import run; sys.argv = ['rakuten-ml', *sys.argv[1:]]; run()"
    racers = {v: python_process(cli, "registry", "promote", v, "--actor", f"ops-{v}", "--expect-champion", v1, env=env, log_path=logs[v])
              for v in (v3, v4)}
    wait_for(lambda: waiting_on_locks(platform.engine) == 2, "both promotions waiting on the promotion lock",
             [killed, *racers.values()], list(logs.values()))
    sigkill(killed)

    outcomes = {v: finish(p, logs[v]) for v, p in racers.items()}
    assert sorted(rc for rc, _ in outcomes.values()) == [0, 1], outcomes  # the loser: a runtime error (exit 1)
    [winner] = [v for v, (rc, _) in outcomes.items() if rc == 0]
    [(_, loser_output)] = [o for v, o in outcomes.items() if v != winner]
    assert f"error: {name}: alias 'champion' is '{winner}', expected '1'" in loser_output and "registry status" in loser_output
    assert "cut short by an outage: rolled_back" in outcomes[winner][1]  # the winner settled the killed move first

    state, record = registry.state_and_last_move()
    assert state == RegistryState(name, champion=winner, challenger=None, previous_champion=v1)
    promotes = [(e["from_version"], e["to_version"], e["actor"]) for e in reversed(events(platform)) if e["action"] == "promote"]
    assert promotes == [(None, v1, "setup"), (v1, winner, f"ops-{winner}")]  # nothing of the killed move, one row per completed move
    assert [e for e in events(platform) if e["action"] == "promote"][0]["metrics"]["move_id"] == record["move_id"]
    _FIGURES["promotions_racing_killed_lock_holder"] = {"faults": 1, "rows": len(events(platform)), "lost": 0, "duplicates": 0}
