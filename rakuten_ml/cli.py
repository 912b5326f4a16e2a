"""``rakuten-ml``: the command line every DAG task also runs, so each step can be run by hand."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Annotated, Any

import typer

from rakuten_ml.errors import RakutenError

app = typer.Typer(help="Rakuten catalogue MLOps platform", no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Platform database", no_args_is_help=True)
snapshots_app = typer.Typer(help="Dataset snapshots", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(snapshots_app, name="snapshots")
registry_app = typer.Typer(help="Model registry: aliases, promotion, rollback, audit history", no_args_is_help=True)
app.add_typer(registry_app, name="registry")
drift_app = typer.Typer(help="Drift monitoring", no_args_is_help=True)
app.add_typer(drift_app, name="drift")


def _emit(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str, ensure_ascii=False))


def _platform(**overrides: Any) -> Any:
    from rakuten_ml.resources import Platform

    return Platform.ready(**overrides)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command("generate-catalogue")
def generate_catalogue_cmd(
    rows: Annotated[int, typer.Option(min=1, help="Number of products")] = 5000,
    images: Annotated[int | None, typer.Option(min=0, help="Number of images (default: one per row)")] = None,
    seed: Annotated[int, typer.Option()] = 42,
    out: Annotated[str | None, typer.Option(help="Target folder or s3://bucket/prefix (default: the platform catalogue)")] = None,
    class_prior_shift: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
    vocabulary_shift: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
    brightness_shift: Annotated[float, typer.Option(min=-1.0, max=1.0)] = 0.0,
    colour_shift: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
    missing_description_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    label_noise: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
) -> None:
    """Write a synthetic catalogue in the challenge's exact layout (X/Y CSVs + image_train/)."""
    from rakuten_ml.catalogue.generator import CatalogueSpec, DriftSpec, generate_catalogue
    from rakuten_ml.storage.object_store import open_store

    platform = _platform()
    store = open_store(out or platform.settings.catalogue_url, platform.settings)
    drift = DriftSpec(
        class_prior_shift=class_prior_shift,
        vocabulary_shift=vocabulary_shift,
        brightness_shift=brightness_shift,
        colour_shift=colour_shift,
        missing_description_rate=missing_description_rate,
        label_noise=label_noise,
    )
    summary = generate_catalogue(store, "", CatalogueSpec(rows=rows, images=images, seed=seed, drift=drift))
    _emit({"catalogue": store.url, "rows": summary.rows, "images": summary.images})


@db_app.command("init")
def db_init(with_labelled_products: Annotated[bool, typer.Option(help="Also create the labelled-products table")] = True) -> None:
    """Create the platform tables (idempotent)."""
    platform = _platform()
    if with_labelled_products:
        platform.init_labelled_products()
    _emit({"database": platform.engine.url.render_as_string(hide_password=True), "status": "ready"})


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Option(help="Target schema revision")] = "head") -> None:
    """Apply the schema migrations this version ships (idempotent; a pre-migration database is stamped first)."""
    from rakuten_ml.resources import Platform
    from rakuten_ml.storage.schema import upgrade_database

    _emit(upgrade_database(Platform.from_env().engine, revision))


@app.command("ingest")
def ingest_cmd(
    source: Annotated[str | None, typer.Option(help="Catalogue folder or s3://bucket/prefix (default: the platform catalogue)")] = None,
    labelled_table: Annotated[bool, typer.Option("--labelled-table/--no-labelled-table", help="Also read the labelled-products table")] = True,
    run_id: Annotated[str | None, typer.Option(help="Name of this run's record; rerunning an id replaces its record (default: a new id)")] = None,
) -> None:
    """Validate the sources into a content-addressed snapshot; bad rows go to quarantine."""
    _emit(run_ingest(source=source, use_labelled_table=labelled_table, run_id=run_id))


def run_ingest(*, source: str | None = None, use_labelled_table: bool = True, run_id: str | None = None) -> dict[str, Any]:
    from rakuten_ml.jobs.ingestion import run_ingest as ingest_job

    return ingest_job(source=source, use_labelled_table=use_labelled_table, run_id=run_id)


@snapshots_app.command("list")
def snapshots_list() -> None:
    from rakuten_ml.data.snapshot import list_snapshots

    _emit(list_snapshots(_platform().engine))


@snapshots_app.command("show")
def snapshots_show(snapshot_id: str) -> None:
    from dataclasses import asdict

    from rakuten_ml.data.snapshot import read_manifest

    _emit(asdict(read_manifest(_platform().store, snapshot_id)))


@app.command("train")
def train_cmd(
    snapshot: Annotated[str | None, typer.Option(help="Snapshot id (default: latest)")] = None,
    modalities: Annotated[str, typer.Option(help="Comma-separated: text,image")] = "text",
    reason: Annotated[str, typer.Option(help="Why this training runs (recorded on the model)")] = "manual",
    vision_profile: Annotated[str | None, typer.Option(help="full (224 px, seed backbones) or tiny (CPU minutes)")] = None,
    weights: Annotated[list[str] | None, typer.Option("--weights", help="Local weights of a vision member: MEMBER=PATH (repeatable)")] = None,
) -> None:
    """Train on a snapshot, evaluate, log to MLflow and register a new model version."""
    from rakuten_ml.training.train import train_and_register

    overrides = {"vision_profile": vision_profile, "vision_weights": ",".join(weights) if weights else None}
    result = train_and_register(_platform(**overrides), snapshot_id=snapshot, modalities=[m.strip() for m in modalities.split(",") if m.strip()], reason=reason)
    _emit(result.summary())


@app.command("score")
def score_cmd(
    snapshot: Annotated[str | None, typer.Option(help="Snapshot id (default: latest)")] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: champion alias, else newest)")] = None,
    run_id: Annotated[str | None, typer.Option(help="Run id; rerunning the same id overwrites its predictions")] = None,
) -> None:
    """Score a snapshot's products and upsert the predictions; an existing --run-id resumes on its recorded snapshot and model."""
    from rakuten_ml.registry.resolve import resolve_model
    from rakuten_ml.scoring.batch import recorded_run, score_products

    platform = _platform()
    run_id = run_id or f"manual-{uuid.uuid4().hex[:12]}"
    resuming = recorded_run(platform, run_id) is not None
    # a resume keeps the model the run recorded: re-resolving the champion could swap it mid-run
    model = None if resuming and version is None else resolve_model(platform.settings, version=version)
    result = score_products(platform, run_id=run_id, snapshot_id=snapshot, model=model)
    _emit(result.summary())


@drift_app.command("check")
def drift_check_cmd(
    date: Annotated[str | None, typer.Option("--date", help="Check date YYYY-MM-DD: the window ends at its midnight (default: now)")] = None,
    window_days: Annotated[int | None, typer.Option(min=1, help="Days of scored products to compare (default: settings)")] = None,
    model_version: Annotated[str | None, typer.Option(help="Version to check (default: the one with most predictions)")] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the evidently HTML report")] = True,
) -> None:
    """Run the daily drift checks (KS, KL, confidence, concept), store them and refresh the Prometheus textfile."""
    from datetime import date as date_type

    _emit(run_drift_check(check_date=date_type.fromisoformat(date) if date else None, window_days=window_days,
                          model_version=model_version, write_report=report))


def run_drift_check(**kwargs: Any) -> dict[str, Any]:
    from rakuten_ml.jobs.monitoring import run_drift_check as drift_job

    return drift_job(**kwargs)


ActorOption = Annotated[str | None, typer.Option("--actor", help="Who does this (recorded in the audit); default $USER")]
ReasonOption = Annotated[str, typer.Option(help="Why (recorded in the audit and on the version)")]


@registry_app.command("status")
def registry_status_cmd(limit: Annotated[int, typer.Option(min=1, help="Newest versions to list")] = 10) -> None:
    """Where champion / challenger / previous-champion point, the newest versions and the last events."""
    from rakuten_ml.promotion.service import registry_status

    _emit(registry_status(_platform(), limit=limit))


@registry_app.command("promote")
def registry_promote_cmd(
    version: str,
    actor: ActorOption = None,
    reason: ReasonOption = "manual promotion",
    expect_champion: Annotated[str | None, typer.Option(help="Fail unless the champion is still this version")] = None,
) -> None:
    """Make VERSION the champion (old champion -> previous-champion) through the locked, audited path."""
    from rakuten_ml.promotion.aliases import ANY, promote
    from rakuten_ml.promotion.audit import Actor

    move = promote(_platform(), version, actor=Actor.current(actor), reason=reason, expected_champion=expect_champion or ANY)
    _emit(move.summary())


@registry_app.command("rollback")
def registry_rollback_cmd(actor: ActorOption = None, reason: ReasonOption = "manual rollback") -> None:
    """Move champion back to previous-champion (a no-op when there is none)."""
    from rakuten_ml.promotion.aliases import rollback
    from rakuten_ml.promotion.audit import Actor

    _emit(rollback(_platform(), actor=Actor.current(actor), reason=reason).summary())


@registry_app.command("history")
def registry_history_cmd(
    limit: Annotated[int, typer.Option(min=1)] = 50,
    action: Annotated[str | None, typer.Option(help="Only this action (promote, rollback, gate_fail...)")] = None,
) -> None:
    """The promotion audit trail, newest first."""
    from rakuten_ml.promotion.audit import history

    platform = _platform()
    _emit(history(platform.engine, platform.settings.registered_model_name, limit=limit, action=action))


@registry_app.command("gate")
def registry_gate_cmd(version: Annotated[str | None, typer.Argument(help="Version to gate (default: newest not yet onboarded)")] = None, actor: ActorOption = None) -> None:
    """Run a new version through the offline gate: champion if none, challenger if it passes."""
    from rakuten_ml.promotion.audit import Actor
    from rakuten_ml.promotion.service import onboard_latest, onboard_version

    platform, who = _platform(), Actor.current(actor)
    outcome = onboard_version(platform, version, actor=who) if version else onboard_latest(platform, actor=who)
    _emit(None if outcome is None else outcome.summary())


@registry_app.command("evaluate-ab")
def registry_evaluate_ab_cmd(actor: ActorOption = None, apply: Annotated[bool, typer.Option("--apply/--dry-run")] = True) -> None:
    """Decide the running A/B test from labelled feedback; promote or reject the challenger."""
    from rakuten_ml.promotion.ab_evaluation import evaluate_ab_test
    from rakuten_ml.promotion.audit import Actor

    _emit(evaluate_ab_test(_platform(), actor=Actor.current(actor), apply=apply).summary())


@registry_app.command("guard")
def registry_guard_cmd(
    actor: ActorOption = None,
    error_rate: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Serving error rate of the last window")] = None,
    p95_latency_ms: Annotated[float | None, typer.Option(min=0.0, help="Serving P95 latency of the last window")] = None,
) -> None:
    """Check the champion's rolling accuracy (and given error rate/latency); roll back when degraded."""
    from rakuten_ml.promotion.audit import Actor
    from rakuten_ml.promotion.rollback import guard_champion

    outcome = guard_champion(_platform(), actor=Actor.current(actor), error_rate=error_rate, p95_latency_ms=p95_latency_ms)
    _emit(outcome.summary())


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 in a container)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int | None, typer.Option(min=1, help="uvicorn worker processes (default: RAKUTEN_SERVING_WORKERS)")] = None,
) -> None:
    """Run the prediction API (serving.app:app) under uvicorn."""
    from serving.app import run_server

    run_server(host=host, port=port, workers=workers)


def run() -> None:
    """Entry point that turns the platform's typed errors into one clear line and exit code 2.

    A database connection lost where no step translated it is still one line, not a traceback.
    """
    from rakuten_ml.storage.database import CONNECTION_ERRORS, driver_message

    try:
        app()
    except RakutenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except CONNECTION_ERRORS as exc:
        typer.echo(
            f"error: the database connection was lost ({driver_message(exc)}); "
            "check that the server is running, then rerun the command: every command is safe to rerun",
            err=True,
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    run()
