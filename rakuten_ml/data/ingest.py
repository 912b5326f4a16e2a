"""Ingestion: read every source, validate each row against the contract, quarantine the bad
ones, resolve duplicated product ids and write a content-addressed snapshot.

Duplicate policy (latest source wins): sources are applied oldest first — catalogue files
(the bulk export), then the labelled-products table ordered by ``labelled_at`` (human
labels are corrections of the export) — and within a file the later line wins. Only rows
that passed the contract compete: an invalid newer row is quarantined and never hides a
valid older one. Every losing row is quarantined as ``duplicate_superseded`` with the
location of the winner, so counts always balance: input = accepted + quarantined, for every run.

An input row is a product line of the catalogue files (joined to its label line), a label line
that no product line took, a Parquet row or a labelled-table row. A bad object (a folder named
``.jpg``, a link loop, a key with ``..``) quarantines its row; a store or database that fails as a
whole ends the run with a typed error and writes nothing the rerun would not write again.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from rakuten_ml.data.contract import (
    ProductRow,
    RawRecord,
    Reason,
    Rejection,
    inspect_image,
    raw_fields,
    validate_fields,
)
from rakuten_ml.data.snapshot import IngestRunRecord, SnapshotManifest, write_snapshot
from rakuten_ml.data.sources import CatalogueFilesSource, PostgresLabelledSource, SourceBatch
from rakuten_ml.errors import InvalidObjectKeyError, ObjectNotFoundError, RakutenError, UnreadableObjectError
from rakuten_ml.settings import IngestSettings
from rakuten_ml.storage.object_store import ObjectStore, sha256_hex

log = logging.getLogger(__name__)

IMAGE_STORE_PREFIX = "images/sha256"


@dataclass(frozen=True)
class IngestResult:
    """The snapshot a run produced or confirmed (``manifest``: the run that first wrote it) and the run itself."""

    manifest: SnapshotManifest
    created: bool
    run: IngestRunRecord

    @property
    def snapshot_id(self) -> str:
        return self.manifest.snapshot_id

    def summary(self) -> dict[str, Any]:
        """This run's own accounting (n_input = n_accepted + n_quarantined), even on a reused snapshot id."""
        r = self.run
        return {
            "ingest_run_id": r.ingest_run_id,
            "snapshot_id": r.snapshot_id,
            "created": self.created,
            "n_input": r.n_input,
            "n_accepted": r.n_accepted,
            "n_quarantined": r.n_quarantined,
            "quarantine_reasons": r.quarantine_reasons,
            "quarantine_key": r.quarantine_key,
        }


@dataclass
class _Candidate:
    record: RawRecord
    row: ProductRow
    image_key: str | None = None
    image_sha256: str | None = None


def content_image_key(digest: str) -> str:
    """Where an image lives once ingested: addressed by its content, shared by all snapshots."""
    return f"{IMAGE_STORE_PREFIX}/{digest[:2]}/{digest}.jpg"


class ImageChecker:
    """Checks that each candidate's image exists, is bounded and decodes, and copies it into content-addressed storage.

    ``max_image_side`` is checked on the header before any decode: with ``workers`` threads
    decoding at once, one unbounded PNG per thread is gigabytes.
    """

    def __init__(
        self, source_store: ObjectStore, target_store: ObjectStore, *, require_image: bool, max_image_side: int, workers: int = 8,
    ) -> None:
        self.source_store = source_store
        self.target_store = target_store
        self.require_image = require_image
        self.workers = workers
        self.max_image_side = max_image_side
        self._present = {info.key for info in target_store.list(IMAGE_STORE_PREFIX)}

    def _check_one(self, candidate: _Candidate) -> Rejection | None:
        record = candidate.record

        def reject(reason: Reason, detail: str) -> Rejection:
            return Rejection(record.source, record.location, reason, detail, candidate.row.productid, _raw(record))

        if record.image_key is None:
            return reject(Reason.MISSING_IMAGE, "no image reference") if self.require_image else None
        try:
            data = self.source_store.get_bytes(record.image_key)
        except ObjectNotFoundError:
            if self.require_image:
                return reject(Reason.MISSING_IMAGE, f"image {self.source_store.uri(record.image_key)} does not exist")
            return None
        except InvalidObjectKeyError as exc:  # a reference that points outside the store ('..'): the row's fault
            return reject(Reason.INVALID_IMAGE_KEY, str(exc))
        except UnreadableObjectError as exc:  # a folder or a link loop where the photo should be
            return reject(Reason.UNREADABLE_IMAGE, str(exc))
        # Any other ObjectStoreError is the store itself failing (S3 down): it ends the run, quarantines nothing.
        problem = inspect_image(data, max_side=self.max_image_side)
        if problem:
            return reject(problem.reason, f"{self.source_store.uri(record.image_key)}: {problem.detail}")
        digest = sha256_hex(data)
        key = content_image_key(digest)
        if key not in self._present:
            self._present.add(key)  # before the write: identical images in one batch are written once
            self.target_store.put_bytes(key, data)
        candidate.image_key, candidate.image_sha256 = key, digest
        return None

    def check(self, candidates: list[_Candidate]) -> tuple[list[_Candidate], list[Rejection]]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            outcomes = list(pool.map(self._check_one, candidates))
        kept = [c for c, rej in zip(candidates, outcomes, strict=True) if rej is None]
        return kept, [rej for rej in outcomes if rej is not None]


def _raw(record: RawRecord) -> dict[str, Any]:
    return raw_fields(record.fields)


def resolve_duplicates(candidates: list[_Candidate]) -> tuple[list[_Candidate], list[Rejection]]:
    """Keep the last candidate per productid (candidates arrive oldest first)."""
    winners: dict[int, _Candidate] = {}
    losers: list[Rejection] = []
    for candidate in candidates:
        previous = winners.get(candidate.row.productid)
        if previous is not None:
            losers.append(
                Rejection(
                    previous.record.source,
                    previous.record.location,
                    Reason.DUPLICATE_SUPERSEDED,
                    f"productid {candidate.row.productid} superseded by {candidate.record.location}",
                    candidate.row.productid,
                    _raw(previous.record),
                )
            )
        winners[candidate.row.productid] = candidate
    return list(winners.values()), losers


def _products_frame(candidates: list[_Candidate]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "productid": c.row.productid,
                "imageid": c.row.imageid,
                "designation": c.row.designation,
                "description": c.row.description,
                "prdtypecode": c.row.prdtypecode,
                "image_key": c.image_key,
                "image_sha256": c.image_sha256,
                "source": c.record.source,
                "location": c.record.location,
            }
            for c in candidates
        ],
        columns=["productid", "imageid", "designation", "description", "prdtypecode", "image_key", "image_sha256", "source", "location"],
    ).astype({"productid": "int64", "imageid": "int64", "prdtypecode": "int64"})


def ingest_batches(
    batches: list[SourceBatch],
    *,
    source_store: ObjectStore,
    target_store: ObjectStore,
    engine: Engine,
    policy: IngestSettings,
    ingest_run_id: str | None = None,
    started_at: datetime | None = None,
) -> IngestResult:
    """Validate, deduplicate and snapshot what the sources yielded (oldest source first)."""
    rejections: list[Rejection] = []
    candidates: list[_Candidate] = []
    n_input = 0
    versions: dict[str, str] = {}
    for batch in batches:
        n_input += batch.n_input
        versions.update(batch.versions)
        rejections.extend(batch.rejections)
        for record in batch.records:
            outcome = validate_fields(record)
            if isinstance(outcome, Rejection):
                rejections.append(outcome)
            else:
                candidates.append(_Candidate(record, outcome))
    checker = ImageChecker(
        source_store, target_store, require_image=policy.image_policy == "require", max_image_side=policy.max_image_side
    )
    candidates, image_rejections = checker.check(candidates)
    rejections.extend(image_rejections)
    candidates, superseded = resolve_duplicates(candidates)
    rejections.extend(superseded)
    products = _products_frame(candidates)
    if len(products) + len(rejections) != n_input:
        raise RakutenError(
            f"ingestion lost rows: {n_input} in, {len(products)} accepted + {len(rejections)} quarantined; this is a bug"
        )
    manifest, created, run = write_snapshot(
        target_store, engine, products, rejections, n_input=n_input, sources=versions, ingest_run_id=ingest_run_id,
        started_at=started_at,
    )
    return IngestResult(manifest, created, run)


def ingest(
    *,
    source_store: ObjectStore,
    source_prefix: str,
    target_store: ObjectStore,
    engine: Engine,
    policy: IngestSettings,
    labelled_engine: Engine | None = None,
    ingest_run_id: str | None = None,
) -> IngestResult:
    """Ingest the catalogue files at ``source_prefix`` and, with ``labelled_engine``, the labelled-products table
    (``policy`` names the files, the table and what a row must satisfy).

    ``ingest_run_id`` names the run's record (an Airflow run id makes a task retry replace its own
    record); without one a new id is made.
    """
    started_at = datetime.now(UTC)
    files = CatalogueFilesSource(
        source_store, source_prefix, x_file=policy.x_file, y_file=policy.y_file, image_folder=policy.image_folder,
        max_encoding_error_share=policy.max_encoding_error_share,
    )
    batches = [files.read()]
    if labelled_engine is not None and policy.labelled_products_table:
        table_source = PostgresLabelledSource(
            labelled_engine, policy.labelled_products_table, image_prefix=source_prefix, image_folder=policy.image_folder
        )
        batches.append(table_source.read())
    result = ingest_batches(
        batches, source_store=source_store, target_store=target_store, engine=engine, policy=policy,
        ingest_run_id=ingest_run_id, started_at=started_at,
    )
    log.info("ingest done: %s", result.summary())
    return result
