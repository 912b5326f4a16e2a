"""Helpers of the serving tests (no tests here): a registry with two real trained versions,
per-test copies of it, alias moves, images, and a real uvicorn process on a free port."""

from __future__ import annotations

import base64
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow import MlflowClient

from rakuten_ml.settings import Settings
from rakuten_ml.training.train import train_and_register
from tests.support.catalogues import jpeg_bytes
from tests.support.paths import REPO_ROOT
from tests.support.platforms import build_platform
from tests.support.services import free_port, wait_until_ready

ADMIN_TOKEN = "test-admin-token-\u00e9"  # non-ASCII on purpose: the comparison works on bytes
CATALOGUE_ROWS = 600
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}".encode()}
POOL = {"designation": "Piscine tubulaire ronde 3m bleue", "description": "<p>Piscine hors sol, pompe incluse</p>"}


@functools.cache
def _trained_registry(root: str) -> Path:
    """Train and register v1 once per test session, and register its artifact again as v2.

    Two versions are what swaps and A/B routing need; a second training would only cost time.
    """
    home = Path(root) / "serving-registry"
    settings = Settings(home=home)
    platform, snapshot_id = build_platform(settings, rows=CATALOGUE_ROWS)
    result = train_and_register(platform, snapshot_id=snapshot_id, reason="serving tests")
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    first = client.get_model_version(result.model_name, result.model_version)
    second = client.create_model_version(result.model_name, first.source, run_id=first.run_id)
    assert (str(first.version), str(second.version)) == ("1", "2")
    return home


def registry_settings(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, **overrides: object) -> Settings:
    """Settings on a private copy of the session registry: aliases moved by one test stay in it.

    Only the MLflow database is copied; its artifact URIs still point at the session's
    artifacts, which the tests only read.
    """
    home = _trained_registry(str(tmp_path_factory.getbasetemp()))
    db = tmp_path / "mlflow.db"
    shutil.copyfile(home / "mlflow.db", db)
    values: dict[str, object] = {"home": tmp_path / "home", "mlflow_tracking_uri": f"sqlite:///{db}"} | overrides
    return Settings(**values)  # type: ignore[arg-type]


def set_alias(settings: Settings, alias: str, version: str | None) -> None:
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    if version is None:
        client.delete_registered_model_alias(settings.registered_model_name, alias)
    else:
        client.set_registered_model_alias(settings.registered_model_name, alias, version)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def product_image() -> bytes:
    return jpeg_bytes((30, 120, 200), size=96)


def settings_env(settings: Settings, *names: str) -> dict[str, str]:
    """``RAKUTEN_*`` variables that reproduce ``settings`` fields in a child process."""
    return settings.environment("home", "database_url", "object_store_url", "mlflow_tracking_uri", *names)


@contextmanager
def uvicorn_server(env: dict[str, str], log_path: Path, *, extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """``uvicorn serving.app:app`` in a child process on a free loopback port; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "serving.app:app", "--host", "127.0.0.1", "--port", str(port),
               "--no-access-log", *extra_args]
    with server_process(command, port, env, log_path) as url:
        yield url


@contextmanager
def server_process(command: list[str], port: int, env: dict[str, str], log_path: Path, *, ready_timeout_s: float = 120.0) -> Iterator[str]:
    """Run ``command`` (a server on ``port``) with only ``env`` as RAKUTEN_* settings, until /readyz says 200."""
    with running_server(command, port, env, log_path, ready_timeout_s=ready_timeout_s) as (url, _process):
        yield url


@contextmanager
def running_server(
    command: list[str], port: int, env: dict[str, str], log_path: Path, *, ready_timeout_s: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """:func:`server_process` that also yields the process (the soak reads its memory)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "PROMETHEUS_"))} | env
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, env=child_env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{url}/readyz", log_path, timeout_s=ready_timeout_s)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def assert_error(response, status: int, code: str, *, contains: str = "") -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["request_id"] == response.headers["X-Request-ID"]
    assert contains in body["message"], body
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


def metric_value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                return float(value)
    return 0.0
