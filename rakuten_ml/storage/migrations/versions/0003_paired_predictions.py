"""Paired predictions (champion and challenger on the same product) and per-partition expected
confusion sums (the label-free performance estimate). Both tables are new: nothing to migrate.

Revision ID: 0003_paired_predictions
Revises: 0002_ingest_runs
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_paired_predictions"
down_revision = "0002_ingest_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "paired_predictions",
        sa.Column("source_id", sa.String(length=250), nullable=False),
        sa.Column("productid", sa.BigInteger(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("model_name", sa.String(length=250), nullable=False),
        sa.Column("champion_version", sa.String(length=32), nullable=False),
        sa.Column("challenger_version", sa.String(length=32), nullable=False),
        sa.Column("champion_code", sa.Integer(), nullable=False),
        sa.Column("challenger_code", sa.Integer(), nullable=False),
        sa.Column("champion_confidence", sa.Float(), nullable=False),
        sa.Column("challenger_confidence", sa.Float(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "productid"),
    )
    op.create_index(op.f("ix_paired_predictions_scored_at"), "paired_predictions", ["scored_at"], unique=False)
    op.create_table(
        "confusion_sums",
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("partition_id", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("model_name", sa.String(length=250), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("sums", sa.JSON(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "partition_id", "model_version"),
    )
    op.create_index(op.f("ix_confusion_sums_scored_at"), "confusion_sums", ["scored_at"], unique=False)


def downgrade() -> None:
    """Drops both tables: shadow pairs and estimate sums are derived data, rebuilt by the next scoring run."""
    op.drop_index(op.f("ix_confusion_sums_scored_at"), table_name="confusion_sums")
    op.drop_table("confusion_sums")
    op.drop_index(op.f("ix_paired_predictions_scored_at"), table_name="paired_predictions")
    op.drop_table("paired_predictions")
