"""Immutable, content-addressed dataset snapshots in the object store, indexed in the database.

Layout under ``snapshots/<snapshot_id>/``: ``products.parquet`` (accepted rows),
``quarantine.parquet`` (rejected rows with reasons) and ``manifest.json``, written last as
the commit marker. The id is a hash of the accepted content and the contract version, so
re-ingesting the same inputs finds the snapshot already there and writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rakuten_ml.data.contract import CONTRACT_VERSION, Rejection
from rakuten_ml.errors import SnapshotNotFoundError
from rakuten_ml.storage.database import dataset_snapshots, quarantined_rows, upsert
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


def write_snapshot(
    store: ObjectStore,
    engine: Engine,
    products: pd.DataFrame,
    rejections: list[Rejection],
    *,
    n_input: int,
    sources: dict[str, str],
) -> tuple[SnapshotManifest, bool]:
    """Persist a snapshot unless the same content already exists; returns (manifest, created)."""
    products = products[list(SNAPSHOT_COLUMNS)].sort_values("productid", kind="stable").reset_index(drop=True)
    digest = content_hash(products)
    snapshot_id = f"snap-{digest[:16]}"
    prefix = snapshot_prefix(snapshot_id)
    manifest_key = f"{prefix}/manifest.json"
    now = datetime.now(UTC)
    created = False
    try:
        manifest = read_manifest(store, snapshot_id)
        log.info("snapshot %s already exists: nothing written", snapshot_id)
    except SnapshotNotFoundError:
        quarantine = rejections_frame(rejections)
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
            quarantine_reasons={str(k): int(v) for k, v in sorted(quarantine["reason"].value_counts().items())},
            sources=dict(sorted(sources.items())),
            products_key=f"{prefix}/products.parquet",
            quarantine_key=f"{prefix}/quarantine.parquet",
        )
        store.put_bytes(manifest.products_key, _parquet_bytes(products))
        store.put_bytes(manifest.quarantine_key, _parquet_bytes(quarantine))
        store.put_bytes(manifest_key, manifest.to_json().encode())  # last: the snapshot exists once this does
        created = True
        log.info("snapshot %s written: %d accepted, %d quarantined", snapshot_id, manifest.n_accepted, manifest.n_quarantined)
    record_snapshot(engine, store, manifest, rejections, seen_at=now)
    return manifest, created


def record_snapshot(engine: Engine, store: ObjectStore, manifest: SnapshotManifest, rejections: list[Rejection], *, seen_at: datetime) -> None:
    """Index the snapshot and its quarantine in the database; idempotent."""
    row = {
        "snapshot_id": manifest.snapshot_id,
        "created_at": datetime.fromisoformat(manifest.created_at),
        "last_seen_at": seen_at,
        "content_hash": manifest.content_hash,
        "n_input": manifest.n_input,
        "n_accepted": manifest.n_accepted,
        "n_quarantined": manifest.n_quarantined,
        "store_url": store.url,
        "manifest_key": f"{snapshot_prefix(manifest.snapshot_id)}/manifest.json",
        "manifest": json.loads(manifest.to_json()),
    }
    upsert(engine, dataset_snapshots, [row], update=False)
    with engine.begin() as conn:
        conn.execute(
            sa.update(dataset_snapshots)
            .where(dataset_snapshots.c.snapshot_id == sa.bindparam("sid"))
            .values(last_seen_at=sa.bindparam("seen")),
            {"sid": manifest.snapshot_id, "seen": seen_at},
        )
    quarantine_rows = [
        {
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
    upsert(engine, quarantined_rows, quarantine_rows, update=False)


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
