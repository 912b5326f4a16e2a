"""Training, registration and scoring on the production wiring: an MLflow server (PostgreSQL + S3
artifacts), a PostgreSQL platform database and an S3 object store."""

from __future__ import annotations

import pytest

from rakuten_ml.settings import Settings
from tests.support.platforms import build_platform, check_training_round_trip


@pytest.mark.slow
def test_train_register_score_against_mlflow_server(tmp_path, mlflow_server, pg_url, s3_endpoint, s3_bucket):
    """Production wiring: MLflow server (PostgreSQL + S3 artifacts), PostgreSQL platform DB, S3 store."""
    settings = Settings(
        home=tmp_path, mlflow_tracking_uri=mlflow_server, database_url=pg_url,
        object_store_url=f"s3://{s3_bucket}/platform", s3_endpoint_url=s3_endpoint,
        registered_model_name=f"clf-{tmp_path.name[-8:]}",
    )
    platform, snapshot_id = build_platform(settings)
    check_training_round_trip(platform, snapshot_id)
