"""Baseline: the eleven tables as the platform created them with metadata.create_all, before migrations.

A database made by that version (no alembic_version table) is stamped at this revision, then upgraded.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dataset_snapshots',
    sa.Column('snapshot_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('n_input', sa.Integer(), nullable=False),
    sa.Column('n_accepted', sa.Integer(), nullable=False),
    sa.Column('n_quarantined', sa.Integer(), nullable=False),
    sa.Column('store_url', sa.Text(), nullable=False),
    sa.Column('manifest_key', sa.Text(), nullable=False),
    sa.Column('manifest', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('snapshot_id')
    )
    op.create_table('drift_checks',
    sa.Column('check_date', sa.Date(), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('feature', sa.String(length=128), nullable=False),
    sa.Column('statistic', sa.Float(), nullable=True),
    sa.Column('p_value', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('check_date', 'model_version', 'metric', 'feature')
    )
    op.create_table('feedback',
    sa.Column('productid', sa.BigInteger(), nullable=False),
    sa.Column('prdtypecode', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=64), server_default='human', nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('productid')
    )
    op.create_table('image_scores',
    sa.Column('model_name', sa.String(length=250), nullable=False),
    sa.Column('model_version', sa.String(length=50), nullable=False),
    sa.Column('precision', sa.String(length=32), nullable=False),
    sa.Column('image_sha256', sa.String(length=64), nullable=False),
    sa.Column('proba', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('model_name', 'model_version', 'precision', 'image_sha256')
    )
    op.create_table('prediction_log',
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('productid', sa.BigInteger(), nullable=True),
    sa.Column('model_name', sa.String(length=250), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('variant', sa.String(length=32), nullable=False),
    sa.Column('prdtypecode', sa.Integer(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('request_id', 'position')
    )
    op.create_table('predictions',
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('productid', sa.BigInteger(), nullable=False),
    sa.Column('model_name', sa.String(length=250), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('variant', sa.String(length=32), nullable=False),
    sa.Column('prdtypecode', sa.Integer(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=False),
    sa.Column('scored_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'productid')
    )
    op.create_table('promotion_events',
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('model_name', sa.String(length=250), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_version', sa.String(length=32), nullable=True),
    sa.Column('to_version', sa.String(length=32), nullable=True),
    sa.Column('actor', sa.String(length=250), nullable=False),
    sa.Column('dag_run_id', sa.String(length=250), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_index(op.f('ix_promotion_events_model_name'), 'promotion_events', ['model_name'], unique=False)
    op.create_table('promotion_lock',
    sa.Column('model_name', sa.String(length=250), nullable=False),
    sa.Column('holder', sa.String(length=250), nullable=True),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('model_name')
    )
    op.create_table('quarantined_rows',
    sa.Column('snapshot_id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=512), nullable=False),
    sa.Column('location', sa.String(length=512), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('productid', sa.BigInteger(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('snapshot_id', 'source', 'location', 'reason')
    )
    op.create_table('retrain_requests',
    sa.Column('dag_run_id', sa.String(length=250), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('alert_ids', sa.JSON(), nullable=False),
    sa.Column('alerts', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('force', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('snapshot_id', sa.String(length=64), nullable=True),
    sa.Column('model_version', sa.String(length=32), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('dag_run_id')
    )
    op.create_table('scoring_partitions',
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('partition_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('n_scored', sa.Integer(), server_default='0', nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'partition_id')
    )
    op.create_table('scoring_runs',
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('snapshot_id', sa.String(length=64), nullable=False),
    sa.Column('models', sa.JSON(), nullable=False),
    sa.Column('n_partitions', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('run_id')
    )


def downgrade() -> None:
    for table in (
        "scoring_runs", "scoring_partitions", "retrain_requests", "quarantined_rows", "promotion_lock", "promotion_events",
        "predictions", "prediction_log", "image_scores", "feedback", "drift_checks", "dataset_snapshots",
    ):
        op.drop_table(table)
