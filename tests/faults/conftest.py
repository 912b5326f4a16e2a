"""Fixtures of the fault suite: services it may break without disturbing any other test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from tests.faults.services import FaultProxy, ThrowawayPostgres
from tests.support.paths import REPO_ROOT


@pytest.fixture(scope="session")
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster of the suite's own: tests stop and restart it to cause outages."""
    server = ThrowawayPostgres()
    try:
        server.init()
        server.start()
    except (FileNotFoundError, RuntimeError) as exc:
        server.destroy()
        pytest.fail(f"cannot start a throwaway PostgreSQL for the fault suite: {exc}")
    yield server
    server.destroy()


@pytest.fixture
def outage_db_url(throwaway_postgres: ThrowawayPostgres) -> Iterator[str]:
    """A fresh database on the throwaway cluster, which is running when the test starts and ends."""
    if not throwaway_postgres.running:
        throwaway_postgres.start()
    yield throwaway_postgres.create_database(f"faults_{uuid.uuid4().hex[:10]}")
    if not throwaway_postgres.running:
        throwaway_postgres.start()


@pytest.fixture
def s3_proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    """The S3 test server behind a proxy that a test can cut to simulate an S3 outage."""
    host, _, port = s3_endpoint.removeprefix("http://").partition(":")
    proxy = FaultProxy(host, int(port))
    proxy.start()
    yield proxy
    proxy.cut()


# --- fixtures of the command-level fault tests (test_service_outages, test_killed_and_concurrent) ---

# A snapshot of this many products scored in partitions of PARTITION_SIZE: three partitions of ~533, each above
# the COPY threshold of storage.database (the production write path), trained on once per session.
SCORING_ROWS = 1600
PARTITION_SIZE = 540


@dataclass
class ScoringSetup:
    """A trained text model (embedded MLflow under ``home``) and a snapshot, on the throwaway PostgreSQL."""

    platform: Platform
    snapshot_id: str
    productids: list[int]
    server: ThrowawayPostgres

    @property
    def settings(self) -> Settings:
        return self.platform.settings

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a ``rakuten-ml`` subprocess that works on this setup."""
        return subprocess_env(self.settings, **extra)


def subprocess_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Only what the platform's settings say, none of this process's MLflow globals (set_tracking_uri exports them)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"))}
    return inherited | {
        "RAKUTEN_HOME": str(settings.home),
        "RAKUTEN_DATABASE_URL": settings.database_url,
        "RAKUTEN_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "RAKUTEN_REGISTERED_MODEL_NAME": settings.registered_model_name,
        "PYTHONPATH": str(REPO_ROOT),
    } | extra


def python_process(code: str, *args: str, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``python -c code args...`` in the repository, its output in ``log_path`` (read it on failure)."""
    log_file = open(log_path, "w")  # noqa: SIM115 - closed by the caller's finish()
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="session")
def _scoring_setup(throwaway_postgres: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> ScoringSetup:
    from rakuten_ml.data.snapshot import load_products
    from rakuten_ml.training.train import train_and_register
    from tests.support.platforms import build_platform

    if not throwaway_postgres.running:
        throwaway_postgres.start()
    url = throwaway_postgres.create_database(f"faults_scoring_{uuid.uuid4().hex[:8]}")
    settings = Settings(home=tmp_path_factory.mktemp("faults-scoring"), database_url=url)
    platform, snapshot_id = build_platform(settings, rows=SCORING_ROWS)
    train_and_register(platform, snapshot_id=snapshot_id)
    productids = sorted(int(p) for p in load_products(platform.store, snapshot_id)["productid"])
    return ScoringSetup(platform, snapshot_id, productids, throwaway_postgres)


@pytest.fixture
def scoring_setup(_scoring_setup: ScoringSetup) -> Iterator[ScoringSetup]:
    """The session's scoring setup, its PostgreSQL running when the test starts and ends (each test uses its own run ids)."""
    from rakuten_ml.scoring import batch

    if not _scoring_setup.server.running:
        _scoring_setup.server.start()
    batch._SNAPSHOT_CACHE.clear()
    yield _scoring_setup
    batch._SNAPSHOT_CACHE.clear()
    if not _scoring_setup.server.running:
        _scoring_setup.server.start()


@pytest.fixture
def mlflow_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    """mlflow.set_tracking_uri (configure_mlflow, load_classifier) is process-wide and exported to the environment:
    a test that points it at a proxy puts it back afterwards, so no later test talks to a proxy that is gone."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mlflow_proxy(mlflow_server: str, mlflow_globals: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The session's MLflow server behind a proxy a test can cut: the server and its state survive the outage.

    MLflow's client retries a refused connection for minutes by default: none here, so an outage
    surfaces at once, as it does with ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`` in production.
    """
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    host, _, port = mlflow_server.removeprefix("http://").partition(":")
    proxy = FaultProxy(host, int(port))
    proxy.start()
    yield proxy
    proxy.cut()


class MlflowProcess:
    """An MLflow tracking server of the fault suite's own that a test can kill (SIGKILL, the whole process group:
    ``mlflow server`` runs its web server as a child) and start again on the same port. Its backend store is a
    database on the shared PostgreSQL (never stopped) and its artifacts a local folder, so its state survives."""

    def __init__(self, backend_uri: str, root: Path) -> None:
        from tests.support.services import free_port

        self.backend_uri = backend_uri
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from tests.support.services import wait_until_ready

        self.starts += 1
        log_path = self.root / f"server-{self.starts}.log"
        command = [
            sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri,
            "--artifacts-destination", (self.root / "artifacts").as_uri(), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]
        with open(log_path, "wb") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_ready(self.process, f"{self.url}/health", log_path, timeout_s=120)
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture
def restartable_mlflow(tmp_path_factory: pytest.TempPathFactory, mlflow_globals: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowProcess]:
    from tests.support.services import admin_sql, dsn_part

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    db = f"mlflow_faults_{uuid.uuid4().hex[:10]}"
    admin_sql(f'CREATE DATABASE "{db}"')
    host, port, user = dsn_part("host", "127.0.0.1"), dsn_part("port", "5432"), dsn_part("user", "postgres")
    server = MlflowProcess(f"postgresql+psycopg2://{user}@{host}:{port}/{db}", tmp_path_factory.mktemp("mlflow-restartable"))
    server.start()
    yield server
    server.kill()
    admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
