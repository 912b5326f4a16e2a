"""Scoring, promotion, retraining requests and training while their services die: PostgreSQL stopped during a
scoring run's prediction upserts, a promotion's audit write and a retraining request; S3 cut mid-scoring; MLflow
cut (a proxy) during a model registration, a scoring run's model resolution and in the middle of an alias move,
and the MLflow server process SIGKILLed mid-move and restarted.

Each command ends with a typed error (a :class:`RakutenError`) whose message says what to do; after the
service is back, the rerun the message asks for leaves exact state: one prediction per product, every
partition done, aliases where one completed move puts them, one audit row per completed move.
"""

from __future__ import annotations

import io
import uuid

import boto3
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from rakuten_ml.errors import DatabaseError, ModelLoadError, ObjectStoreError, RakutenError, RegistryError
from rakuten_ml.promotion import aliases
from rakuten_ml.promotion.audit import Actor
from rakuten_ml.registry.gateway import ModelRegistry, RegistryState
from rakuten_ml.registry.resolve import resolve_model
from rakuten_ml.resources import Platform
from rakuten_ml.scoring import batch
from rakuten_ml.scoring.batch import parquet_prefix, score_products
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import predictions, scoring_partitions, scoring_runs
from rakuten_ml.training.train import train_and_register
from tests.faults.conftest import PARTITION_SIZE, ScoringSetup
from tests.faults.figures import record_figures
from tests.faults.services import FaultProxy
from tests.support.platforms import build_platform
from tests.support.promotion import ab_test_in_progress, events, register_versions, set_state

pytestmark = pytest.mark.faults

ALICE = Actor("alice", "manual__faults")
_FIGURES: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield
    record_figures("service_outages", {
        "faults_injected": sum(f["faults"] for f in _FIGURES.values()),
        "rows_checked": sum(f["rows"] for f in _FIGURES.values()),
        "rows_lost": sum(f["lost"] for f in _FIGURES.values()),
        "duplicates": sum(f["duplicates"] for f in _FIGURES.values()),
        "cases": _FIGURES,
    })


def assert_actionable(exc: RakutenError, *phrases: str) -> None:
    """A one-paragraph message naming what to do, not a driver traceback echoing SQL or bound rows."""
    message = str(exc)
    for phrase in phrases:
        assert phrase in message, message
    assert "INSERT INTO" not in message and "Background on this error" not in message and len(message) < 1500, message


# --- scoring ------------------------------------------------------------------------------------------


def run_rows(engine, run_id: str) -> dict[str, object]:
    """What the database holds of one scoring run."""
    with engine.connect() as conn:
        ids = conn.execute(sa.select(predictions.c.productid).where(predictions.c.run_id == run_id)).scalars().all()
        parts = {r.partition_id: (r.status, r.attempts, r.n_scored) for r in conn.execute(
            sa.select(scoring_partitions).where(scoring_partitions.c.run_id == run_id))}
        run = conn.execute(sa.select(scoring_runs).where(scoring_runs.c.run_id == run_id)).first()
    return {"ids": ids, "parts": parts, "run": run}


def assert_exact_run(setup_ids: list[int], state: dict[str, object], n_partitions: int) -> tuple[int, int]:
    """One prediction per product of the snapshot, every partition done, the run record done with the same count.
    Returns (lost, duplicates)."""
    ids = state["ids"]
    duplicates = len(ids) - len(set(ids))
    lost = len(set(setup_ids) - set(ids))
    assert (lost, duplicates) == (0, 0) and set(ids) == set(setup_ids)
    assert sorted(state["parts"]) == list(range(n_partitions))
    assert all(status == "done" for status, _, _ in state["parts"].values()), state["parts"]
    assert sum(n for _, _, n in state["parts"].values()) == len(setup_ids)
    run = state["run"]
    assert run.status == "done" and run.n_partitions == n_partitions and run.counts["scored"] == len(setup_ids)
    return lost, duplicates


def stop_when(setup: ScoringSetup, hooks: pytest.MonkeyPatch, point: str) -> None:
    """Stop (crash) the platform's PostgreSQL at ``point`` of a scoring run of three partitions."""
    real_upsert, real_state = batch.upsert, batch._partition_state
    calls: list[int] = []

    def upsert(engine, table, rows, **kwargs):
        if table.name != "predictions":
            return real_upsert(engine, table, rows, **kwargs)
        calls.append(len(rows))
        if point == "mid_partition_upsert" and len(calls) == 2:  # half of partition 1 is committed, then the server dies
            real_upsert(engine, table, rows[: len(rows) // 2], **kwargs)
            setup.server.stop()
            return real_upsert(engine, table, rows[len(rows) // 2 :], **kwargs)
        written = real_upsert(engine, table, rows, **kwargs)
        if point == "after_partition_predictions" and len(calls) == 1:  # partition 0 written, its 'done' not yet
            setup.server.stop()
        return written

    def partition_state(platform, run_id, partition_id):
        if point == "between_partitions" and partition_id == 1:
            setup.server.stop()
        return real_state(platform, run_id, partition_id)

    hooks.setattr(batch, "upsert", upsert)
    hooks.setattr(batch, "_partition_state", partition_state)


@pytest.mark.parametrize(
    ("point", "committed", "states", "attempts"),
    [
        # partition 0's predictions are committed, recording it done fails: the rerun scores it again (upsert, no duplicate)
        pytest.param("after_partition_predictions", lambda p: p[0], {0: "running"}, {0: 2, 1: 1, 2: 1}, id="after_partition_predictions"),
        # the server dies in the middle of partition 1's upserts: its first half stays, the rerun overwrites it
        pytest.param("mid_partition_upsert", lambda p: p[0] + p[1] // 2, {0: "done", 1: "running"}, {0: 1, 1: 2, 2: 1}, id="mid_partition_upsert"),
        # the server is gone when partition 1 starts: the read of its state fails, nothing of it is written
        pytest.param("between_partitions", lambda p: p[0], {0: "done"}, {0: 1, 1: 1, 2: 1}, id="between_partitions"),
    ],
)
def test_postgres_crash_during_a_scoring_run_then_the_rerun_is_exact(scoring_setup, point, committed, states, attempts):
    setup = scoring_setup
    platform, engine = setup.platform, setup.platform.engine
    run_id = f"pg-crash-{point}-{uuid.uuid4().hex[:6]}"
    model = resolve_model(setup.settings)
    with pytest.MonkeyPatch.context() as hooks, pytest.raises(DatabaseError) as caught:
        stop_when(setup, hooks, point)
        score_products(platform, run_id=run_id, snapshot_id=setup.snapshot_id, model=model, partition_size=PARTITION_SIZE)
    assert not setup.server.running
    assert_actionable(caught.value, "check that the", "running", f"rerun the same run id (`rakuten-ml score --run-id {run_id}`",
                      "nothing is lost or duplicated")
    setup.server.start()

    partition_sizes = [p.n_products for p in batch.split_partitions(np.asarray(setup.productids), 3)]
    before = run_rows(engine, run_id)
    assert len(before["ids"]) == committed(partition_sizes)  # committed rows survive the crash, nothing else
    assert {pid: status for pid, (status, _, _) in before["parts"].items()} == states
    assert before["run"].status == "running"

    result = score_products(platform, run_id=run_id, snapshot_id=setup.snapshot_id, model=model, partition_size=PARTITION_SIZE)
    assert result.status == "done" and result.n_scored == len(setup.productids) and result.n_partitions_done == 3
    after = run_rows(engine, run_id)
    lost, duplicates = assert_exact_run(setup.productids, after, 3)
    assert {pid: a for pid, (_, a, _) in after["parts"].items()} == attempts
    _FIGURES[f"postgres_stopped_{point}"] = {"faults": 1, "rows": len(after["ids"]), "lost": lost, "duplicates": duplicates}


def test_s3_cut_mid_scoring_then_the_rerun_is_exact(scoring_setup, s3_proxy: FaultProxy, s3_endpoint, s3_bucket, tmp_path):
    """The snapshot and the predictions' parquet files live in S3 behind a proxy that is cut while partition 1 is written,
    and again while a fresh worker reads the snapshot to resume."""
    settings = Settings(home=tmp_path, object_store_url=f"s3://{s3_bucket}/platform", s3_endpoint_url=s3_proxy.url,
                        mlflow_tracking_uri=scoring_setup.settings.mlflow_tracking_uri)  # the session's trained model
    platform, snapshot_id = build_platform(settings, rows=600)
    expected_ids = sorted(int(p) for p in batch.load_products(platform.store, snapshot_id)["productid"])
    n_products = len(expected_ids)
    model = resolve_model(settings)
    run_id = f"s3-cut-{uuid.uuid4().hex[:6]}"
    store = platform.store
    real_put = store.put_bytes

    def put_bytes(key: str, data: bytes) -> None:
        if key.endswith("part-00001.parquet"):
            s3_proxy.cut()
        real_put(key, data)

    with pytest.MonkeyPatch.context() as hooks, pytest.raises(ObjectStoreError) as caught:
        hooks.setattr(store, "put_bytes", put_bytes)
        score_products(platform, run_id=run_id, snapshot_id=snapshot_id, model=model, partition_size=150)
    assert_actionable(caught.value, "cannot reach S3 endpoint", "that the server is running", "once the object store is back",
                      f"rerun the same run id (`rakuten-ml score --run-id {run_id}`")
    state = run_rows(platform.engine, run_id)
    assert {pid: status for pid, (status, _, _) in state["parts"].items()} == {0: "done", 1: "failed"}
    assert "ObjectStoreError" in _partition_error(platform, run_id, 1)

    batch._SNAPSHOT_CACHE.clear()  # a fresh worker: it must read the snapshot from S3, still cut off
    with pytest.raises(ObjectStoreError, match="once the object store is back"):
        score_products(platform, run_id=run_id, partition_size=150)
    assert run_rows(platform.engine, run_id)["parts"] == state["parts"]  # nothing recorded by the failed resume

    s3_proxy.restore()
    result = score_products(platform, run_id=run_id, partition_size=150)
    after = run_rows(platform.engine, run_id)
    assert result.status == "done" and result.n_scored == n_products
    lost, duplicates = assert_exact_run(expected_ids, after, 4)
    assert {pid: a for pid, (_, a, _) in after["parts"].items()} == {0: 1, 1: 2, 2: 1, 3: 1}
    # the parquet copy is exact too: one file per partition, each product once
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    prefix = f"platform/{parquet_prefix(run_id)}/"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=prefix)["Contents"])
    assert keys == [f"{prefix}part-{i:05d}.parquet" for i in range(4)]
    parquet_ids = pd.concat([pd.read_parquet(io.BytesIO(s3.get_object(Bucket=s3_bucket, Key=k)["Body"].read())) for k in keys])["productid"]
    assert len(parquet_ids) == parquet_ids.nunique() == n_products
    _FIGURES["s3_cut_mid_scoring"] = {"faults": 2, "rows": len(after["ids"]) + len(parquet_ids), "lost": lost, "duplicates": duplicates}


def _partition_error(platform: Platform, run_id: str, partition_id: int) -> str:
    with platform.engine.connect() as conn:
        return conn.execute(sa.select(scoring_partitions.c.error).where(
            scoring_partitions.c.run_id == run_id, scoring_partitions.c.partition_id == partition_id)).scalar_one()


# --- promotion: PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def registry_platform(tmp_path, outage_db_url) -> Platform:
    """Platform database on the throwaway PostgreSQL; registry in an embedded MLflow (the service that stays up)."""
    return Platform(Settings(home=tmp_path, database_url=outage_db_url, registered_model_name=f"clf-{uuid.uuid4().hex[:8]}")).prepare()


def promote_events(platform: Platform) -> list[dict]:
    return [e for e in events(platform) if e["action"] == "promote"]


def lose_the_connection_at(conn, server, point: str, real_record):
    """``record_event`` of a promotion, with the platform's PostgreSQL crashing at ``point`` of the audit write."""

    def record_event(lock_conn, event):
        if point == "before_the_insert":
            server.stop()
            return real_record(lock_conn, event)
        event_id = real_record(lock_conn, event)  # inserted in the lock's transaction, not committed yet
        if point == "before_the_commit":
            server.stop()
            return event_id
        real_commit = lock_conn.commit

        def commit_then_crash() -> None:  # the COMMIT reaches the server, its acknowledgement never comes back
            real_commit()
            server.stop()
            raise sa.exc.OperationalError("COMMIT", {}, conn.OperationalError("server closed the connection unexpectedly"))

        lock_conn.commit = commit_then_crash
        return event_id

    return record_event


@pytest.mark.parametrize("point", ["before_the_insert", "before_the_commit", "after_the_commit"])
def test_postgres_crash_during_the_audit_write_of_a_promotion(registry_platform, throwaway_postgres, point):
    """The aliases have moved in MLflow when the audit row cannot be written: the move is undone at once, and the rerun
    (which settles the interrupted move first) leaves the aliases and the audit trail agreeing, one row per completed
    move. ``after_the_commit``: the row was committed although the client saw the connection die; the rerun finds it
    and puts the aliases forward again instead of promoting a second time."""
    import psycopg2

    platform = registry_platform
    name = platform.settings.registered_model_name
    v0, v1, v2 = register_versions(platform.settings, [0.8, 0.81, 0.82])
    set_state(platform, champion=v1, challenger=v2, previous=v0)
    before, after = RegistryState(name, v1, v2, v0), RegistryState(name, champion=v2, challenger=None, previous_champion=v1)
    platform.engine  # noqa: B018 - tables made while the server is up
    promote = lambda: aliases.promote(platform, v2, actor=ALICE, reason="A/B win", expected_champion=v1, require_challenger=True)  # noqa: E731

    with pytest.MonkeyPatch.context() as hooks, pytest.raises(DatabaseError) as caught:
        hooks.setattr(aliases, "record_event", lose_the_connection_at(psycopg2, throwaway_postgres, point, aliases.record_event))
        promote()
    assert not throwaway_postgres.running
    assert_actionable(caught.value, "audit row could not be written", f"the aliases were restored to {before.as_dict()}",
                      "check that the database is running, then rerun this command")
    registry = ModelRegistry(platform.settings)
    state, record = registry.state_and_last_move()
    assert state == before and record["state"] == aliases.RESTORED  # no alias stays moved while its audit row is in doubt

    with pytest.raises(DatabaseError, match="taking the promotion lock .* nothing was moved"):
        promote()  # the database still down: the rerun fails before it moves anything
    with pytest.raises(DatabaseError, match="reading the promotion history .* check that the server is running"):
        events(platform)  # `rakuten-ml registry history` / `status` too: a typed error, not a driver traceback
    assert registry.state() == before

    throwaway_postgres.start()
    committed = point == "after_the_commit"
    assert len(promote_events(platform)) == (1 if committed else 0)  # an uncommitted row died with the crashed transaction
    move = promote()
    if committed:  # settled forward from the audit row: nothing left to do, and no second row
        assert not move.changed and move.reason == f"version {v2} is already champion"
    else:
        assert move.changed and move.after == after
    state, last = registry.state_and_last_move()
    assert state == after
    [event] = promote_events(platform)
    assert (event["from_version"], event["to_version"]) == (v1, v2)
    assert event["metrics"]["move_id"] == (record if committed else last)["move_id"]
    assert last["state"] == (aliases.COMPLETED if committed else aliases.MOVING)  # MOVING + its audit row = complete
    assert not promote().changed and len(promote_events(platform)) == 1  # a further rerun is a no-op: still one row
    _FIGURES[f"postgres_stopped_audit_{point}"] = {"faults": 2, "rows": len(events(platform)), "lost": 0, "duplicates": 0}


@pytest.mark.parametrize("point", ["before_the_request", "holding_the_advisory_lock"])
def test_postgres_crash_during_a_retraining_request_then_the_rerun_counts_once(outage_db_url, throwaway_postgres, tmp_path, point):
    from rakuten_ml.monitoring import retrain_guard as guard

    engine = Platform(Settings(home=tmp_path, database_url=outage_db_url)).prepare().engine
    alert = {"alert_id": "drift:2026-06-01:v1", "alerts": [{"metric": "data_drift", "statistic": 0.4, "threshold": 0.1}]}
    begin = lambda run_id: guard.begin_retrain(engine, dag_run_id=run_id, run_type="manual", triggering=[], recent=[alert],  # noqa: E731
                                               reason=None, force=False, cooldown_hours=168.0)
    with pytest.MonkeyPatch.context() as hooks, pytest.raises(DatabaseError) as caught:
        if point == "before_the_request":
            throwaway_postgres.stop()
        else:
            real_last_active = guard._last_active

            def last_active(conn, since, exclude_run_id):
                throwaway_postgres.stop()  # the session holding the advisory lock dies with the server
                return real_last_active(conn, since, exclude_run_id)

            hooks.setattr(guard, "_last_active", last_active)
        begin("manual__1")
    what = "reading the alerts answered before" if point == "before_the_request" else "recording retraining request 'manual__1'"
    assert_actionable(caught.value, what, "check that the server is running", "rerun the retraining run", "never counted twice")
    throwaway_postgres.start()
    assert guard.list_requests(engine) == []  # nothing recorded by the crashed request
    assert begin("manual__1")["proceed"]  # the rerun: not blocked by a lock of the dead session, nor by itself
    second = begin("manual__2")
    assert not second["proceed"] and second["blocking_run_id"] == "manual__1"
    rows = {r["dag_run_id"]: (r["status"], r["alert_ids"]) for r in guard.list_requests(engine)}
    assert rows == {"manual__1": ("started", [alert["alert_id"]]), "manual__2": ("skipped_cooldown", [])}  # the alert answered once
    _FIGURES[f"postgres_stopped_retrain_request_{point}"] = {"faults": 1, "rows": len(rows), "lost": 0, "duplicates": 0}


# --- MLflow -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("point", ["logging_the_model", "registering_the_version"])
def test_mlflow_down_during_model_registration_then_one_version_per_training(tmp_path, mlflow_proxy, mlflow_server, point):
    import mlflow

    settings = Settings(home=tmp_path, mlflow_tracking_uri=mlflow_proxy.url, registered_model_name=f"clf-{uuid.uuid4().hex[:8]}",
                        mlflow_experiment=f"faults-{uuid.uuid4().hex[:8]}")
    platform, snapshot_id = build_platform(settings, rows=300)
    target = (mlflow.pyfunc, "log_model") if point == "logging_the_model" else (mlflow, "register_model")
    real = getattr(*target)

    def cut_then_call(*args, **kwargs):
        mlflow_proxy.cut()
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as hooks, pytest.raises(RegistryError) as caught:
        hooks.setattr(*target, cut_then_call)
        train_and_register(platform, snapshot_id=snapshot_id)
    what = "cannot log training run" if point == "logging_the_model" else "cannot register the model of training run"
    assert_actionable(caught.value, what, "check that MLflow is up", "rerun the training")
    assert mlflow.active_run() is None  # no run left active in the process for the next training to nest in

    direct = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)  # the server itself, not the proxy
    assert direct.search_model_versions(f"name='{settings.registered_model_name}'") == []
    mlflow_proxy.restore()
    result = train_and_register(platform, snapshot_id=snapshot_id)
    versions = direct.search_model_versions(f"name='{settings.registered_model_name}'")
    assert [v.version for v in versions] == [result.model_version] == ["1"]  # one version per successful training
    assert versions[0].run_id == result.run_id and versions[0].tags["snapshot_id"] == snapshot_id
    assert versions[0].tags["metric.f1_weighted"]  # created with its tags, in one call
    assert direct.get_registered_model(settings.registered_model_name).aliases == {}  # registration moves no alias
    experiment = direct.get_experiment_by_name(settings.mlflow_experiment)
    runs = {r.info.run_id: r.info.status for r in direct.search_runs([experiment.experiment_id])}
    # the cut-off attempt's run could not even be marked failed: it stays RUNNING, with no version pointing at it
    assert len(runs) == 2 and runs[result.run_id] == "FINISHED" and sorted(runs.values()) == ["FINISHED", "RUNNING"]
    _FIGURES[f"mlflow_down_{point}"] = {"faults": 1, "rows": len(versions), "lost": 0, "duplicates": len(versions) - 1}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cut_after", "half_moved"),
    [
        # previous-champion re-pointed, champion not yet: the old previous-champion is overwritten
        pytest.param(1, lambda v0, v1, v2: (v1, v2, v1), id="after_previous_champion"),
        # champion moved, the challenger alias not yet removed: the same version is champion and challenger
        pytest.param(2, lambda v0, v1, v2: (v2, v2, v1), id="after_champion"),
    ],
)
def test_mlflow_down_in_the_middle_of_an_alias_move_then_the_rerun_repairs_it(tmp_path, mlflow_proxy, mlflow_server, outage_db_url,
                                                                            cut_after, half_moved):
    settings = Settings(home=tmp_path, mlflow_tracking_uri=mlflow_proxy.url, database_url=outage_db_url,
                        registered_model_name=f"clf-{uuid.uuid4().hex[:8]}")
    platform, v0, v1, v2 = ab_test_in_progress(settings)
    name = settings.registered_model_name
    before = RegistryState(name, v1, v2, v0)
    real_move = ModelRegistry.move
    moves: list[str] = []

    def move(self, alias, version):
        real_move(self, alias, version)
        moves.append(alias)
        if len(moves) == cut_after:
            mlflow_proxy.cut()

    promote = lambda: aliases.promote(platform, v2, actor=ALICE, reason="A/B win", expected_champion=v1, require_challenger=True)  # noqa: E731
    with pytest.MonkeyPatch.context() as hooks, pytest.raises(RegistryError) as caught:
        hooks.setattr(ModelRegistry, "move", move)
        promote()
    assert_actionable(caught.value, "the aliases are half-moved until the next alias move", "once MLflow is back, rerun this command")
    direct = ModelRegistry(settings.replace(mlflow_tracking_uri=mlflow_server))
    state, record = direct.state_and_last_move()
    champion, challenger, previous = half_moved(v0, v1, v2)
    assert state == RegistryState(name, champion, challenger, previous)  # what MLflow was left with
    assert record["state"] == aliases.MOVING and record["before"] == before.as_dict()
    with pytest.raises(RegistryError, match="cannot read registered model .* check that MLflow is up .*RAKUTEN_MLFLOW_TRACKING_URI"):
        promote()  # still down: nothing more moves
    assert events(platform) == []  # nothing audited: the move did not complete

    mlflow_proxy.restore()
    move_result = promote()  # settles the interrupted move (aliases back as before), then moves and audits once
    assert move_result.changed and move_result.before == before
    state, record = direct.state_and_last_move()
    assert state == RegistryState(name, champion=v2, challenger=None, previous_champion=v1)
    [event] = events(platform)
    assert (event["action"], event["from_version"], event["to_version"]) == ("promote", v1, v2)
    assert event["metrics"]["move_id"] == record["move_id"]
    assert not promote().changed and len(events(platform)) == 1  # a further rerun is a no-op: still one audit row
    _FIGURES[f"mlflow_down_alias_move_after_step_{cut_after}"] = {"faults": 2, "rows": len(events(platform)), "lost": 0, "duplicates": 0}


@pytest.mark.slow
def test_mlflow_down_while_a_scoring_run_resolves_its_models_is_a_typed_error(tmp_path, mlflow_proxy):
    """MLflow lost between the champion and the challenger reads: the run must not start champion-only (a silent end
    of the A/B test); with no challenger set at all, it runs champion-only as before."""
    settings = Settings(home=tmp_path, mlflow_tracking_uri=mlflow_proxy.url, registered_model_name=f"clf-{uuid.uuid4().hex[:8]}",
                        ab_challenger_share=0.2)
    platform = Platform(settings).prepare()
    v1, v2 = register_versions(settings, [0.8, 0.81])
    set_state(platform, champion=v1)
    assert batch.resolve_run_models(platform).challenger is None  # the server's answer for an alias not set
    set_state(platform, challenger=v2)
    real_resolve = batch.resolve_model

    def resolve_then_cut(*args, **kwargs):
        resolved = real_resolve(*args, **kwargs)
        mlflow_proxy.cut()
        return resolved

    with pytest.MonkeyPatch.context() as hooks, pytest.raises(ModelLoadError) as caught:
        hooks.setattr(batch, "resolve_model", resolve_then_cut)
        batch.resolve_run_models(platform)
    assert_actionable(caught.value, "cannot read the 'challenger' alias", "check that MLflow is up, then rerun the scoring")
    mlflow_proxy.restore()
    models = batch.resolve_run_models(platform)
    assert (models.champion.version, models.challenger.version, models.challenger_share) == (v1, v2, 0.2)
    _FIGURES["mlflow_down_resolving_run_models"] = {"faults": 1, "rows": 2, "lost": 0, "duplicates": 0}


@pytest.mark.slow
def test_mlflow_server_killed_mid_move_and_restarted_then_the_rerun_repairs_it(tmp_path, restartable_mlflow, outage_db_url):
    """Not a proxy this time: the MLflow server process group is SIGKILLed right after the move's first alias step and
    started again on the same port; the write-ahead record, in MLflow's own database, survived the crash."""
    server = restartable_mlflow
    settings = Settings(home=tmp_path, mlflow_tracking_uri=server.url, database_url=outage_db_url,
                        registered_model_name=f"clf-{uuid.uuid4().hex[:8]}")
    platform, v0, v1, v2 = ab_test_in_progress(settings)
    name = settings.registered_model_name
    real_move = ModelRegistry.move

    def move_then_crash(self, alias, version):
        real_move(self, alias, version)
        server.kill()

    with pytest.MonkeyPatch.context() as hooks, pytest.raises(RegistryError) as caught:
        hooks.setattr(ModelRegistry, "move", move_then_crash)
        aliases.rollback(platform, actor=ALICE, reason="bad canary", expected_champion=v1)
    assert_actionable(caught.value, "rollback of", "the aliases are half-moved until the next alias move", "once MLflow is back, rerun")
    server.start()
    registry = ModelRegistry(settings)
    state, record = registry.state_and_last_move()
    assert state == RegistryState(name, champion=v0, challenger=v2, previous_champion=v0)  # champion moved, previous not cleared
    assert record["state"] == aliases.MOVING and [v.version for v in reversed(registry.versions())] == [v0, v1, v2]
    assert events(platform) == []

    move = aliases.rollback(platform, actor=ALICE, reason="bad canary", expected_champion=v1)  # settles, then rolls back once
    assert move.changed and move.before == RegistryState(name, v1, v2, v0)
    state, record = registry.state_and_last_move()
    assert state == RegistryState(name, champion=v0, challenger=v2, previous_champion=None)
    [event] = events(platform)
    assert (event["action"], event["from_version"], event["to_version"], event["metrics"]["move_id"]) == ("rollback", v1, v0, record["move_id"])
    assert not aliases.rollback(platform, actor=ALICE, reason="bad canary", expected_champion=v1).changed and len(events(platform)) == 1
    _FIGURES["mlflow_server_sigkill_mid_rollback"] = {"faults": 1, "rows": len(events(platform)), "lost": 0, "duplicates": 0}
