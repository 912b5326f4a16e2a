"""Loopback load test of the serving API against the seed targets (P50 < 500 ms, P95 < 1 s,
P99 < 2 s, > 100 products/s), with the bare in-process ``classifier.predict`` as baseline.

Trains and registers a text model on a generated catalogue in a temporary home, starts
``uvicorn serving.app:app`` on a free 127.0.0.1 port, and drives it from client threads
(httpx, one connection each) for a fixed time per scenario. Then registers the same artifact again
as a challenger and compares, on two servers alternately, the API without and with shadow scoring,
under closed-loop clients (saturation) and under an open-loop Poisson load at a moderate rate.
Bounded: every scenario runs for a fixed time.

    python -m benchmarks.serving_load [--seconds 15] [--concurrency 8] [--workers 1] [--scenarios shadow]
                                      [--open-rate 100] [--open-seconds 20]
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.results import machine_line, write_section
from rakuten_ml.catalogue.generator import CatalogueSpec, DriftSpec, generate_catalogue, generate_frames, render_image
from rakuten_ml.data.ingest import ingest
from rakuten_ml.registry.client import mlflow_client
from rakuten_ml.registry.contract import CHALLENGER, CHAMPION
from rakuten_ml.registry.gateway import ModelRegistry
from rakuten_ml.registry.resolve import load_classifier, resolve_model
from rakuten_ml.resources import Platform
from rakuten_ml.settings import IngestSettings, Settings
from rakuten_ml.storage.database import make_engine, paired_predictions
from rakuten_ml.storage.object_store import open_store
from rakuten_ml.training.train import train_and_register
from serving.app import TORCH_THREADS_ENV, torch_threads_per_worker
from serving.schemas import check_image

log = logging.getLogger("benchmarks.serving_load")
ROOT = Path(__file__).resolve().parent.parent
TARGETS_MS = {"p50": 500.0, "p95": 1000.0, "p99": 2000.0}
TARGET_PRODUCTS_PER_S = 100.0
WARM_UP_S = 2.0  # of every driven run, not measured


@dataclass(frozen=True)
class Outcome:
    name: str
    requests: int
    products: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray

    def quantile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")

    def row(self, concurrency: str) -> str:
        products_per_s = self.products / self.seconds
        ok = all(self.quantile(q) < TARGETS_MS[f"p{q}"] for q in (50, 95, 99)) and products_per_s > TARGET_PRODUCTS_PER_S
        return (f"| {self.name} | {concurrency} | {self.requests:,} | {self.errors} | {self.requests / self.seconds:.1f} | "
                f"{products_per_s:.1f} | {self.quantile(50):.1f} | {self.quantile(95):.1f} | {self.quantile(99):.1f} | "
                f"{'yes' if ok and not self.errors else 'no'} |")


def build_model(home: Path, rows: int, modalities: tuple[str, ...]) -> Settings:
    """A registered model on a generated catalogue (what `make demo` trains, smaller); an image
    model uses the CPU-sized ``tiny`` vision profile."""
    with_images = "image" in modalities
    settings = Settings(home=home, vision_profile="tiny")
    platform = Platform(settings).prepare()
    catalogue = open_store(settings.catalogue_url, settings)
    generate_catalogue(catalogue, "", CatalogueSpec(rows=rows, images=rows if with_images else 0, seed=11))
    snapshot = ingest(source_store=catalogue, source_prefix="", target_store=platform.store, engine=platform.engine,
                      policy=IngestSettings(image_policy="require" if with_images else "optional")).snapshot_id
    result = train_and_register(platform, snapshot_id=snapshot, modalities=modalities, reason="serving benchmark")
    log.info("registered %s v%s", result.model_name, result.model_version)
    return settings


def product_photo(rng: random.Random, code: int) -> bytes:
    """A 500x500 catalogue photo of class ``code`` from the generator the model was trained on: a
    product on a white background, ~20-30 KB of JPEG like the real photos."""
    return render_image(code, np.random.default_rng(rng.randrange(2**32)), DriftSpec(), size=500)


def request_bodies(n: int, batch: int, with_image: bool) -> list[dict]:
    texts, labels = generate_frames(CatalogueSpec(rows=n * batch, seed=99))
    rng = random.Random(5)
    codes = [int(code) for code in labels["prdtypecode"]]
    # One photo per class, matching each product's text: the image model sees the photos it was trained on.
    photos = {code: base64.b64encode(product_photo(rng, code)).decode() for code in sorted(set(codes))} if with_image else {}
    bodies = []
    for start in range(0, n * batch, batch):
        products = []
        for i, row in enumerate(texts.iloc[start:start + batch].itertuples()):
            product = {"productid": int(row.productid), "designation": row.designation,
                       "description": row.description if isinstance(row.description, str) else None}
            if with_image:
                product["image_base64"] = photos[codes[start + i]]
            products.append(product)
        bodies.append({"products": products})
    return bodies


class Tally:
    """The measured requests of one run, recorded from many client threads."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.requests = self.products = self.errors = 0
        self._lock = threading.Lock()

    def add(self, ok: bool, products: int, elapsed_ms: float) -> None:
        with self._lock:
            self.requests += 1
            self.errors += not ok
            self.products += products if ok else 0
            self.latencies.append(elapsed_ms)

    def outcome(self, name: str, seconds: float) -> Outcome:
        return Outcome(name, self.requests, self.products, self.errors, seconds, np.array(self.latencies))


def post(http: httpx.Client, body: dict) -> bool:
    try:
        return http.post("/v1/predict", json=body).status_code == 200
    except httpx.HTTPError:
        return False


def run_clients(client: Callable[[int], None], n: int) -> None:
    threads = [threading.Thread(target=client, args=(slot,)) for slot in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def drive(url: str, name: str, bodies: list[dict], seconds: float, concurrency: int) -> Outcome:
    """``concurrency`` closed-loop clients for ``seconds`` after a short warm-up."""
    tally = Tally()
    measure_from = time.perf_counter() + WARM_UP_S
    stop_at = measure_from + seconds

    def client(slot: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            i = slot
            while (now := time.perf_counter()) < stop_at:
                body = bodies[i % len(bodies)]
                i += concurrency
                started = time.perf_counter()
                ok = post(http, body)
                if now >= measure_from:
                    tally.add(ok, len(body["products"]), (time.perf_counter() - started) * 1000.0)

    run_clients(client, concurrency)
    return tally.outcome(name, seconds)


def drive_open(url: str, name: str, bodies: list[dict], seconds: float, rate: float, seed: int, senders: int = 16) -> Outcome:
    """Open loop: Poisson arrivals at ``rate`` requests/s (seeded: the same schedule for every server
    given ``seed``) for ``seconds`` after a short warm-up, sent round-robin on ``senders`` connections.
    A latency runs from the request's scheduled send time, so a server that falls behind is charged
    the waiting too (no coordinated omission)."""
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=int((WARM_UP_S + seconds) * rate * 2) + 100)
    due = np.cumsum(gaps)
    due = due[due < WARM_UP_S + seconds]
    tally = Tally()
    start = time.perf_counter() + 0.5  # every sender thread started

    def sender(slot: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(slot, len(due), senders):
                scheduled = start + due[i]
                time.sleep(max(0.0, scheduled - time.perf_counter()))
                body = bodies[i % len(bodies)]
                ok = post(http, body)
                if due[i] >= WARM_UP_S:
                    tally.add(ok, len(body["products"]), (time.perf_counter() - scheduled) * 1000.0)

    run_clients(sender, senders)
    return tally.outcome(name, seconds)


def bare_model(settings: Settings, name: str, bodies: list[dict], seconds: float, with_image: bool) -> Outcome:
    """Baseline: the same inputs through ``classifier.predict`` in this process, no HTTP, one caller."""
    classifier = load_classifier(settings, resolve_model(settings))
    latencies: list[float] = []
    products = 0
    stop_at = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < stop_at:
        items = bodies[i % len(bodies)]["products"]
        i += 1
        started = time.perf_counter()
        frame = pd.DataFrame({"designation": [p["designation"] for p in items], "description": [p["description"] or "" for p in items]})
        images = None
        if with_image:  # what serving does to every image before the model sees it
            images = [base64.b64decode(p["image_base64"]) for p in items]
            for data in images:
                check_image(data)
        classifier.predict(frame, images)
        latencies.append((time.perf_counter() - started) * 1000.0)
        products += len(items)
    return Outcome(name, len(latencies), products, 0, seconds, np.array(latencies))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    settings: Settings, workers: int, log_path: Path, cpus: set[int] | None = None, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """uvicorn with ``workers`` workers, on ``cpus`` only when given (the load generator keeps the others)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "PROMETHEUS_"))} | {
        "RAKUTEN_HOME": str(settings.home), "RAKUTEN_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "RAKUTEN_DATABASE_URL": settings.database_url,
    } | (extra_env or {})
    env[TORCH_THREADS_ENV] = str(torch_threads_per_worker(workers, len(cpus) if cpus else None))  # as `rakuten-ml serve` does
    if workers > 1:
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rakuten-bench-prom-")
    command = [sys.executable, "-m", "uvicorn", "serving.app:app", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--no-access-log"]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, preexec_fn=pin)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {log_path.read_text()[-2000:]}")
        try:
            # Each worker loads its models (and times their runtimes) before it accepts requests and logs
            # this line: measure only once every worker serves, not while one is still loading.
            started = log_path.read_text(errors="replace").count("Application startup complete")
            if started >= workers and httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"serving not ready in 180 s: {log_path.read_text()[-2000:]}")


def runtime_choices(log_path: Path) -> str:
    """What the first worker to load chose per network (ONNX Runtime or torch, int8 or fp32), from its log."""
    choices: dict[str, str] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = re.search(r"rakuten_ml\.models\.vision\.\w+: ((\S+) (at batch|on \d+ held-out).*)$", line)
        if match and f"{match.group(2)}|{match.group(3)}" not in choices:
            choices[f"{match.group(2)}|{match.group(3)}"] = match.group(1)
    return "; ".join(choices.values()) + "." if choices else "none logged."


def model_load_seconds(log_path: Path) -> float:
    """Slowest worker's model load (download, unpickle, ONNX export or cache read, runtime timing), from its log."""
    seconds = [float(s) for s in re.findall(r"loaded \S+ v\S+ for champion in ([\d.]+)s", log_path.read_text(errors="replace"))]
    return max(seconds) if seconds else float("nan")


def serve_on_one_core(settings: Settings, log_path: Path, bodies: list[dict], seconds: float, concurrency: int) -> Outcome | None:
    """One worker pinned to one CPU, the load generator on the others: products/s per server core.
    ``None`` where the process may use fewer than two CPUs (nowhere to put the load generator)."""
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        return None
    process, url = start_server(settings, 1, log_path, cpus={usable[-1]})
    os.sched_setaffinity(0, usable[:-1])  # this process (the load generator) keeps off the server's CPU
    try:
        return drive(url, "API, text + 500x500 JPEG, 1 product/request, 1 worker pinned to 1 core", bodies, seconds,
                     concurrency)
    finally:
        os.sched_setaffinity(0, usable)
        process.terminate()
        process.wait(timeout=30)


def register_challenger(settings: Settings) -> None:
    """The champion's artifact registered again as the challenger: a second model to load and run, no second training."""
    client = mlflow_client(settings)
    champion = client.get_model_version(settings.registered_model_name, "1")
    challenger = client.create_model_version(settings.registered_model_name, champion.source, run_id=champion.run_id)
    registry = ModelRegistry(settings)
    registry.move(CHAMPION, str(champion.version))
    registry.move(CHALLENGER, str(challenger.version))


def shadow_counts(url: str) -> dict[str, float]:
    """The server's shadow counters (summed over workers): queued, scored, and dropped by reason."""
    counts: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "rakuten_shadow_queue_size":
                counts["queued"] += sample.value
            elif sample.name == "rakuten_shadow_predictions_total":
                counts["scored"] += sample.value
            elif sample.name == "rakuten_shadow_dropped_total":
                counts[sample.labels["reason"]] += sample.value
            elif sample.name == "rakuten_shadow_batch_duration_seconds_sum":
                counts["batch_seconds"] += sample.value
            elif sample.name == "rakuten_shadow_batch_duration_seconds_count":
                counts["batches"] += sample.value
    return counts


def wait_for_shadow(url: str, timeout_s: float = 60.0) -> dict[str, float]:
    """The counters once the shadow queues are empty and nothing moved for half a second (the last batch written)."""
    deadline = time.monotonic() + timeout_s
    previous = shadow_counts(url)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = shadow_counts(url)
        if current == previous and not current["queued"]:
            return current
        previous = current
    log.warning("shadow queues of %s not drained in %.0f s", url, timeout_s)
    return previous


def pairs_written(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(paired_predictions)).scalar_one())


@dataclass(frozen=True)
class ShadowComparison:
    load: str  # how the servers were driven, for the table's load column
    off: list[Outcome]
    on: list[Outcome]
    written: int
    dropped: dict[str, float]
    shadow: dict[str, float]  # what the "on" server's shadow threads did: scored, batches (slices), batch_seconds

    def rows(self) -> list[str]:
        """Medians over the rounds, each round's on/off ratio, and the pairs the shadow runs wrote and dropped."""
        def medians(runs: list[Outcome]) -> list[float]:
            return [float(np.median([r.requests / r.seconds for r in runs]))] + [float(np.median([r.quantile(q) for r in runs]))
                                                                                   for q in (50, 95, 99)]

        def ratio(q: int) -> float:
            return float(np.median([on.quantile(q) / off.quantile(q) for off, on in zip(self.off, self.on, strict=True)]))

        dropped = sum(self.dropped.values())
        lines = []
        for label, runs, pairs in (("shadow off", self.off, "-"), ("shadow on (share 1.0)", self.on, f"{self.written:,} / {dropped:,.0f}")):
            rate, p50, p95, p99 = medians(runs)
            errors = sum(r.errors for r in runs)
            lines.append(f"| API, champion + challenger, text, 1 product/request, {label} | {self.load} | {len(runs)} | "
                         f"{sum(r.requests for r in runs):,} | {errors} | {rate:.1f} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {pairs} |")
        on_rate = np.median([on.requests / off.requests for off, on in zip(self.off, self.on, strict=True)])
        lines.append(f"| ratio shadow on / off (median of the rounds) | | | | | {on_rate:.2f} | {ratio(50):.2f} | {ratio(95):.2f} | "
                     f"{ratio(99):.2f} | |")
        return lines

    def summary(self) -> str:
        dropped = sum(self.dropped.values())
        reasons = ", ".join(f"{reason} {int(n):,}" for reason, n in sorted(self.dropped.items()) if n) or "none"
        share = self.written / (self.written + dropped) if self.written + dropped else float("nan")
        per_round = "; ".join(f"{off.quantile(95):.1f} / {on.quantile(95):.1f}" for off, on in zip(self.off, self.on, strict=True))
        slices = self.shadow["batches"] or float("nan")
        return (f"{self.load}: {self.written:,} pairs written to `paired_predictions`, {dropped:,.0f} dropped ({reasons}): "
                f"{share:.1%} of the shadowed products paired (warm-ups included), in {self.shadow['batches']:,.0f} shadow "
                f"slices of {self.shadow['scored'] / slices:.1f} products and {1000 * self.shadow['batch_seconds'] / slices:.1f} ms "
                f"on average (predict + write). P95 ms per round, off / on: {per_round}.")


def compare_shadow(settings: Settings, log_dir: Path, workers: int, rounds: int,
                   loads: dict[str, Callable[[str, int], Outcome]]) -> list[ShadowComparison]:
    """Two servers of ``workers`` workers with champion and challenger loaded, shadow scoring off and
    on, driven by each of ``loads`` (``load(url, round)``) alternately in the order off-on, on-off,
    off-on... so a drift of the shared machine falls on both alike; each "on" run drains its shadow
    queue before the next run starts."""
    servers = [start_server(settings, workers, log_dir / f"uvicorn-shadow-{workers}-{share}.log",
                            extra_env={"RAKUTEN_SERVING_SHADOW_SHARE": share}) for share in ("0", "1")]
    (_, off_url), (_, on_url) = servers
    engine = make_engine(settings.database_url)
    comparisons = []
    try:
        for name, load in loads.items():
            off: list[Outcome] = []
            on: list[Outcome] = []
            before_written, before = pairs_written(engine), shadow_counts(on_url)
            after = before
            for round_ in range(rounds):
                for shadow_on in (False, True) if round_ % 2 == 0 else (True, False):
                    if shadow_on:
                        on.append(load(on_url, round_))
                        after = wait_for_shadow(on_url)
                    else:
                        off.append(load(off_url, round_))
            dropped = {reason: after[reason] - before[reason] for reason in ("queue_full", "error", "database")}
            shadow = {key: after[key] - before[key] for key in ("scored", "batches", "batch_seconds")}
            load_name = f"{name}, {workers} worker{'s' if workers > 1 else ''}"
            comparisons.append(ShadowComparison(load_name, off, on, pairs_written(engine) - before_written, dropped, shadow))
        return comparisons
    finally:
        engine.dispose()
        for process, _ in servers:
            process.terminate()
            process.wait(timeout=30)


def compare_shadow_loads(settings: Settings, log_dir: Path, args: argparse.Namespace, bodies: list[dict]) -> list[ShadowComparison]:
    """Saturation (closed-loop clients) and a moderate open-loop rate (a round's Poisson schedule is the
    same off and on) on ``--workers`` workers; the open loop again on one worker, where the worker's
    idleness is the server's: what is left there is shadow work's own cost, not other workers' requests."""
    register_challenger(settings)
    closed = f"{args.concurrency} closed-loop clients, {args.seconds:.0f} s"
    open_loop = f"open loop, Poisson {args.open_rate:.0f} requests/s, {args.open_seconds:.0f} s"
    loads: dict[str, Callable[[str, int], Outcome]] = {
        closed: lambda url, _round: drive(url, "shadow", bodies, args.seconds, args.concurrency),
        open_loop: lambda url, round_: drive_open(url, "shadow", bodies, args.open_seconds, args.open_rate, seed=round_),
    }
    comparisons = compare_shadow(settings, log_dir, args.workers, args.shadow_rounds, loads)
    if args.workers > 1:
        comparisons += compare_shadow(settings, log_dir, 1, args.shadow_rounds, {open_loop: loads[open_loop]})
    return comparisons


def shadow_table(comparisons: list[ShadowComparison], challenger_share: float) -> list[str]:
    header = ("| scenario | load | rounds | requests | errors | requests/s | P50 ms | P95 ms | P99 ms | pairs written / dropped |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    return [
        "", f"### Shadow scoring cost (champion + challenger loaded, {len(comparisons[0].off)} rounds of off and on per load)", "",
        "Two servers, the same registered artifact as champion (v1) and challenger (v2, loaded apart), a challenger "
        f"share of {challenger_share:.0%}: one with `RAKUTEN_SERVING_SHADOW_SHARE=0`, one with `1` (every product with a productid is "
        "predicted again by the variant that did not answer, after the response, on a thread that works only while its "
        "worker serves no predict request, in slices of a few products, and the pair written to `paired_predictions`), "
        "driven in the order off-on, on-off, off-on... Closed-loop clients saturate the server (it is never idle: shadow "
        "work is dropped); the open loop sends at a fixed mean rate, 16 connections, latency from each request's scheduled "
        "send time. A worker knows only its own requests: with several workers on shared cores, one worker's shadow work "
        "can still take a core another worker's request needs; the one-worker rows leave that out. "
        "Figures are medians over the rounds; the ratio is the median of each round's on/off ratio.", "",
        header, *(row for comparison in comparisons for row in comparison.rows()),
        "", *("Shadow pairs, " + comparison.summary() for comparison in comparisons),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop client threads")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (each gets cores / workers torch threads)")
    parser.add_argument("--batch", type=int, default=16, help="products per request in the batch scenario")
    parser.add_argument("--rows", type=int, default=3000, help="catalogue rows to train the model on")
    parser.add_argument("--modalities", default="text", help="text or text,image (a tiny vision model: CPU-minutes to train)")
    parser.add_argument("--scenarios", choices=("all", "shadow"), default="all",
                        help="shadow: only the shadow-scoring comparison, printed and not written to RESULTS.md")
    parser.add_argument("--shadow-rounds", type=int, default=5, help="alternated off/on rounds of the shadow comparison, per load")
    parser.add_argument("--open-rate", type=float, default=100.0, help="requests/s of the shadow comparison's open-loop load")
    parser.add_argument("--open-seconds", type=float, default=20.0, help="measured seconds per open-loop run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="rakuten-serving-bench-") as tmp:
        modalities = tuple(m.strip() for m in args.modalities.split(",") if m.strip())
        settings = build_model(Path(tmp) / "home", args.rows, modalities)
        text = request_bodies(200, 1, with_image=False)
        if args.scenarios == "shadow":
            comparisons = compare_shadow_loads(settings, Path(tmp), args, text)
            print("\n".join(shadow_table(comparisons, settings.ab.challenger_share)))
            return
        image = request_bodies(200, 1, with_image=True)
        batches = request_bodies(50, args.batch, with_image=False)
        image_batches = request_bodies(25, args.batch, with_image=True)
        baselines = [
            bare_model(settings, "bare model, text, 1 product", text, args.seconds / 3, with_image=False),
            bare_model(settings, "bare model, text + image checks, 1 product", image, args.seconds / 3, with_image=True),
            bare_model(settings, f"bare model, text, batch of {args.batch}", batches, args.seconds / 3, with_image=False),
        ]
        process, url = start_server(settings, args.workers, Path(tmp) / "uvicorn.log")
        try:
            served = [
                (drive(url, "API, text, 1 product/request", text, args.seconds, args.concurrency), args.concurrency),
                (drive(url, "API, text + 500x500 JPEG, 1 product/request", image, args.seconds, args.concurrency), args.concurrency),
                # Four times the clients: more requests in flight make bigger micro-batches.
                (drive(url, "API, text + 500x500 JPEG, 1 product/request", image, args.seconds, 4 * args.concurrency), 4 * args.concurrency),
                (drive(url, f"API, text, {args.batch} products/request", batches, args.seconds, args.concurrency), args.concurrency),
                (drive(url, f"API, text + 500x500 JPEG, {args.batch} products/request", image_batches, args.seconds,
                       args.concurrency), args.concurrency),
            ]
        finally:
            process.terminate()
            process.wait(timeout=30)
        runtimes = runtime_choices(Path(tmp) / "uvicorn.log")
        load_times = [model_load_seconds(Path(tmp) / "uvicorn.log")]
        if "image" in modalities:  # a restart: the ONNX exports now come from the export cache
            process, url = start_server(settings, args.workers, Path(tmp) / "uvicorn-restart.log")
            process.terminate()
            process.wait(timeout=30)
            load_times.append(model_load_seconds(Path(tmp) / "uvicorn-restart.log"))
        per_core = serve_on_one_core(settings, Path(tmp) / "uvicorn-one-core.log", image, args.seconds, args.concurrency)
        # Last: it registers a challenger, which the scenarios above must not see.
        shadow = compare_shadow_loads(settings, Path(tmp), args, text)

    header = ("| scenario | clients | requests | errors | requests/s | products/s | P50 ms | P95 ms | P99 ms | meets seed targets |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    table = "\n".join([
        f"## Serving load, {'+'.join(modalities)} model (loopback, uvicorn {args.workers} worker(s), closed-loop clients, "
        f"{args.seconds:.0f} s per scenario)", "",
        machine_line() + "; load generator and server share the machine. Each worker predicts on one inference "
        "thread that micro-batches concurrent requests, with cores / workers torch threads. Photos come from the "
        "catalogue generator (500x500, ~25 KB, the class of the product's text).", "",
        "Seed targets: P50 < 500 ms, P95 < 1 s, P99 < 2 s, > 100 products/s. Latency is client-side (HTTP + JSON + "
        f"validation + model + prediction log, cache off). Registered model: {'+'.join(modalities)}"
        + ("" if "image" in modalities else " (`--modalities text,image` trains a tiny vision model too; in the image "
           "rows below images are decoded and bounded, bytes and pixels, but no image model reads them)")
        + ". Baselines run the same inputs through `classifier.predict` in-process, one caller, no HTTP.", "",
        header,
        *(b.row("1 (in-process)") for b in baselines),
        *(outcome.row(str(clients)) for outcome, clients in served),
        *([per_core.row(str(args.concurrency))] if per_core else []),
        *(["", "The last row is the capacity of one server core: one worker pinned to one CPU, with one torch "
           "thread, while the load generator runs on the other CPUs. Size replicas from it (products/s per core "
           "times the cores a deployment gives serving)."] if per_core else []),
        *(["", "Vision runtimes chosen at load by the first worker (`RAKUTEN_VISION_CPU_RUNTIME=auto`): " + runtimes]
          if "image" in modalities else []),
        *(["", f"Model load per worker at start-up (slowest of {args.workers}): {load_times[0]:.1f} s on the first start "
           f"(ONNX exports made), {load_times[1]:.1f} s on a restart ({load_times[0] / load_times[1]:.1f}x faster: exports "
           "read from the export cache, `RAKUTEN_VISION_ONNX_CACHE_DIR`)."] if len(load_times) > 1 else []),
        *shadow_table(shadow, settings.ab.challenger_share),
    ])
    print(table)
    # One section per registered model kind, so the text-only and the fused figures sit side by side.
    write_section("serving_load" if modalities == ("text",) else "serving_load_" + "_".join(modalities), table)


if __name__ == "__main__":
    main()
