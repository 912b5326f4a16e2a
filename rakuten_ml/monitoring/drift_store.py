"""The drift job's reads and writes in the platform database: predictions in a window, feedback
labels, earlier verdicts, and the day's ``drift_checks`` rows (upserted, so a rerun overwrites)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rakuten_ml.monitoring import DRIFTED_STATUSES, METRIC_DATA
from rakuten_ml.monitoring.performance_estimate import ConfusionSums
from rakuten_ml.monitoring.rules import FEATURE_SHARE, CheckRow
from rakuten_ml.storage.database import confusion_sums, drift_checks, feedback, prediction_log, predictions, upsert


def window_bounds(as_of: datetime, days: int) -> tuple[datetime, datetime]:
    return as_of - timedelta(days=days), as_of


def load_predictions(engine: Engine, start: datetime, end: datetime, model_version: str | None = None) -> pd.DataFrame:
    """Batch and online predictions in [start, end): productid, model_version, prdtypecode, confidence, at."""
    selects = []
    for table, at in ((predictions, predictions.c.scored_at), (prediction_log, prediction_log.c.created_at)):
        stmt = sa.select(
            table.c.productid, table.c.model_version, table.c.prdtypecode, table.c.confidence, at.label("at")
        ).where(at >= sa.bindparam("start"), at < sa.bindparam("end"))
        if model_version is not None:
            stmt = stmt.where(table.c.model_version == sa.bindparam("version"))
        selects.append(stmt)
    params: dict[str, Any] = {"start": start, "end": end}
    if model_version is not None:
        params["version"] = model_version
    with engine.connect() as conn:
        rows = conn.execute(sa.union_all(*selects), params).all()
    frame = pd.DataFrame(rows, columns=["productid", "model_version", "prdtypecode", "confidence", "at"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


def latest_per_product(frame: pd.DataFrame, start: datetime | None = None) -> pd.DataFrame:
    """One row per product (its latest prediction since ``start``): nightly rescoring must not count a product 7 times.

    Online rows without a productid are kept as they are.
    """
    if start is not None:
        frame = frame[frame["at"] >= pd.Timestamp(start)]
    frame = frame.sort_values("at", kind="stable")
    known = frame[frame["productid"].notna()].drop_duplicates("productid", keep="last")
    return pd.concat([known, frame[frame["productid"].isna()]], ignore_index=True)


def primary_model_version(frame: pd.DataFrame) -> str | None:
    """The version that made most of the window's predictions (the champion; a 5% challenger is not)."""
    if frame.empty:
        return None
    counts = frame["model_version"].astype(str).value_counts()
    return str(counts.index[0])


def load_labels(engine: Engine, productids: Sequence[int]) -> pd.DataFrame:
    """Feedback labels (productid, true prdtypecode) of the given products."""
    if not len(productids):
        return pd.DataFrame(columns=["productid", "true_code"])
    stmt = sa.select(feedback.c.productid, feedback.c.prdtypecode.label("true_code")).where(
        feedback.c.productid.in_(sa.bindparam("ids", expanding=True))
    )
    frames = []
    ids = [int(i) for i in productids]
    with engine.connect() as conn:
        for start in range(0, len(ids), 10_000):  # keep each statement's parameter list bounded
            frames.append(pd.DataFrame(conn.execute(stmt, {"ids": ids[start : start + 10_000]}).all(), columns=["productid", "true_code"]))
    return pd.concat(frames, ignore_index=True)


def drift_history(
    engine: Engine, model_version: str, check_date: date, days: int, *, metric: str = METRIC_DATA, feature: str = FEATURE_SHARE,
) -> dict[date, bool]:
    """One rule's drifted-or-not verdicts (data drift by default) of the ``days`` days before ``check_date`` for one version."""
    stmt = sa.select(drift_checks.c.check_date, drift_checks.c.status).where(
        drift_checks.c.model_version == sa.bindparam("version"),
        drift_checks.c.metric == sa.bindparam("metric"),
        drift_checks.c.feature == sa.bindparam("feature"),
        drift_checks.c.check_date >= sa.bindparam("first"),
        drift_checks.c.check_date < sa.bindparam("today"),
    )
    params = {"version": model_version, "metric": metric, "feature": feature,
              "first": check_date - timedelta(days=days), "today": check_date}
    with engine.connect() as conn:
        return {row.check_date: row.status in DRIFTED_STATUSES for row in conn.execute(stmt, params)}


@dataclass(frozen=True)
class RunSums:
    """One scoring run's expected confusion counts for one version: its partitions' sums added up."""

    run_id: str
    sums: ConfusionSums


def _run_sums(engine: Engine, model_version: str, *, start: datetime | None, end: datetime | None, latest: bool) -> RunSums | None:
    """The latest (or, without ``latest``, the earliest) scoring run in [start, end) that left sums for the version."""
    when = sa.func.max(confusion_sums.c.scored_at)
    runs = sa.select(confusion_sums.c.run_id, when.label("at")).where(confusion_sums.c.model_version == sa.bindparam("version"))
    params: dict[str, Any] = {"version": model_version}
    if start is not None:
        runs, params["start"] = runs.where(confusion_sums.c.scored_at >= sa.bindparam("start")), start
    if end is not None:
        runs, params["end"] = runs.where(confusion_sums.c.scored_at < sa.bindparam("end")), end
    runs = runs.group_by(confusion_sums.c.run_id).order_by(when.desc() if latest else when.asc(), confusion_sums.c.run_id).limit(1)
    with engine.connect() as conn:
        run = conn.execute(runs, params).first()
        if run is None:
            return None
        parts = conn.execute(
            sa.select(confusion_sums.c.sums).where(confusion_sums.c.run_id == sa.bindparam("run"),
                                                   confusion_sums.c.model_version == sa.bindparam("version")),
            {"run": run.run_id, "version": model_version},
        ).scalars().all()
    return RunSums(run.run_id, ConfusionSums.merge(ConfusionSums.from_dict(part) for part in parts))


def latest_run_sums(engine: Engine, model_version: str, start: datetime, end: datetime) -> RunSums | None:
    """The window's latest scoring run's sums: the night the label-free estimate stands for."""
    return _run_sums(engine, model_version, start=start, end=end, latest=True)


def first_run_sums(engine: Engine, model_version: str, end: datetime) -> RunSums | None:
    """The version's first scoring run's sums: the reference its later estimates are compared with."""
    return _run_sums(engine, model_version, start=None, end=end, latest=False)


def store_results(engine: Engine, check_date: date, model_version: str, rows: Sequence[CheckRow], checked_at: datetime) -> int:
    """Upsert the day's rows: a rerun of the same day and version overwrites them."""
    return upsert(
        engine,
        drift_checks,
        [
            {"check_date": check_date, "model_version": model_version, "checked_at": checked_at,
             **asdict(r), "details": json.loads(json.dumps(r.details, default=_json_default))}
            for r in rows
        ],
    )


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
