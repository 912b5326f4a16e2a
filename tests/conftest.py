"""Real local services for the tests: a PostgreSQL database per run, an S3 server (moto, server
mode, on a free loopback port) and, for the slow tests, an MLflow tracking server process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from rakuten_ml.settings import Settings
from tests.support.paths import DAGS_FOLDER, REPO_ROOT
from tests.support.services import PG_ADMIN_DSN, admin_sql, dsn_part, free_port, wait_until_ready

# Airflow reads its configuration on first import: give the tests their own home and DAGs.
_AIRFLOW_HOME = Path(os.environ.get("RAKUTEN_TEST_AIRFLOW_HOME", "/tmp/rakuten-test-airflow")) / str(os.getpid())
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO_ROOT / "plugins")  # registers the platform's timetable
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

# Fake credentials for the S3 test server; set before boto3 or mlflow read them.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log drowns test output


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own RAKUTEN_* configuration."""
    for key in list(os.environ):
        if key.startswith("RAKUTEN_"):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def _torch_threads() -> Iterator[None]:
    """Batch scoring may give the networks fewer torch threads (scoring.device.decoding_workers): the
    process-wide setting is restored, so later tests run with every core."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    name = f"rakuten_test_{uuid.uuid4().hex[:10]}"
    try:
        admin_sql(f'CREATE DATABASE "{name}"')
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable with '{PG_ADMIN_DSN}': {exc}. Start it (see .ci/run).")
    host, port, user = dsn_part("host", "127.0.0.1"), dsn_part("port", "5432"), dsn_part("user", "postgres")
    yield f"postgresql+psycopg2://{user}@{host}:{port}/{name}"
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A clean schema state per test: every table of the run database is dropped afterwards."""
    yield pg_server_url
    import sqlalchemy as sa

    engine = sa.create_engine(pg_server_url)
    with engine.begin() as conn:
        tables = [r[0] for r in conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))]
        for table in tables:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, spoken to over real HTTP by boto3."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    import boto3

    name = f"rakuten-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults under a temporary home."""
    return Settings(home=tmp_path / "home")


@pytest.fixture(scope="session")
def mlflow_server(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server: PostgreSQL backend store, S3 (moto) artifact store."""
    import boto3

    db = f"mlflow_test_{uuid.uuid4().hex[:10]}"
    admin_sql(f'CREATE DATABASE "{db}"')
    bucket = f"mlflow-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    port = free_port()
    host, pg_port, user = dsn_part("host", "127.0.0.1"), dsn_part("port", "5432"), dsn_part("user", "postgres")
    log_path = tmp_path_factory.mktemp("mlflow") / "server.log"
    env = os.environ | {"MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"postgresql+psycopg2://{user}@{host}:{pg_port}/{db}",
        "--artifacts-destination", f"s3://{bucket}/artifacts",
        "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{url}/health", log_path, timeout_s=120)
    except BaseException:
        process.kill()
        raise
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
