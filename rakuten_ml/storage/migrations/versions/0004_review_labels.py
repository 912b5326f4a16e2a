"""The human review queue's labels (one row per product and reviewer) and skips. Both tables are new:
nothing to migrate.

Revision ID: 0004_review_labels
Revises: 0003_paired_predictions
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_review_labels"
down_revision = "0003_paired_predictions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_labels",
        sa.Column("productid", sa.BigInteger(), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("prdtypecode", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("predicted_code", sa.Integer(), nullable=True),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("productid", "reviewer"),
    )
    op.create_index(op.f("ix_review_labels_labelled_at"), "review_labels", ["labelled_at"], unique=False)
    op.create_table(
        "review_skips",
        sa.Column("productid", sa.BigInteger(), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("skipped_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("productid", "reviewer"),
    )


def downgrade() -> None:
    """Drops both tables, and with them every reviewer's label: feedback and the labelled-products table keep the
    latest label of each product."""
    op.drop_table("review_skips")
    op.drop_index(op.f("ix_review_labels_labelled_at"), table_name="review_labels")
    op.drop_table("review_labels")
