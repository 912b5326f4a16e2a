"""Serving soak: a real uvicorn process on loopback under mixed valid and hostile traffic, with a
model hot swap and a PostgreSQL outage in the middle.

Four client threads send, for ``RAKUTEN_SOAK_SECONDS`` (default 90) and at most ``MAX_REQUESTS``
requests, valid predictions, feedback, health/model/metrics reads and admin calls mixed with
hostile requests: malformed JSON, missing fields, huge texts, bad productids, bad base64 and
non-images, oversize images, wrong content types, unknown routes and methods, admin calls without
or with a wrong token, and raw-socket abuse (a declared 100 MB body, a garbage request line, a
client that hangs up mid-body). Meanwhile the test moves the champion alias from v1 to v2 (the
app's poller swaps it) and stops the serving database (the fault suite's throwaway cluster) for a
few seconds.

What serving promises, and is asserted:

* no 5xx except the documented ones: ``503 database_unavailable`` on ``/v1/feedback`` while the
  database is down (nothing else answers 5xx here: a model is loaded, the store is local);
* predictions keep being answered (200) while the database is down; their ``prediction_log`` rows
  are dropped and counted, not buffered (serving/prediction_logger.py), and logging resumes after;
* every invalid request gets its 4xx, never a 5xx, never a traceback;
* no response mixes model versions, and once one v2 answer has left the server no later request
  gets v1;
* the server's RSS at the end is within ``RSS_GROWTH_LIMIT`` of its RSS after the warm-up, and its
  open files grow by at most ``FD_GROWTH_LIMIT`` (a leaked socket per hostile client would show).

No latency figure is asserted: the machine may be shared. The figures of a run are written to
``var/faults/serving_soak.json`` (tests.faults.figures) for the docs.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from rakuten_ml.data.contract import MAX_IMAGE_BYTES
from rakuten_ml.labels import CLASS_CODES
from rakuten_ml.storage.database import count_rows, feedback, prediction_log
from tests.faults.figures import record_figures
from tests.faults.services import ThrowawayPostgres
from tests.support.catalogues import png_bytes
from tests.support.services import free_port
from tests.support.serving import ADMIN_TOKEN, AUTH, POOL, product_image, registry_settings, running_server, set_alias, settings_env

pytestmark = [pytest.mark.faults, pytest.mark.slow]

# Read at import: the suite's autouse fixture hides RAKUTEN_* variables from the tests themselves.
SOAK_SECONDS = max(30.0, float(os.environ.get("RAKUTEN_SOAK_SECONDS", "90")))
MAX_REQUESTS = int(500 * SOAK_SECONDS)  # a hard bound, whatever the machine's speed
CLIENTS = 4
VALID_SHARE = 0.6  # of each client's requests
RSS_GROWTH_LIMIT = 1.5
FD_GROWTH_LIMIT = 25  # open files: the database pool (5 + 10 overflow) and a few client connections may come and go
FEEDBACK_RECOVERY_S = 5.0  # after the database is back, feedback may still fail this long
OUTAGE_S = min(10.0, max(3.0, 0.12 * SOAK_SECONDS))
HEAVY_EVERY = 8  # the multi-megabyte hostile kinds run once every this many passes over the list

JSON = {"Content-Type": "application/json"}
WRONG_TOKEN = {"Authorization": "Bearer not-the-token"}


# ----------------------------------------------------------------------------- the server
@contextmanager
def uvicorn_process(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``uvicorn serving.app:app`` (one process) on a free loopback port: its URL and the process,
    whose RSS the soak reads."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "serving.app:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    with running_server(command, port, env, log_path, ready_timeout_s=180) as started:
        yield started


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no Threads in /proc/{pid}/status")


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of ``name`` in a Prometheus exposition, with its labels."""
    found = []
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        head, _, value = line.rpartition(" ")
        labels: dict[str, str] = {}
        if "{" in head:
            for part in head[head.index("{") + 1 : head.rindex("}")].split('",'):
                key, _, raw = part.partition("=")
                labels[key.strip(",")] = raw.strip('"')
        found.append((labels, float(value)))
    return found


def metric_sum(text: str, name: str, **labels: str) -> float:
    return sum(v for found, v in metric_samples(text, name) if all(found.get(k) == want for k, want in labels.items()))


# ----------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class Kind:
    """One kind of request: ``build(rng, n)`` gives httpx.request arguments (or, for ``raw``, bytes
    to write on a fresh socket); ``expect`` are the statuses it may get (None: no response)."""

    name: str
    route: str  # what the results are grouped by
    build: Callable[[random.Random, int], dict[str, Any] | bytes]
    expect: frozenset[int | None]
    valid: bool
    raw: bool = False
    heavy: bool = False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_IMAGE = _b64(product_image())
_PIXELS_TOO_MANY = _b64(png_bytes(4097, 16))
_BYTES_TOO_MANY = _b64(b"\xff\xd8" + b"\0" * MAX_IMAGE_BYTES)  # decodes, then fails the byte bound
_BASE64_TOO_LONG = "A" * (4 * (MAX_IMAGE_BYTES // 3) + 8192)  # refused before decoding
_DESIGNATIONS = (
    "Piscine tubulaire ronde 3m bleue", "Roman policier livre de poche", "Chaise de jardin pliante en teck",
    "Figurine Star Wars Dark Vador 30 cm", "Jeu de societe cartes famille", "Console portable retro 400 jeux",
    "Coussin decoratif velours 45x45", "Lot de 3 bodies bebe coton bio",
)


def _product(rng: random.Random, pid: int | None, image: bool = False) -> dict[str, Any]:
    product: dict[str, Any] = {"designation": rng.choice(_DESIGNATIONS) + f" ref {rng.randrange(10**6)}"}
    if pid is not None:
        product["productid"] = pid
    if rng.random() < 0.5:
        product["description"] = "<p>" + rng.choice(_DESIGNATIONS) + " livraison rapide</p>"
    if image:
        product["image_base64"] = _IMAGE
    return product


def _predict(products: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    return {"method": "POST", "url": "/v1/predict", "json": products if isinstance(products, dict) else {"products": products}}


def _post(url: str, content: bytes, content_type: str | None = "application/json", **headers: str) -> dict[str, Any]:
    merged = ({"Content-Type": content_type} if content_type else {}) | headers
    return {"method": "POST", "url": url, "content": content, "headers": merged}


def _bad_product(**fields: Any) -> Callable[[random.Random, int], dict[str, Any]]:
    return lambda rng, n: _predict({"designation": "Chaise de jardin"} | fields)


def _raw_http(request_line: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = request_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


OK = frozenset({200})
V422 = frozenset({422})
FEEDBACK_OK = frozenset({200, 503})  # 503 only while the database is down: checked on its own

VALID: list[tuple[float, Kind]] = [
    (5.0, Kind("predict one", "/v1/predict", lambda rng, n: _predict(_product(rng, n)), OK, True)),
    (3.0, Kind("predict batch", "/v1/predict",
               lambda rng, n: _predict([_product(rng, n)] + [_product(rng, None) for _ in range(rng.randint(1, 3))]), OK, True)),
    (1.0, Kind("predict image", "/v1/predict", lambda rng, n: _predict([_product(rng, n, image=True)]), OK, True)),
    (0.5, Kind("predict no id", "/v1/predict", lambda rng, n: _predict(POOL), OK, True)),
    (2.0, Kind("feedback", "/v1/feedback",
               lambda rng, n: {"method": "POST", "url": "/v1/feedback",
                               "json": {"productid": n, "prdtypecode": rng.choice(CLASS_CODES), "source": "soak"}},
               FEEDBACK_OK, True)),
    (0.6, Kind("readyz", "/readyz", lambda rng, n: {"method": "GET", "url": "/readyz"}, OK, True)),
    (0.4, Kind("healthz", "/healthz", lambda rng, n: {"method": "GET", "url": "/healthz"}, OK, True)),
    (0.5, Kind("model", "/v1/model", lambda rng, n: {"method": "GET", "url": "/v1/model"}, OK, True)),
    (0.2, Kind("metrics", "/metrics", lambda rng, n: {"method": "GET", "url": "/metrics"}, OK, True)),
    (0.1, Kind("admin reload", "/v1/admin/reload", lambda rng, n: {"method": "POST", "url": "/v1/admin/reload", "headers": AUTH}, OK, True)),
    (0.1, Kind("admin traffic", "/v1/admin/traffic",
               lambda rng, n: {"method": "POST", "url": "/v1/admin/traffic", "json": {"challenger_share": 0.0}, "headers": AUTH}, OK, True)),
    (0.1, Kind("drift reports", "/v1/reports/drift", lambda rng, n: {"method": "GET", "url": "/v1/reports/drift", "headers": AUTH}, OK, True)),
]

HOSTILE: list[Kind] = [
    # malformed JSON
    Kind("json: not json", "/v1/predict", lambda rng, n: _post("/v1/predict", b"{not json"), V422, False),
    Kind("json: truncated", "/v1/predict", lambda rng, n: _post("/v1/predict", b'{"products": [{"designation": "x"'), V422, False),
    Kind("json: bad utf-8", "/v1/predict", lambda rng, n: _post("/v1/predict", b'{"designation": "\xff\xfe\xfd"}'), frozenset({400, 422}), False),
    Kind("json: 100k deep", "/v1/predict", lambda rng, n: _post("/v1/predict", b"[" * 100_000), frozenset({400, 422}), False),
    Kind("json: empty body", "/v1/predict", lambda rng, n: _post("/v1/predict", b""), V422, False),
    Kind("json: null", "/v1/feedback", lambda rng, n: _post("/v1/feedback", b"null"), V422, False),
    Kind("json: a list", "/v1/predict", lambda rng, n: _post("/v1/predict", b"[1, 2, 3]"), V422, False),
    Kind("json: NaN id", "/v1/predict", lambda rng, n: _post("/v1/predict", b'{"designation": "x", "productid": NaN}'), V422, False),
    Kind("json: 5000-digit id", "/v1/predict",
         lambda rng, n: _post("/v1/predict", b'{"designation": "x", "productid": ' + b"9" * 5000 + b"}"), frozenset({400, 422}), False),
    # missing fields
    Kind("missing: empty product", "/v1/predict", lambda rng, n: _predict({}), V422, False),
    Kind("missing: no products", "/v1/predict", lambda rng, n: _predict({"products": []}), V422, False),
    Kind("missing: products null", "/v1/predict", lambda rng, n: _predict({"products": None}), V422, False),
    Kind("missing: feedback code", "/v1/feedback",
         lambda rng, n: {"method": "POST", "url": "/v1/feedback", "json": {"productid": n}}, V422, False),
    Kind("missing: feedback body", "/v1/feedback", lambda rng, n: {"method": "POST", "url": "/v1/feedback"}, V422, False),
    # bounds and types
    Kind("huge designation", "/v1/predict", _bad_product(designation="x" * 300_000), V422, False),
    Kind("huge description", "/v1/predict", _bad_product(description="y" * 40_000), V422, False),
    Kind("designation int", "/v1/predict", _bad_product(designation=12345), V422, False),
    Kind("extra field", "/v1/predict", _bad_product(colour="red"), V422, False),
    Kind("batch too large", "/v1/predict", lambda rng, n: _predict([POOL] * 65), V422, False),
    Kind("productid arabic digits", "/v1/predict", _bad_product(productid="\u0661\u0662\u0663"), V422, False),
    Kind("productid -5", "/v1/predict", _bad_product(productid=-5), V422, False),
    Kind("productid 2**70", "/v1/predict", _bad_product(productid=2**70), V422, False),
    Kind("productid 1.5", "/v1/predict", _bad_product(productid=1.5), V422, False),
    Kind("productid true", "/v1/predict", _bad_product(productid=True), V422, False),
    Kind("feedback productid 2**70", "/v1/feedback",
         lambda rng, n: {"method": "POST", "url": "/v1/feedback", "json": {"productid": 2**70, "prdtypecode": 10}}, V422, False),
    Kind("feedback arabic digits", "/v1/feedback",
         lambda rng, n: {"method": "POST", "url": "/v1/feedback", "json": {"productid": "\u0661\u0662\u0663", "prdtypecode": 10}},
         V422, False),
    Kind("feedback unknown code", "/v1/feedback",
         lambda rng, n: {"method": "POST", "url": "/v1/feedback", "json": {"productid": n, "prdtypecode": 9999}}, V422, False),
    # images
    Kind("image: bad base64", "/v1/predict", _bad_product(image_base64="not base64 !!"), V422, False),
    Kind("image: not a string", "/v1/predict", _bad_product(image_base64=5), V422, False),
    Kind("image: html bytes", "/v1/predict", _bad_product(image_base64=_b64(b"<html><body>hello</body></html>" * 20)), V422, False),
    Kind("image: truncated gif", "/v1/predict", _bad_product(image_base64=_b64(b"GIF89a but truncated")), V422, False),
    Kind("image: random bytes", "/v1/predict", lambda rng, n: _predict({"designation": "x", "image_base64": _b64(rng.randbytes(4096))}),
         V422, False),
    Kind("image: 4097 px", "/v1/predict", _bad_product(image_base64=_PIXELS_TOO_MANY), V422, False),
    Kind("image: key and base64", "/v1/predict", _bad_product(image_key="a.jpg", image_base64=_IMAGE), V422, False),
    Kind("image: key traversal", "/v1/predict", _bad_product(image_key="../etc/passwd"), V422, False),
    Kind("image: key not found", "/v1/predict", _bad_product(image_key="uploads/none.jpg"), V422, False),
    Kind("image: over 10 MiB", "/v1/predict", _bad_product(image_base64=_BYTES_TOO_MANY), V422, False, heavy=True),
    Kind("image: base64 too long", "/v1/predict", _bad_product(image_base64=_BASE64_TOO_LONG), V422, False, heavy=True),
    # content types
    Kind("ctype: text/plain", "/v1/predict", lambda rng, n: _post("/v1/predict", json.dumps(POOL).encode(), "text/plain"), V422, False),
    Kind("ctype: form", "/v1/predict", lambda rng, n: _post("/v1/predict", b"designation=x", "application/x-www-form-urlencoded"),
         V422, False),
    Kind("ctype: multipart", "/v1/feedback", lambda rng, n: _post("/v1/feedback", b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
         V422, False),
    Kind("ctype: none", "/v1/predict", lambda rng, n: _post("/v1/predict", json.dumps(POOL).encode(), None), V422, False),
    # routes and methods
    Kind("route: unknown", "unknown", lambda rng, n: {"method": "GET", "url": f"/v1/nope/{n}"}, frozenset({404}), False),
    Kind("route: long path", "unknown", lambda rng, n: {"method": "GET", "url": "/" + "a" * 6000}, frozenset({404}), False),
    Kind("route: bad escapes", "unknown", lambda rng, n: {"method": "GET", "url": "/v1/%ff%00%2e%2e"}, frozenset({404}), False),
    Kind("route: GET predict", "/v1/predict", lambda rng, n: {"method": "GET", "url": "/v1/predict"}, frozenset({405}), False),
    Kind("route: DELETE feedback", "/v1/feedback", lambda rng, n: {"method": "DELETE", "url": "/v1/feedback"}, frozenset({405}), False),
    # an unknown method: uvicorn's parser (httptools) refuses it with a 400 before the app; h11 would pass it on (405)
    Kind("route: BREW", "/v1/predict", lambda rng, n: {"method": "BREW", "url": "/v1/predict"}, frozenset({400, 405}), False),
    # admin
    Kind("admin: reload no token", "/v1/admin/reload", lambda rng, n: {"method": "POST", "url": "/v1/admin/reload"}, frozenset({401}), False),
    Kind("admin: reload wrong token", "/v1/admin/reload",
         lambda rng, n: {"method": "POST", "url": "/v1/admin/reload", "headers": WRONG_TOKEN}, frozenset({401}), False),
    Kind("admin: traffic basic auth", "/v1/admin/traffic",
         lambda rng, n: {"method": "POST", "url": "/v1/admin/traffic", "json": {"challenger_share": 0.1},
                         "headers": {"Authorization": "Basic dXNlcjpwYXNz"}}, frozenset({401}), False),
    Kind("admin: traffic wrong utf-8 token", "/v1/admin/traffic",
         lambda rng, n: {"method": "POST", "url": "/v1/admin/traffic", "json": {"challenger_share": 0.1},
                         "headers": {"Authorization": "Bearer t\u00f6ken".encode()}}, frozenset({401}), False),
    Kind("admin: reports no token", "/v1/reports/drift", lambda rng, n: {"method": "GET", "url": "/v1/reports/drift"},
         frozenset({401}), False),
    Kind("admin: report wrong token", "/v1/reports/drift",
         lambda rng, n: {"method": "GET", "url": "/v1/reports/drift/2026-01-01", "headers": WRONG_TOKEN}, frozenset({401}), False),
    Kind("admin: traffic out of range", "/v1/admin/traffic",
         lambda rng, n: {"method": "POST", "url": "/v1/admin/traffic", "json": {"challenger_share": 0.9}, "headers": AUTH}, V422, False),
    Kind("admin: reload bad body", "/v1/admin/reload",
         lambda rng, n: {"method": "POST", "url": "/v1/admin/reload", "content": b'{"force": "maybe"}', "headers": AUTH | JSON},
         V422, False),
    # raw sockets: what no well-behaved HTTP client sends
    Kind("raw: declared 100 MB body", "/v1/predict",
         lambda rng, n: _raw_http("POST /v1/predict HTTP/1.1", {"Host": "x", "Content-Type": "application/json",
                                                                "Content-Length": str(100 * 1024 * 1024)}),
         frozenset({413}), False, raw=True),
    Kind("raw: garbage request line", "raw", lambda rng, n: b"\x16\x03\x01 GARBAGE\r\n\r\n", frozenset({400, None}), False, raw=True),
    Kind("raw: hang up mid-body", "/v1/predict",
         lambda rng, n: _raw_http("POST /v1/predict HTTP/1.1", {"Host": "x", "Content-Type": "application/json",
                                                                "Content-Length": "5000"}, b'{"designation": "Pisc'),
         frozenset({None}), False, raw=True),
]


def raw_request(port: int, data: bytes, *, wait_answer: bool) -> int | None:
    """Write ``data`` on a fresh connection; the status of the answer, or None when there is none."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        if not wait_answer:
            return None  # hang up now: the server is left with a body that never comes
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() else None


@dataclass
class Result:
    slot: int
    kind: Kind
    t0: float  # time.monotonic() before sending
    t1: float  # after the answer
    status: int | None
    error: str = ""  # the body's "error" code, or the client-side exception
    versions: tuple[str, ...] = ()  # model versions of the predictions, in order
    version_header: str = ""
    products: int = 0
    productid: int | None = None  # of a feedback
    leaked: bool = False  # a traceback or a stack frame in the body


class Soak:
    def __init__(self, url: str, deadline: float) -> None:
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.deadline = deadline
        self.results: list[Result] = []
        self._sent = 0
        self._lock = threading.Lock()

    def _take_slot(self) -> bool:
        with self._lock:
            if self._sent >= MAX_REQUESTS:
                return False
            self._sent += 1
            return True

    def client(self, slot: int) -> None:
        rng = random.Random(1000 + slot)
        weights = [w for w, _ in VALID]
        valid = [k for _, k in VALID]
        hostile_pass, hostile_at = 0, slot * 7 % len(HOSTILE)  # threads start at different places in the list
        counter = 0
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while time.monotonic() < self.deadline and self._take_slot():
                counter += 1
                n = (slot + 1) * 10**9 + counter  # unique product ids per thread and request
                if rng.random() < VALID_SHARE:
                    kind = rng.choices(valid, weights)[0]
                else:
                    kind = HOSTILE[hostile_at]
                    hostile_at += 1
                    if hostile_at == len(HOSTILE):
                        hostile_at, hostile_pass = 0, hostile_pass + 1
                    if kind.heavy and hostile_pass % HEAVY_EVERY:
                        continue
                try:
                    self.results.append(self._send(client, slot, kind, rng, n))
                except Exception as exc:  # noqa: BLE001 - e.g. a 200 whose body is not what the API documents
                    self.results.append(Result(slot, kind, time.monotonic(), time.monotonic(), -1, f"{type(exc).__name__}: {exc}"))

    def _send(self, client: httpx.Client, slot: int, kind: Kind, rng: random.Random, n: int) -> Result:
        request = kind.build(rng, n)
        t0 = time.monotonic()
        if kind.raw:
            try:
                status = raw_request(self.port, request, wait_answer=None not in kind.expect or len(kind.expect) > 1)  # type: ignore[arg-type]
            except OSError as exc:
                return Result(slot, kind, t0, time.monotonic(), -1, f"{type(exc).__name__}: {exc}")
            return Result(slot, kind, t0, time.monotonic(), status)
        try:
            response = client.request(**request)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            return Result(slot, kind, t0, time.monotonic(), -1, f"{type(exc).__name__}: {exc}")
        t1 = time.monotonic()
        result = Result(slot, kind, t0, t1, response.status_code, leaked="Traceback" in response.text or 'File "' in response.text)
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            if isinstance(body, dict):
                result.error = str(body.get("error", ""))
                if response.status_code == 200 and kind.route == "/v1/predict":
                    result.versions = tuple(p["model_version"] for p in body["predictions"])
                    result.version_header = response.headers.get("X-Model-Version", "")
                    result.products = len(body["predictions"])
        if kind.route == "/v1/feedback" and kind.valid:
            result.productid = request["json"]["productid"]  # type: ignore[index]
        return result


def test_serving_soak_with_hot_swap_and_database_outage(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, throwaway_postgres: ThrowawayPostgres, outage_db_url: str
) -> None:
    started = time.monotonic()
    settings = registry_settings(tmp_path_factory, tmp_path, database_url=outage_db_url)
    set_alias(settings, "champion", "1")
    env = settings_env(settings) | {
        "RAKUTEN_API_ADMIN_TOKEN": ADMIN_TOKEN,
        "RAKUTEN_SERVING_POLL_INTERVAL_S": "1.0",
        "RAKUTEN_SERVING_LOG_FLUSH_S": "0.5",
        "RAKUTEN_SERVING_TORCH_THREADS": "1",
    }
    log_path = tmp_path / "uvicorn.log"
    moments: dict[str, float] = {}
    rss: list[tuple[float, int]] = []
    with uvicorn_process(env, log_path) as (url, process):
        ready_at = time.monotonic()
        t0 = ready_at
        soak = Soak(url, deadline=t0 + SOAK_SECONDS)
        threads = [threading.Thread(target=soak.client, args=(slot,), name=f"soak-client-{slot}") for slot in range(CLIENTS)]
        for thread in threads:
            thread.start()
        plan = [(0.20 * SOAK_SECONDS, "warmed_up"), (0.35 * SOAK_SECONDS, "swap"), (0.55 * SOAK_SECONDS, "outage_start")]
        try:
            while time.monotonic() < soak.deadline:
                now = time.monotonic()
                rss.append((now - t0, rss_kib(process.pid)))
                if plan and now - t0 >= plan[0][0]:
                    _, step = plan.pop(0)
                    moments[step] = time.monotonic()
                    if step == "warmed_up":
                        moments["rss_warm_kib"] = rss_kib(process.pid)
                        moments["fds_warm"], moments["threads_warm"] = open_fds(process.pid), thread_count(process.pid)
                    elif step == "swap":
                        set_alias(settings, "champion", "2")  # the app's alias poller swaps the model
                        moments["swap_done"] = time.monotonic()
                    elif step == "outage_start":
                        throwaway_postgres.stop()  # "immediate": a crash, as an outage is
                        moments["db_down"] = time.monotonic()
                        time.sleep(OUTAGE_S)
                        moments["db_restart"] = time.monotonic()
                        throwaway_postgres.start()
                        moments["db_up"] = time.monotonic()
                    continue
                time.sleep(1.0)
        finally:
            for thread in threads:
                thread.join(120)
            if not throwaway_postgres.running:
                throwaway_postgres.start()
        moments["traffic_end"] = time.monotonic()
        moments["rss_end_kib"] = rss_kib(process.pid)
        moments["fds_end"], moments["threads_end"] = open_fds(process.pid), thread_count(process.pid)
        answered = sum(r.products for r in soak.results if r.status == 200)
        # the writer drains its queue: written + dropped then accounts for every answered product
        text = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = httpx.get(f"{url}/metrics", timeout=30).text
            done = metric_sum(text, "rakuten_prediction_log_rows_total")
            if done >= answered and metric_sum(text, "rakuten_prediction_log_queue_size") == 0:
                break
            time.sleep(0.5)
        model = httpx.get(f"{url}/v1/model", timeout=30).json()
        moments["rss_drained_kib"] = rss_kib(process.pid)
    finished = time.monotonic()
    server_log = log_path.read_text(errors="replace")
    written = metric_sum(text, "rakuten_prediction_log_rows_total", outcome="written")
    dropped = metric_sum(text, "rakuten_prediction_log_rows_total", outcome="dropped")
    engine = sa.create_engine(outage_db_url)
    try:
        rows_logged = count_rows(engine, prediction_log)
        rows_v2 = count_rows(engine, prediction_log, model_version="2")
        since_restart = datetime.now(UTC).timestamp() - (time.monotonic() - moments["db_up"])
        with engine.connect() as conn:
            rows_after_outage = conn.execute(
                sa.select(sa.func.count()).select_from(prediction_log)
                .where(prediction_log.c.created_at > datetime.fromtimestamp(since_restart, UTC))
            ).scalar_one()
            stored_feedback = {row[0] for row in conn.execute(sa.select(feedback.c.productid))}
            down_from = datetime.now(UTC).timestamp() - (time.monotonic() - moments["db_down"])
            down_to = datetime.now(UTC).timestamp() - (time.monotonic() - moments["db_restart"])
            rows_while_down = conn.execute(
                sa.select(sa.func.count()).select_from(prediction_log)
                .where(prediction_log.c.created_at.between(datetime.fromtimestamp(down_from, UTC), datetime.fromtimestamp(down_to, UTC)))
            ).scalar_one()
    finally:
        engine.dispose()

    results = soak.results
    figures = _figures(results, moments, rss, t0, started, ready_at, finished, answered, written, dropped, rows_logged,
                       rows_while_down)
    record_figures("serving_soak", {"lines": figures.splitlines()})  # docs/reliability.md quotes them

    # ------------------------------------------------------------------ no client failure, no stray 5xx
    failures = [r for r in results if r.status == -1]
    assert not failures, [(r.kind.name, r.error) for r in failures[:10]]
    outage_from, outage_to = moments["db_down"] - 0.5, moments["db_up"] + FEEDBACK_RECOVERY_S
    documented = [r for r in results if r.status == 503 and r.kind.route == "/v1/feedback" and r.error == "database_unavailable"]
    stray_5xx = [r for r in results if r.status is not None and r.status >= 500 and r not in documented]
    assert not stray_5xx, [(r.kind.name, r.status, r.error) for r in stray_5xx[:10]]
    late = [r for r in documented if not (outage_from <= r.t1 and r.t0 <= outage_to)]
    assert not late, f"{len(late)} feedback 503s outside the outage (+{FEEDBACK_RECOVERY_S:.0f} s): {[(r.t0 - t0) for r in late[:5]]}"
    assert documented, "the outage never reached /v1/feedback: no 503 database_unavailable"
    server_5xx = sum(v for labels, v in metric_samples(text, "rakuten_http_requests_total") if labels.get("status", "").startswith("5"))
    assert server_5xx == len(documented), f"the server counted {server_5xx} 5xx, the clients saw {len(documented)} documented 503s"
    assert "unhandled error" not in server_log, server_log[server_log.index("unhandled error") - 200 :][:3000]

    # ------------------------------------------------------------------ every request got what it should
    unexpected = [r for r in results if r.status not in r.kind.expect]
    assert not unexpected, Counter((r.kind.name, r.status, r.error) for r in unexpected).most_common(10)
    assert not [r for r in results if r.leaked], "a response carried a traceback"
    sent_kinds = {r.kind.name for r in results}
    assert {k.name for k in HOSTILE} <= sent_kinds, f"hostile kinds never sent: {sorted({k.name for k in HOSTILE} - sent_kinds)}"

    # ------------------------------------------------------------------ predictions through the outage
    predictions = [r for r in results if r.kind.route == "/v1/predict" and r.kind.valid]
    assert all(r.status == 200 for r in predictions)
    during = [r for r in predictions if r.t0 >= moments["db_down"] and r.t1 <= moments["db_restart"]]
    assert during, "no prediction was answered while the database was down"
    feedback_after = [r for r in results if r.kind.name == "feedback" and r.status == 200 and r.t0 > outage_to]
    assert feedback_after, "feedback never recovered after the database came back"
    missing = {r.productid for r in results if r.kind.name == "feedback" and r.status == 200} - stored_feedback
    assert not missing, f"{len(missing)} feedback answered 200 but not stored"
    # documented: a dead database drops log rows (counted), it never fails nor buffers predictions
    assert written + dropped == answered, f"written {written} + dropped {dropped} != {answered} products answered"
    assert dropped > 0, "the outage dropped no prediction_log row: did the writer buffer them?"
    assert written <= rows_logged <= answered, (written, rows_logged, answered)
    assert rows_after_outage > 0, "prediction logging did not resume after the outage"
    assert rows_v2 > 0

    # ------------------------------------------------------------------ the hot swap
    answered_predictions = [r for r in predictions if r.status == 200]
    mixed = [r for r in answered_predictions if len(set(r.versions)) != 1 or r.version_header != r.versions[0]]
    assert not mixed, [(r.versions, r.version_header) for r in mixed[:5]]
    before = [r for r in answered_predictions if r.t1 < moments["swap"]]
    assert before and {r.versions[0] for r in before} == {"1"}, "v2 was served before its alias moved"
    v2 = [r for r in answered_predictions if r.versions[0] == "2"]
    assert v2, "the champion alias moved to v2 but v2 never answered"
    first_v2 = min(r.t1 for r in v2)
    stale = [r for r in answered_predictions if r.t0 > first_v2 and r.versions[0] != "2"]
    assert not stale, f"{len(stale)} requests sent after the first v2 answer got v1"
    assert model["champion"]["version"] == "2"

    # ------------------------------------------------------------------ memory
    assert moments["rss_end_kib"] < RSS_GROWTH_LIMIT * moments["rss_warm_kib"], (
        f"RSS grew from {moments['rss_warm_kib']} KiB after warm-up to {moments['rss_end_kib']} KiB"
    )
    assert moments["fds_end"] <= moments["fds_warm"] + FD_GROWTH_LIMIT, f"open files: {moments['fds_warm']} -> {moments['fds_end']}"


def _figures(results: list[Result], moments: dict[str, float], rss: list[tuple[float, int]], t0: float, started: float,
             ready_at: float, finished: float, answered: int, written: float, dropped: float, rows_logged: int,
             rows_while_down: int) -> str:
    valid = sum(1 for r in results if r.kind.valid)
    by_status = Counter(r.status for r in results)
    by_kind = Counter((r.kind.name, r.status) for r in results)
    five = Counter((r.kind.route, r.status, r.error) for r in results if r.status is not None and r.status >= 500)
    at = lambda key: f"{moments[key] - t0:6.1f} s"  # noqa: E731
    lines = [
        f"soak: {SOAK_SECONDS:.0f} s of traffic, {CLIENTS} clients; setup {ready_at - started:.1f} s, teardown {finished - moments['traffic_end']:.1f} s",
        f"requests: {len(results)} ({valid} valid, {len(results) - valid} invalid); products answered {answered}",
        "by status: " + ", ".join(f"{s}: {c}" for s, c in sorted(by_status.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))),
        "5xx: " + (", ".join(f"{route} {s} {e}: {c}" for (route, s, e), c in five.items()) or "none"),
        f"moments (from traffic start): warm-up end {at('warmed_up')}, alias moved {at('swap_done')}, "
        f"database down {at('db_down')}, restarted {at('db_restart')}..{at('db_up')}, traffic end {at('traffic_end')}",
        f"first v2 answer: {min((r.t1 - t0 for r in results if r.versions[:1] == ('2',)), default=float('nan')):.1f} s; "
        f"predictions answered while the database was down: "
        f"{sum(1 for r in results if r.products and moments['db_down'] <= r.t0 and r.t1 <= moments['db_restart'])}",
        f"RSS: warm-up {moments['rss_warm_kib'] / 1024:.1f} MiB, end {moments['rss_end_kib'] / 1024:.1f} MiB, "
        f"drained {moments['rss_drained_kib'] / 1024:.1f} MiB, max {max(k for _, k in rss) / 1024:.1f} MiB "
        f"(ratio {moments['rss_end_kib'] / moments['rss_warm_kib']:.3f})",
        f"open files: warm-up {moments['fds_warm']:.0f}, end {moments['fds_end']:.0f}; "
        f"threads: warm-up {moments['threads_warm']:.0f}, end {moments['threads_end']:.0f}",
        f"prediction_log: written {written:.0f}, dropped {dropped:.0f}, rows in table {rows_logged} "
        f"({rows_while_down} of them created while the database was down)",
        "per kind: " + "; ".join(f"{name} {status}: {c}" for (name, status), c in sorted(by_kind.items(), key=lambda kv: kv[0][0])),
    ]
    return "\n".join(lines) + "\n"
