"""Ingest runs: one record per run, and quarantined rows keyed by the run that refused them.

Before, quarantined rows were keyed by snapshot, so two runs landing on one snapshot mixed their
rows. Existing rows are kept: each snapshot becomes one ``legacy-<snapshot id>`` run (its manifest's
counts) that owns the quarantine rows stored under it.

Revision ID: 0002_ingest_runs
Revises: 0001_baseline
Create Date: 2026-12-02
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002_ingest_runs"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

LEGACY_PREFIX = "legacy-"


def upgrade() -> None:
    ingest_runs = op.create_table(
        "ingest_runs",
        sa.Column("ingest_run_id", sa.String(length=250), nullable=False),
        sa.Column("snapshot_id", sa.String(length=64), nullable=False),
        sa.Column("created_snapshot", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_input", sa.Integer(), nullable=False),
        sa.Column("n_accepted", sa.Integer(), nullable=False),
        sa.Column("n_quarantined", sa.Integer(), nullable=False),
        sa.Column("quarantine_reasons", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("quarantine_key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("ingest_run_id"),
    )
    op.create_index(op.f("ix_ingest_runs_snapshot_id"), "ingest_runs", ["snapshot_id"], unique=False)
    bind = op.get_bind()
    snapshots = sa.table(
        "dataset_snapshots", sa.column("snapshot_id"), sa.column("created_at"), sa.column("last_seen_at"),
        sa.column("n_input"), sa.column("n_accepted"), sa.column("n_quarantined"), sa.column("manifest", sa.JSON()),
    )
    legacy_runs = [
        {
            "ingest_run_id": f"{LEGACY_PREFIX}{row.snapshot_id}",
            "snapshot_id": row.snapshot_id,
            "created_snapshot": True,
            "started_at": _aware(row.created_at),
            "finished_at": _aware(row.last_seen_at),
            "n_input": row.n_input,
            "n_accepted": row.n_accepted,
            "n_quarantined": row.n_quarantined,
            "quarantine_reasons": (row.manifest or {}).get("quarantine_reasons", {}),
            "sources": (row.manifest or {}).get("sources", {}),
            "quarantine_key": (row.manifest or {}).get("quarantine_key", f"snapshots/{row.snapshot_id}/quarantine.parquet"),
        }
        for row in bind.execute(sa.select(snapshots))
    ]
    if legacy_runs:
        op.bulk_insert(ingest_runs, legacy_runs)

    op.create_table(
        "quarantined_rows_v2",
        sa.Column("ingest_run_id", sa.String(length=250), nullable=False),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("location", sa.String(length=512), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("snapshot_id", sa.String(length=64), nullable=False),
        sa.Column("productid", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("ingest_run_id", "source", "location", "reason", name="quarantined_rows_v2_pkey"),
    )
    columns = "source, location, reason, snapshot_id, productid, detail, raw"
    op.execute(
        f"INSERT INTO quarantined_rows_v2 (ingest_run_id, {columns}) "  # noqa: S608 - constant identifiers only
        f"SELECT '{LEGACY_PREFIX}' || snapshot_id, {columns} FROM quarantined_rows"
    )
    op.drop_table("quarantined_rows")
    op.rename_table("quarantined_rows_v2", "quarantined_rows")
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE quarantined_rows RENAME CONSTRAINT quarantined_rows_v2_pkey TO quarantined_rows_pkey")
    op.create_index(op.f("ix_quarantined_rows_snapshot_id"), "quarantined_rows", ["snapshot_id"], unique=False)


def downgrade() -> None:
    """Back to rows keyed by snapshot: where several runs refused the same row, the earliest run's entry stays."""
    op.create_table(
        "quarantined_rows_v1",
        sa.Column("snapshot_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("location", sa.String(length=512), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("productid", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id", "source", "location", "reason", name="quarantined_rows_v1_pkey"),
    )
    columns = "snapshot_id, source, location, reason, productid, detail, raw"
    op.execute(
        f"INSERT INTO quarantined_rows_v1 ({columns}) SELECT {columns} FROM quarantined_rows q "  # noqa: S608 - constants
        "WHERE q.ingest_run_id = (SELECT MIN(o.ingest_run_id) FROM quarantined_rows o WHERE o.snapshot_id = q.snapshot_id "
        "AND o.source = q.source AND o.location = q.location AND o.reason = q.reason)"
    )
    op.drop_index(op.f("ix_quarantined_rows_snapshot_id"), table_name="quarantined_rows")
    op.drop_table("quarantined_rows")
    op.rename_table("quarantined_rows_v1", "quarantined_rows")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE quarantined_rows RENAME CONSTRAINT quarantined_rows_v1_pkey TO quarantined_rows_pkey")
    op.drop_index(op.f("ix_ingest_runs_snapshot_id"), table_name="ingest_runs")
    op.drop_table("ingest_runs")


def _aware(value: datetime | str) -> datetime:
    """SQLite hands timestamps back naive, or as text through a bare table; the platform writes them in UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
