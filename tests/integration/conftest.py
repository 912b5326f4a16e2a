"""Fixtures of the integration tests (the services themselves are started by ``tests/conftest.py``)."""

from __future__ import annotations

import pytest

from rakuten_ml.settings import Settings
from tests.support.promotion import promotion_settings


@pytest.fixture
def psettings(tmp_path, mlflow_server, pg_url) -> Settings:
    """Production wiring for the promotion tests: the MLflow server, PostgreSQL, a model name of the test's own."""
    return promotion_settings(tmp_path, mlflow_server, pg_url)
