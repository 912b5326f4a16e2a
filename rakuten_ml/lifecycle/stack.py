"""The services of one life-cycle run, started as production starts them and stopped in reverse order.

Airflow runs its four components (api-server, scheduler, dag-processor, triggerer) with the LocalExecutor
on a SQLite metadata database: Airflow 3 allows it for one machine, and its components never write to it
at once often enough to lock it here. MLflow runs as a tracking server (its UI is the registry users
promote from); the serving API is ``rakuten-ml serve``. Every process gets its own session, so stopping
one stops its workers too; logs go to ``<home>/logs``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from rakuten_ml.errors import RakutenError
from rakuten_ml.lifecycle.polling import poll_until

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STOP_TIMEOUT_S = 20.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ServiceStartError(RakutenError):
    """A service did not become ready; the message names its log."""


@dataclass(frozen=True)
class Ports:
    airflow: int = 8080
    mlflow: int = 5000
    serving: int = 8000


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    env: Mapping[str, str]
    log_path: Path
    process: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(self.argv, env=dict(self.env), stdout=out, stderr=subprocess.STDOUT,
                                            cwd=REPO_ROOT, start_new_session=True, preexec_fn=_die_with_parent)
        log.info("started %s (pid %d, log %s)", self.name, self.process.pid, self.log_path)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group at once: a machine lost, not a shutdown (no task is finished)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL after a grace period."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop on %s", self.name, sig.name)
        # the group may hold children (LocalExecutor workers, uvicorn workers) after its leader exited
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _die_with_parent() -> None:
    """Linux: the service gets SIGTERM when the process that started it dies, even by SIGKILL (no orphans)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_ready(service: ManagedProcess, url: str, *, timeout_s: float, ok: tuple[int, ...] = (200,)) -> None:
    """Poll ``url`` until it answers; a process that exits or a timeout raises with the log's tail."""

    def answering() -> bool | None:
        if not service.running():
            raise ServiceStartError(f"{service.name} exited; see {service.log_path}:\n{service.log_tail()}")
        try:
            return True if httpx.get(url, timeout=2.0).status_code in ok else None
        except httpx.HTTPError:
            return None

    poll_until(answering, timeout_s=timeout_s, interval_s=0.5, timeout_error=lambda: ServiceStartError(
        f"{service.name} not ready at {url} after {timeout_s:.0f} s; see {service.log_path}:\n{service.log_tail()}"
    ))


def celery_env(metadata_url: str, broker_url: str, *, result_backend: str | None = None) -> dict[str, str]:
    """What turns :func:`airflow_env`'s Airflow into production's: PostgreSQL metadata and the CeleryExecutor with
    a Redis broker; GPU work goes to the ``gpu`` queue (a worker started with ``-q gpu`` takes it)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend or "db+" + metadata_url.replace("+psycopg2", ""),
        "RAKUTEN_AIRFLOW_GPU_QUEUE": "gpu",
    }


def airflow_env(home: Path, port: int, base: Mapping[str, str]) -> dict[str, str]:
    """One machine's Airflow: SQLite metadata, LocalExecutor, this repository's dags/ and plugins/.

    The simple auth manager makes every visitor admin: the demo's UI is on loopback only and opens
    without a password. Parallelism 3 keeps two cores responsive while mapped scoring tasks run.
    """
    airflow_home = home / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    api = f"http://127.0.0.1:{port}"
    return dict(base) | {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "3",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__BASE_URL": api,
        "RAKUTEN_AIRFLOW_BASE_URL": api,  # each registered version links back to its DAG run here
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        # DAG files do not change during a run: parse them once a minute, not every 30 s
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "RAKUTEN_AIRFLOW_GPU_QUEUE": "default",  # LocalExecutor has no queues: the gpu queue is a Celery matter
    }


class Stack:
    """Airflow + MLflow (+ serving, started later by the scenario); a context manager that stops all of it."""

    def __init__(self, home: Path, ports: Ports, env: Mapping[str, str], *, overrides: Mapping[str, str] | None = None) -> None:
        """``overrides`` replace the one-machine defaults, e.g. :func:`celery_env` for production's executor."""
        self.home = home
        self.ports = ports
        self.logs = home / "logs"
        self.env = airflow_env(home, ports.airflow, env) | dict(overrides or {})
        self.services: list[ManagedProcess] = []

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.airflow}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.mlflow}"

    @property
    def serving_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.serving}"

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> ManagedProcess:
        service = ManagedProcess(name, argv, {**self.env, **(env or {})}, self.logs / f"{name}.log")
        service.start()
        self.services.append(service)
        return service

    def start_mlflow(self) -> None:
        store = self.home / "mlflow"
        store.mkdir(parents=True, exist_ok=True)
        service = self._spawn("mlflow", [
            str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination", str(store / "artifacts"), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(self.ports.mlflow), "--workers", "1",
        ])
        wait_ready(service, f"{self.mlflow_url}/health", timeout_s=120)

    def start_airflow(self) -> None:
        airflow = str(VENV_BIN / "airflow")
        migrate = subprocess.run([airflow, "db", "migrate"], env=self.env, capture_output=True, text=True, cwd=REPO_ROOT)
        if migrate.returncode:
            raise ServiceStartError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}\n{migrate.stderr[-2000:]}")
        api = self._spawn("airflow-api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.ports.airflow)])
        for component in ("scheduler", "dag-processor", "triggerer"):
            self._spawn(f"airflow-{component}", [airflow, component])
        wait_ready(api, f"{self.airflow_url}/api/v2/monitor/health", timeout_s=180)

    def start_celery_worker(self, name: str, queue: str, *, log_server_port: int, env: Mapping[str, str] | None = None) -> ManagedProcess:
        """A Celery worker taking tasks of ``queue``, one at a time. Several workers on one machine each serve
        their task logs on a port of their own (``log_server_port``)."""
        return self._spawn(name, [
            str(VENV_BIN / "airflow"), "celery", "worker", "--queues", queue, "--concurrency", "1", "--celery-hostname", f"{name}@%h",
        ], env={"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_server_port), **(env or {})})

    def start_serving(self) -> None:
        service = self._spawn("serving", [str(VENV_BIN / "rakuten-ml"), "serve", "--host", "127.0.0.1", "--port", str(self.ports.serving), "--workers", "1"])
        wait_ready(service, f"{self.serving_url}/readyz", timeout_s=300)

    def check_alive(self) -> None:
        """Raise when a service died mid-run (its log says why)."""
        for service in self.services:
            if not service.running():
                raise ServiceStartError(f"{service.name} stopped unexpectedly; see {service.log_path}:\n{service.log_tail()}")

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
