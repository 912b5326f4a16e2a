"""``rakuten-ml``: the command line every DAG task also runs, so each step can be run by hand."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import typer

from rakuten_ml.errors import ConfigurationError, RakutenError

# Exit codes: 0 done; 1 the platform could not do it (a service down, data missing: fix that, rerun);
# 2 the command or a setting is wrong (click's own usage errors exit 2 as well).
EXIT_RUNTIME_ERROR = 1
EXIT_USAGE_ERROR = 2

# Plain click errors (no rich panel): a usage mistake ends in one "Error: ..." line that says what to fix.
PLAIN: dict[str, Any] = {"rich_markup_mode": None, "pretty_exceptions_enable": False}
app = typer.Typer(help="Rakuten catalogue MLOps platform", no_args_is_help=True, **PLAIN)
db_app = typer.Typer(help="Platform database", no_args_is_help=True, **PLAIN)
snapshots_app = typer.Typer(help="Dataset snapshots", no_args_is_help=True, **PLAIN)
app.add_typer(db_app, name="db")
app.add_typer(snapshots_app, name="snapshots")
registry_app = typer.Typer(help="Model registry: aliases, promotion, rollback, audit history", no_args_is_help=True, **PLAIN)
app.add_typer(registry_app, name="registry")
drift_app = typer.Typer(help="Drift monitoring", no_args_is_help=True, **PLAIN)
app.add_typer(drift_app, name="drift")


def _emit(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str, ensure_ascii=False))


def _platform(**overrides: Any) -> Any:
    from rakuten_ml.resources import Platform

    return Platform.ready(**overrides)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command("generate-catalogue")
def generate_catalogue_cmd(
    rows: Annotated[int, typer.Option(min=1, help="Number of products")] = 5000,
    images: Annotated[int | None, typer.Option(min=0, help="Number of images (default: one per row)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same catalogue")] = 42,
    out: Annotated[str | None, typer.Option(help="Target folder or s3://bucket/prefix (default: the platform catalogue)")] = None,
    class_prior_shift: Annotated[float, typer.Option(min=0.0, max=1.0, help="Drift: move this share of the class prior")] = 0.0,
    vocabulary_shift: Annotated[float, typer.Option(min=0.0, max=1.0, help="Drift: share of words swapped for new ones")] = 0.0,
    brightness_shift: Annotated[float, typer.Option(min=-1.0, max=1.0, help="Drift: photos darker (<0) or brighter (>0)")] = 0.0,
    colour_shift: Annotated[float, typer.Option(min=0.0, max=1.0, help="Drift: strength of a colour cast on the photos")] = 0.0,
    missing_description_rate: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Share of products without a description (default: the challenge's 35%)")
    ] = None,
    label_noise: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of labels replaced by another class")] = 0.0,
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
def snapshots_show(snapshot_id: Annotated[str, typer.Argument(help="A snapshot id (`rakuten-ml snapshots list`)")]) -> None:
    from dataclasses import asdict

    from rakuten_ml.data.snapshot import read_manifest

    _emit(asdict(read_manifest(_platform().store, snapshot_id)))


# One name per concept, as the DAGs' trigger forms spell it (snapshot_id, model_version); the older
# option names stay accepted.
SnapshotOption = Annotated[
    str | None, typer.Option("--snapshot-id", "--snapshot", help="Snapshot id, as `rakuten-ml snapshots list` shows it (default: latest)")
]
ModelVersionOption = Annotated[
    str | None, typer.Option("--model-version", "--version", help="Registered model version (default: the champion, else the newest)")
]


@app.command("train")
def train_cmd(
    snapshot_id: SnapshotOption = None,
    modalities: Annotated[
        Literal["text", "text+image", "champion", "text,image"],
        typer.Option(help="What to train, as the retrain form offers it (champion: the champion's; text,image = text+image)"),
    ] = "text",
    reason: Annotated[str, typer.Option(help="Why this training runs (recorded on the model)")] = "manual",
    vision_profile: Annotated[
        Literal["full", "tiny"] | None, typer.Option(help="full (224 px, seed backbones) or tiny (CPU minutes); default: settings")
    ] = None,
    weights: Annotated[list[str] | None, typer.Option("--weights", help="Local weights of a vision member: MEMBER=PATH (repeatable)")] = None,
) -> None:
    """Train on a snapshot, evaluate, log to MLflow and register a new model version."""
    from rakuten_ml.training.modalities import resolve_modalities
    from rakuten_ml.training.train import train_and_register

    overrides = {"vision_profile": vision_profile, "vision_weights": ",".join(weights) if weights else None}
    platform = _platform(**overrides)
    choice = "text+image" if modalities == "text,image" else modalities
    result = train_and_register(platform, snapshot_id=snapshot_id, modalities=resolve_modalities(platform.settings, choice),
                                reason=reason)
    _emit(result.summary())


@app.command("score")
def score_cmd(
    snapshot_id: SnapshotOption = None,
    model_version: ModelVersionOption = None,
    run_id: Annotated[str | None, typer.Option(help="Run id; rerunning the same id overwrites its predictions")] = None,
) -> None:
    """Score a snapshot's products and upsert the predictions; an existing --run-id resumes on its recorded snapshot and model."""
    from rakuten_ml.data.snapshot import read_manifest
    from rakuten_ml.registry.resolve import resolve_model
    from rakuten_ml.scoring.batch import recorded_run, score_products

    platform = _platform()
    if snapshot_id:
        read_manifest(platform.store, snapshot_id)  # a wrong id fails here, before the registry is asked for a model
    run_id = run_id or f"manual-{uuid.uuid4().hex[:12]}"
    resuming = recorded_run(platform, run_id) is not None
    # a resume keeps the model the run recorded: re-resolving the champion could swap it mid-run
    model = None if resuming and model_version is None else resolve_model(platform.settings, version=model_version)
    result = score_products(platform, run_id=run_id, snapshot_id=snapshot_id, model=model)
    _emit(result.summary())


@drift_app.command("check")
def drift_check_cmd(
    date: Annotated[
        datetime | None,
        typer.Option("--date", formats=["%Y-%m-%d"], help="Check date YYYY-MM-DD: the window ends at its midnight (default: now)"),
    ] = None,
    window_days: Annotated[int | None, typer.Option(min=1, help="Days of scored products to compare (default: settings)")] = None,
    model_version: Annotated[
        str | None, typer.Option("--model-version", "--version", help="Version to check (default: the one with most predictions)")
    ] = None,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write the evidently HTML report")] = True,
) -> None:
    """Run the daily drift checks (KS, KL, confidence, concept), store them and refresh the Prometheus textfile."""
    _emit(run_drift_check(check_date=date.date() if date else None, window_days=window_days,
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
    version: Annotated[str, typer.Argument(help="The version to make champion (`rakuten-ml registry status` lists them)")],
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
    limit: Annotated[int, typer.Option(min=1, help="Newest events to list")] = 50,
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
def registry_evaluate_ab_cmd(
    actor: ActorOption = None,
    apply: Annotated[bool, typer.Option("--apply/--dry-run", help="Move the aliases as decided, or only report the decision")] = True,
) -> None:
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
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8000,
    workers: Annotated[int | None, typer.Option(min=1, help="uvicorn worker processes (default: RAKUTEN_SERVING_WORKERS)")] = None,
) -> None:
    """Run the prediction API (serving.app:app) under uvicorn."""
    from serving.app import run_server

    run_server(host=host, port=port, workers=workers)


def settings_error_message(exc: Any) -> str:
    """A pydantic validation error of the settings as one line: each variable, what it holds and what it needs."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ())) or "settings"
        given = f" (it is {error['input']!r})" if "input" in error and not isinstance(error["input"], dict) else ""
        problems.append(f"{where}{given}: {error.get('msg', 'invalid')}")
    return f"invalid setting: {'; '.join(problems)}; fix the RAKUTEN_* variable (docs/settings.md lists them all)"


def run() -> None:
    """Entry point: the platform's typed errors become one clear line, never a traceback.

    Exit code 2 for a wrong command or setting (as click's usage errors), 1 when the platform could not
    do the job (a service down, data missing): a script can tell "fix the call" from "retry later".
    A database connection lost where no step translated it is still one line.
    """
    from pydantic import ValidationError

    from rakuten_ml.storage.database import CONNECTION_ERRORS, driver_message

    try:
        app()
    except ValidationError as exc:
        typer.echo(f"error: {settings_error_message(exc)}", err=True)
        raise SystemExit(EXIT_USAGE_ERROR) from None
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE_ERROR) from None
    except RakutenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_RUNTIME_ERROR) from None
    except CONNECTION_ERRORS as exc:
        typer.echo(
            f"error: the database connection was lost ({driver_message(exc)}); "
            "check that the server is running, then rerun the command: every command is safe to rerun",
            err=True,
        )
        raise SystemExit(EXIT_RUNTIME_ERROR) from None


if __name__ == "__main__":
    run()
