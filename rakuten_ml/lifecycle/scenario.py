"""A week of production in one run: the simulated days of the life cycle, driven through Airflow's REST API.

Day 0   a catalogue arrives; ingestion; nothing to score yet; the first model (text + vision) is trained
        from the trigger form and the gate makes it champion.
Day 1   new products; nightly ingestion -> fused scoring (asset event) -> drift check (no alert); the
        serving API starts and the shop's traffic flows, labellers send the true class of a share.
Day 2-4 drifted batches (new vocabulary, other class mix, brighter photos): the drift check sees drift
        on three days in a row, the alert's asset event starts retrain_classifier, the new version is
        gated into challenger.
Day 5   the drift persists: the second alert is refused by the cool-down (a visible skip); live traffic
        is split between champion and challenger, each product shadow-scored by the other; two reviewers
        label the top of the review queue; evaluate_ab_test promotes the challenger.
Day 6   a bad export (half the labels wrong) is ingested and a forced retrain trains on it: the gate
        rejects that version, and an analyst's text-only model on the same snapshot too; guard_champion
        checks the champion.

Days are simulated with logical dates ending yesterday (none may lie in the future); scoring stamps its
predictions with the day it stands for, so each day's drift check sees that day's scoring. Everything runs in the real services of ``stack``.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from rakuten_ml.catalogue.generator import CatalogueSpec, DriftSpec
from rakuten_ml.data.snapshot import latest_snapshot_id, load_products
from rakuten_ml.lifecycle import catalogue_feed, outcomes
from rakuten_ml.lifecycle.airflow_api import FINISHED, AirflowClient, DagRun
from rakuten_ml.lifecycle.polling import poll_until
from rakuten_ml.lifecycle.reviewers import simulate_reviewers
from rakuten_ml.lifecycle.stack import Stack
from rakuten_ml.lifecycle.timeline import TRIGGER_REST, TRIGGER_SCHEDULE, Step, Timeline, asset_trigger
from rakuten_ml.lifecycle.traffic import send_traffic
from rakuten_ml.monitoring import DRIFT_ALERT_ASSET_URI
from rakuten_ml.orchestration import MODEL_ASSET_URI, SNAPSHOT_ASSET_URI
from rakuten_ml.resources import Platform
from rakuten_ml.settings import join_url
from rakuten_ml.storage.object_store import open_store

log = logging.getLogger(__name__)

DAG_IDS = ("ingest_products", "score_catalogue", "monitor_drift", "retrain_classifier", "evaluate_ab_test", "guard_champion",
           "train_text_model")
# The downstream DAG each upstream DAG's asset event schedules.
FOLLOWS = {"ingest_products": ("score_catalogue", SNAPSHOT_ASSET_URI), "retrain_classifier": ("evaluate_ab_test", MODEL_ASSET_URI),
           "monitor_drift": ("retrain_classifier", DRIFT_ALERT_ASSET_URI), "train_text_model": ("evaluate_ab_test", MODEL_ASSET_URI)}
DRIFT = DriftSpec(vocabulary_shift=0.8, class_prior_shift=0.6, brightness_shift=0.8)
BAD_EXPORT_NOISE = 0.5
BAD_EXPORT_PREFIX = "raw/partner-export"
LIVE_PREFIX = "live"
REVIEWERS = ("ana", "ben")
DAYS = 7


@dataclass(frozen=True)
class Story:
    """Sizes of the simulated week: the base catalogue, each day's new products, each traffic day's requests."""

    base_rows: int = 1200
    quiet_rows: int = 200  # a day without drift
    drifted_rows: int = 900  # nightly scoring rescores the whole catalogue: a day's drift must show against it
    live_rows: int = 240
    ab_live_rows: int = 560
    reviewed_per_reviewer: int = 60  # day 5: each of the two simulated reviewers labels this much of the review queue
    image_size: int = 96
    seed: int = 42
    run_timeout_s: float = 900.0

    def batch(self, day: int, drifted: bool) -> CatalogueSpec:
        rows = self.base_rows if day == 0 else self.drifted_rows if drifted else self.quiet_rows
        return CatalogueSpec(rows=rows, seed=self.seed + day, image_size=self.image_size, drift=DRIFT if drifted else DriftSpec())

    def live(self, day: int, rows: int, drifted: bool) -> CatalogueSpec:
        return CatalogueSpec(rows=rows, seed=self.seed + 1000 + day, image_size=self.image_size, drift=DRIFT if drifted else DriftSpec())


class LifeCycle:
    """Runs the story against a started :class:`Stack`; every DAG run becomes a :class:`Step` of the timeline."""

    def __init__(self, stack: Stack, story: Story, *, today: date | None = None) -> None:
        self.stack, self.story = stack, story
        self.platform = Platform.ready()
        self.client = AirflowClient(stack.airflow_url)
        self.timeline = Timeline()
        # The week ends yesterday: Airflow does not start a run whose logical date is still to come, and the
        # last day's runs are due up to 07:15, so a week ending today would wait for the clock before then.
        self.first_day = (today or datetime.now(UTC).date()) - timedelta(days=DAYS)
        self.batches: list[CatalogueSpec] = []
        self.recorded: set[str] = set()

    # --- time and catalogue -------------------------------------------------------------------------
    def at(self, day: int, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(self.first_day + timedelta(days=day), datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour, minutes=minute)

    def arrive(self, day: int, *, drifted: bool) -> None:
        """The day's export lands in the object store: yesterday's products plus today's batch."""
        self.batches.append(self.story.batch(day, drifted))
        store = open_store(self.platform.settings.object_store_url, self.platform.settings)
        total = catalogue_feed.publish(store, self.platform.settings.ingest.catalogue_prefix, self.batches)
        self.timeline.notes.append(f"day {day}: {self.batches[-1].rows} new products{' (drifted)' if drifted else ''}, {total} in the export")

    # --- Airflow ------------------------------------------------------------------------------------
    def start(self) -> None:
        self.client.wait_for_dags(list(DAG_IDS))
        for dag_id in DAG_IDS:
            self.client.unpause(dag_id)

    def _record(self, day: int, run: DagRun, trigger: str) -> Step:
        states = self.client.task_states(run.dag_id, run.run_id)
        results = {task: self.client.return_value(run.dag_id, run.run_id, task) for task, state in states.items()
                   if state == "success" and task in outcomes.RESULT_TASKS.get(run.dag_id, ())}
        aliases = self.platform_aliases()
        step = Step(day, (self.first_day + timedelta(days=day)).isoformat(), run.dag_id, run.run_id, trigger, run.state,
                    outcomes.describe(run.dag_id, states, results), aliases, states, results)
        log.info("day %d %s (%s): %s — %s", day, run.dag_id, trigger, run.state, step.outcome)
        self.stack.check_alive()
        self.recorded.add(run.run_id)
        return self.timeline.add(step)

    def record_clock_runs(self, day: int, *, wait: bool = False) -> None:
        """Runs the scheduler started on the real clock meanwhile (the hourly guard): production does that too."""
        for dag_id in DAG_IDS:
            for run in self.client.runs(dag_id):
                if run.run_type != "scheduled" or run.run_id in self.recorded:
                    continue
                if wait:
                    run = self.client.wait(dag_id, run.run_id, timeout_s=self.story.run_timeout_s)
                if run.state in FINISHED:
                    self._record(day, run, TRIGGER_SCHEDULE)

    def platform_aliases(self) -> dict[str, str | None]:
        from rakuten_ml.registry.gateway import ModelRegistry

        return ModelRegistry(self.platform.settings).state().as_dict()

    def trigger(self, day: int, dag_id: str, hour: int, minute: int = 0, conf: dict[str, Any] | None = None) -> Step:
        """A run started from the REST API as the UI's trigger form starts it, then what its asset events start."""
        downstream = FOLLOWS.get(dag_id)
        known = {r.run_id for r in self.client.runs(downstream[0])} if downstream else set()
        run = self.client.trigger(dag_id, logical_date=self.at(day, hour, minute), conf=conf)
        run = self.client.wait(dag_id, run.run_id, timeout_s=self.story.run_timeout_s)
        step = self._record(day, run, TRIGGER_REST)
        self._follow(day, step, known)
        self.record_clock_runs(day)
        return step

    def _follow(self, day: int, step: Step, known: set[str]) -> None:
        """Wait for the run the step's asset event scheduled (if it emitted one), and for what that one emits."""
        downstream = FOLLOWS.get(step.dag_id)
        if downstream is None or step.state != "success" or not outcomes.emitted(step):
            return
        dag_id, uri = downstream
        further = FOLLOWS.get(dag_id)
        known_further = {r.run_id for r in self.client.runs(further[0])} if further else set()
        run = self.client.wait_for_new_run(dag_id, known, timeout_s=120)
        run = self.client.wait(dag_id, run.run_id, timeout_s=self.story.run_timeout_s)
        self._follow(day, self._record(day, run, asset_trigger(uri)), known_further)

    # --- serving ------------------------------------------------------------------------------------
    def wait_served(self, *, champion: str | None, challenger: str | None, timeout_s: float = 300.0) -> None:
        """Block until the serving API serves these versions (it re-reads the aliases every few seconds)."""
        served: list[tuple[str | None, str | None]] = []

        def serving_them() -> bool | None:
            status = httpx.get(f"{self.stack.serving_url}/v1/model", timeout=10).json()
            served[:] = [((status.get("champion") or {}).get("version"), (status.get("challenger") or {}).get("version"))]
            return True if served[0] == (champion, challenger) else None

        poll_until(serving_them, timeout_s=timeout_s, interval_s=1.0, timeout_error=lambda: TimeoutError(
            f"serving shows {served[0]}, expected ({champion}, {challenger}) after {timeout_s:.0f} s"
        ))

    def live_traffic(self, day: int, rows: int, *, drifted: bool) -> None:
        store = open_store(self.platform.settings.object_store_url, self.platform.settings)
        products, images = catalogue_feed.held_out(store, f"{LIVE_PREFIX}/day-{day}", self.story.live(day, rows, drifted))
        summary = send_traffic(self.stack.serving_url, products, images, feedback_share=1.0, seed=self.story.seed + day)
        self.timeline.traffic.append({"day": day, **summary.as_dict()})
        time.sleep(self.platform.settings.serving.log_flush_s + 1.0)  # the prediction log reaches the database

    def work_review_queue(self, day: int) -> None:
        """Two reviewers label the top of the review queue (the catalogue's own labels as the truth, 5% slips);
        their labels reach feedback now and the next ingestion's snapshot through the labelled-products table."""
        settings = self.platform.settings
        products = load_products(self.platform.store, latest_snapshot_id(self.platform.engine))
        truth = dict(zip(products["productid"].astype(int), products["prdtypecode"].astype(int), strict=True))
        for i, (reviewer, token) in enumerate(sorted(settings.review.reviewers().items())):
            counts = simulate_reviewers(self.stack.serving_url, reviewer, token, truth, limit=self.story.reviewed_per_reviewer,
                                        error_rate=0.05, seed=self.story.seed + day * 10 + i)
            self.timeline.reviews.append({"day": day, **counts})
            self.timeline.notes.append(
                f"day {day}: reviewer {reviewer} labelled {counts['labelled']} products of the review queue "
                f"({counts['agreed_with_model']} agreeing with the model, {counts['wrong']} slips)"
            )

    # --- the story ----------------------------------------------------------------------------------
    def close(self) -> None:
        self.client.close()

    def run(self) -> Timeline:
        self.start()
        self.day0()
        self.nightly(1, drifted=False)
        self.stack.start_serving()
        self.live_traffic(1, self.story.live_rows, drifted=False)
        for day in (2, 3, 4):
            self.nightly(day, drifted=True)
        aliases = self.platform_aliases()
        if aliases["challenger"]:
            self.wait_served(champion=aliases["champion"], challenger=aliases["challenger"])
        self.nightly(5, drifted=True)
        self.live_traffic(5, self.story.ab_live_rows, drifted=True)
        self.work_review_queue(5)
        self.trigger(5, "evaluate_ab_test", 6)
        self.day6()
        self.record_clock_runs(DAYS - 1, wait=True)
        return self.timeline

    def day0(self) -> None:
        self.arrive(0, drifted=False)
        self.trigger(0, "ingest_products", 1)
        self.trigger(0, "retrain_classifier", 3, conf={"snapshot_id": None, "modalities": "champion",
                                                       "reason": "first model of the catalogue", "force": False})

    def nightly(self, day: int, *, drifted: bool) -> None:
        """01:00 ingestion (scoring follows its asset event), 04:00 drift check (an alert starts a retrain)."""
        self.arrive(day, drifted=drifted)
        self.trigger(day, "ingest_products", 1)
        self.trigger(day, "monitor_drift", 4)

    def day6(self) -> None:
        settings = self.platform.settings
        store = open_store(settings.object_store_url, settings)
        noisy = [replace(spec, drift=replace(spec.drift, label_noise=BAD_EXPORT_NOISE)) for spec in self.batches]
        catalogue_feed.relabel(store, settings.ingest.catalogue_prefix, BAD_EXPORT_PREFIX, noisy)
        self.timeline.notes.append(f"day 6: a partner's export of the same products with {BAD_EXPORT_NOISE:.0%} of the labels wrong")
        ingest = self.trigger(6, "ingest_products", 1, conf={"source": join_url(settings.object_store_url, BAD_EXPORT_PREFIX),
                                                             "labelled_table": True})
        snapshot = (ingest.results.get("ingest") or {}).get("snapshot_id")
        self.trigger(6, "retrain_classifier", 3, conf={"snapshot_id": snapshot, "modalities": "champion",
                                                       "reason": "retrain on the partner's export", "force": True})
        self.trigger(6, "train_text_model", 5, conf={"snapshot_id": None, "reason": "an analyst's text-only baseline"})
        self.trigger(6, "guard_champion", 7, 15)


def story_environment(home: Path, mlflow_url: str) -> dict[str, str]:
    """The platform's settings for a week compressed into minutes (every other setting keeps its default).

    - the tiny vision profile with one fine-tuning epoch: three CPU trainings fit in the run;
    - a 48-hour retraining cool-down instead of a week: day 4's alert trains, day 5's is refused;
    - 30% of traffic to the challenger and 100 labels per arm: a decision within one simulated day;
    - serving re-reads the aliases every 2 s, so it follows each promotion at once;
    - two reviewers with tokens of this run, the review queue's cache off (each label shows at once);
    - a confidence-drift threshold of 0.35: the tiny CPU models, trained for minutes, are far less sure of
      themselves than the seed's, so its 0.75 would alert on day 1; the data-drift rule is the seed's.
    """
    return {
        "RAKUTEN_HOME": str(home),
        "RAKUTEN_MLFLOW_TRACKING_URI": mlflow_url,
        "RAKUTEN_VISION_PROFILE": "tiny",
        "RAKUTEN_VISION_MAX_EPOCHS": "1",
        "RAKUTEN_RETRAIN_COOLDOWN_HOURS": "48",
        "RAKUTEN_AB_CHALLENGER_SHARE": "0.3",
        "RAKUTEN_AB_MIN_SAMPLES_PER_ARM": "100",
        "RAKUTEN_SERVING_POLL_INTERVAL_S": "2",
        "RAKUTEN_CONFIDENCE_DRIFT_THRESHOLD": "0.35",
        # the review queue's two simulated reviewers; tokens and the cookie key are made for this run only
        "RAKUTEN_REVIEW_REVIEWER_TOKENS": ",".join(f"{name}:{secrets.token_urlsafe(16)}" for name in REVIEWERS),
        "RAKUTEN_REVIEW_SESSION_SECRET": secrets.token_urlsafe(32),
        "RAKUTEN_REVIEW_QUEUE_CACHE_S": "0",
    }
