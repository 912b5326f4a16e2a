"""Services the fault suite can break on purpose: a throwaway PostgreSQL cluster it starts and
stops on its own port, and a loopback TCP proxy that cuts a service off without losing its state.

The shared PostgreSQL on 5432 is never stopped: other tests (and other sessions) use it. An S3
test server (moto) keeps its objects in memory, so killing it would lose them; cutting the proxy in
front of it gives clients the same refused connections while the data survives the outage.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.services import free_port

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for folder in PG_BIN_CANDIDATES:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(f"{name} not found: install PostgreSQL's server binaries (Debian package postgresql)")


class ThrowawayPostgres:
    """A PostgreSQL cluster of the suite's own in a temporary folder, on a free loopback port.

    PostgreSQL refuses to run as root: when the suite runs as root (CI), the cluster belongs to
    the ``postgres`` system user and its commands run through ``runuser``.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="rakuten-faults-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres", group="postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as_user, *command], capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> None:
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    @property
    def running(self) -> bool:
        return self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "status", check=False).returncode == 0

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        result = self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log_path), "-w", "-t", "60", "start",
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"throwaway PostgreSQL did not start: {result.stderr}\n{self.log_tail()}")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; ``immediate`` is a crash (no clean shutdown), as an outage is."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The server is down inside the block and back up after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class FaultProxy:
    """A loopback TCP proxy to ``target``; :meth:`cut` closes every connection and refuses new ones.

    Clients see exactly what a dead server gives them (connection refused or reset) while the
    server behind keeps its state, so the rerun after :meth:`restore` finds the data intact.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.2):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            for sock in (client, upstream):
                with self._lock:
                    self._connections.discard(sock)
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        """Drop every open connection and stop listening: the service is gone."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._connections = set(self._connections), set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        time.sleep(0.1)

    def restore(self) -> None:
        self.start()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        self.cut()
        try:
            yield
        finally:
            self.restore()
