"""Immutable, content-addressed dataset snapshots in the object store, indexed in the database.

Layout under ``snapshots/<snapshot_id>/``: ``products.parquet`` (accepted rows),
``quarantine.parquet`` (rejected rows with reasons) and ``manifest.json``, written last as
the commit marker. The id is a hash of the accepted content and the contract version, so
re-ingesting the same inputs finds the snapshot already there and writes nothing but the run's
own record: every ingest run is a row of ``ingest_runs`` with its input, accepted and quarantined
counts, and its quarantine under ``ingest-runs/<run id>/quarantine.parquet``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rakuten_ml.data.contract import CONTRACT_VERSION, Rejection
from rakuten_ml.errors import SnapshotNotFoundError
from rakuten_ml.storage.database import database_errors, dataset_snapshots, ingest_runs, quarantined_rows, upsert_rows
from rakuten_ml.storage.object_store import ObjectNotFoundError, ObjectStore

log = logging.getLogger(__name__)

SNAPSHOT_COLUMNS = (
    "productid", "imageid", "designation", "description", "prdtypecode", "image_key", "image_sha256", "source", "location",
)
# Columns that define a snapshot's identity: where a row was read from does not.
CONTENT_COLUMNS = ("productid", "imageid", "designation", "description", "prdtypecode", "image_sha256")


@dataclass(frozen=True)
class SnapshotManifest:
    snapshot_id: str
    content_hash: str
    contract_version: str
    created_at: str
    n_input: int
    n_accepted: int
    n_quarantined: int
    n_with_image: int
    class_counts: dict[str, int]
    quarantine_reasons: dict[str, int]
    sources: dict[str, str]
    products_key: str
    quarantine_key: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False)


def snapshot_prefix(snapshot_id: str) -> str:
    return f"snapshots/{snapshot_id}"


def content_hash(products: pd.DataFrame) -> str:
    """SHA-256 of the accepted rows in a canonical order and encoding."""
    canonical = products.sort_values("productid", kind="stable")[list(CONTENT_COLUMNS)]
    digest = hashlib.sha256(f"contract={CONTRACT_VERSION}\n".encode())
    for row in canonical.itertuples(index=False, name=None):
        digest.update(json.dumps(row, ensure_ascii=False, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def rejections_frame(rejections: list[Rejection]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "source": r.source,
                "location": r.location,
                "reason": str(r.reason),
                "detail": r.detail,
                "productid": r.productid,
                "raw": json.dumps(r.raw, ensure_ascii=False, default=str),
            }
            for r in rejections
        ],
        columns=["source", "location", "reason", "detail", "productid", "raw"],
    ).astype({"productid": "Int64"})


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


@dataclass(frozen=True)
class IngestRunRecord:
    """What one ingest run read and decided, whether or not its snapshot was new."""

    ingest_run_id: str
    snapshot_id: str
    created_snapshot: bool
    started_at: datetime
    finished_at: datetime
    n_input: int
    n_accepted: int
    n_quarantined: int
    quarantine_reasons: dict[str, int]
    sources: dict[str, str]
    quarantine_key: str

    def row(self) -> dict[str, Any]:
        return asdict(self)


def new_ingest_run_id(now: datetime | None = None) -> str:
    """An id for a run nobody named (the CLI): sortable by time, unique across machines."""
    now = now or datetime.now(UTC)
    return f"ingest-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def ingest_run_prefix(ingest_run_id: str) -> str:
    """Where a run's own quarantine file lives; Airflow run ids carry ':' and '+', kept out of keys."""
    return f"ingest-runs/{re.sub(r'[^A-Za-z0-9._=-]', '_', ingest_run_id)}"


def _reason_counts(quarantine: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(quarantine["reason"].value_counts().items())}


def write_snapshot(
    store: ObjectStore,
    engine: Engine,
    products: pd.DataFrame,
    rejections: list[Rejection],
    *,
    n_input: int,
    sources: dict[str, str],
    ingest_run_id: str | None = None,
    started_at: datetime | None = None,
) -> tuple[SnapshotManifest, bool, IngestRunRecord]:
    """Persist a snapshot unless the same content already exists, and the run's own record either way.

    Returns (manifest, created, run). Files are written first and indexed last, in one transaction: a
    snapshot whose index write fails is invisible (``latest`` reads the index) and the rerun indexes it.
    """
    products = products[list(SNAPSHOT_COLUMNS)].sort_values("productid", kind="stable").reset_index(drop=True)
    digest = content_hash(products)
    snapshot_id = f"snap-{digest[:16]}"
    prefix = snapshot_prefix(snapshot_id)
    manifest_key = f"{prefix}/manifest.json"
    now = datetime.now(UTC)
    ingest_run_id = ingest_run_id or new_ingest_run_id(now)
    quarantine = rejections_frame(rejections)
    quarantine_bytes = _parquet_bytes(quarantine)
    reasons = _reason_counts(quarantine)
    sources = dict(sorted(sources.items()))
    created = False
    try:
        manifest = read_manifest(store, snapshot_id)
        log.info("snapshot %s already exists: only the run record %s is written", snapshot_id, ingest_run_id)
    except SnapshotNotFoundError:
        manifest = SnapshotManifest(
            snapshot_id=snapshot_id,
            content_hash=digest,
            contract_version=CONTRACT_VERSION,
            created_at=now.isoformat(),
            n_input=n_input,
            n_accepted=len(products),
            n_quarantined=len(quarantine),
            n_with_image=int(products["image_key"].notna().sum()),
            class_counts={str(k): int(v) for k, v in sorted(products["prdtypecode"].value_counts().items())},
            quarantine_reasons=reasons,
            sources=sources,
            products_key=f"{prefix}/products.parquet",
            quarantine_key=f"{prefix}/quarantine.parquet",
        )
        store.put_bytes(manifest.products_key, _parquet_bytes(products))
        store.put_bytes(manifest.quarantine_key, quarantine_bytes)
        store.put_bytes(manifest_key, manifest.to_json().encode())  # last: the snapshot exists once this does
        created = True
        log.info("snapshot %s written: %d accepted, %d quarantined", snapshot_id, manifest.n_accepted, manifest.n_quarantined)
    run = IngestRunRecord(
        ingest_run_id=ingest_run_id,
        snapshot_id=snapshot_id,
        created_snapshot=created,
        started_at=started_at or now,
        finished_at=datetime.now(UTC),
        n_input=n_input,
        n_accepted=len(products),
        n_quarantined=len(quarantine),
        quarantine_reasons=reasons,
        sources=sources,
        quarantine_key=f"{ingest_run_prefix(ingest_run_id)}/quarantine.parquet",
    )
    store.put_bytes(run.quarantine_key, quarantine_bytes)
    record_snapshot(engine, store, manifest, run, rejections)
    return manifest, created, run


def record_snapshot(engine: Engine, store: ObjectStore, manifest: SnapshotManifest, run: IngestRunRecord, rejections: list[Rejection]) -> None:
    """Index the snapshot, the run and the run's quarantine in one transaction; idempotent per run id.

    All or nothing: a database lost half-way leaves no snapshot named latest without its quarantine
    rows, and rerunning the same run id replaces what it wrote before instead of adding to it.
    """
    snapshot_row = {
        "snapshot_id": manifest.snapshot_id,
        "created_at": datetime.fromisoformat(manifest.created_at),
        "last_seen_at": run.finished_at,
        "content_hash": manifest.content_hash,
        "n_input": manifest.n_input,
        "n_accepted": manifest.n_accepted,
        "n_quarantined": manifest.n_quarantined,
        "store_url": store.url,
        "manifest_key": f"{snapshot_prefix(manifest.snapshot_id)}/manifest.json",
        "manifest": json.loads(manifest.to_json()),
    }
    quarantine_rows = [
        {
            "ingest_run_id": run.ingest_run_id,
            "snapshot_id": manifest.snapshot_id,
            "source": r.source,
            "location": r.location,
            "reason": str(r.reason),
            "productid": r.productid,
            "detail": r.detail,
            "raw": r.raw,
        }
        for r in rejections
    ]
    with database_errors(engine, f"indexing snapshot {manifest.snapshot_id} (ingest run {run.ingest_run_id})",
                         then="rerun the ingest: it is idempotent, and nothing of this run was indexed"), engine.begin() as conn:
        upsert_rows(conn, dataset_snapshots, [snapshot_row], update=False)
        conn.execute(
            sa.update(dataset_snapshots)
            .where(dataset_snapshots.c.snapshot_id == sa.bindparam("sid"))
            .values(last_seen_at=sa.bindparam("seen")),
            {"sid": manifest.snapshot_id, "seen": run.finished_at},
        )
        conn.execute(sa.delete(quarantined_rows).where(quarantined_rows.c.ingest_run_id == sa.bindparam("rid")), {"rid": run.ingest_run_id})
        upsert_rows(conn, quarantined_rows, quarantine_rows, update=False)
        upsert_rows(conn, ingest_runs, [run.row()], update=True)


def list_ingest_runs(engine: Engine, snapshot_id: str | None = None) -> list[dict[str, Any]]:
    """Ingest runs, newest first (optionally those that produced or confirmed one snapshot)."""
    stmt = sa.select(ingest_runs).order_by(ingest_runs.c.finished_at.desc())
    if snapshot_id is not None:
        stmt = stmt.where(ingest_runs.c.snapshot_id == sa.bindparam("sid", snapshot_id))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def read_manifest(store: ObjectStore, snapshot_id: str) -> SnapshotManifest:
    try:
        payload = json.loads(store.get_bytes(f"{snapshot_prefix(snapshot_id)}/manifest.json"))
    except ObjectNotFoundError:
        raise SnapshotNotFoundError(
            f"no snapshot {snapshot_id!r} in {store.url}; list them with `rakuten-ml snapshots list`"
        ) from None
    return SnapshotManifest(**payload)


def load_products(store: ObjectStore, snapshot_id: str) -> pd.DataFrame:
    """The accepted rows of a snapshot."""
    manifest = read_manifest(store, snapshot_id)
    return pd.read_parquet(io.BytesIO(store.get_bytes(manifest.products_key)))


def load_quarantine(store: ObjectStore, snapshot_id: str) -> pd.DataFrame:
    manifest = read_manifest(store, snapshot_id)
    return pd.read_parquet(io.BytesIO(store.get_bytes(manifest.quarantine_key)))


def list_snapshots(engine: Engine) -> list[dict[str, Any]]:
    stmt = sa.select(
        dataset_snapshots.c.snapshot_id,
        dataset_snapshots.c.created_at,
        dataset_snapshots.c.last_seen_at,
        dataset_snapshots.c.n_input,
        dataset_snapshots.c.n_accepted,
        dataset_snapshots.c.n_quarantined,
    ).order_by(dataset_snapshots.c.last_seen_at.desc())
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def latest_snapshot_id(engine: Engine) -> str:
    """The snapshot the most recent ingest produced or confirmed."""
    snapshots = list_snapshots(engine)
    if not snapshots:
        raise SnapshotNotFoundError("no dataset snapshot yet; run `rakuten-ml ingest` (or the ingest_products DAG) first")
    return str(snapshots[0]["snapshot_id"])
