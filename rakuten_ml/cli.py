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


def _emit(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str, ensure_ascii=False))


def _platform(**overrides: Any) -> Any:
    from rakuten_ml.platform import Platform

    return Platform.from_env(**overrides)


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
    platform.engine  # noqa: B018 - creating the engine creates the tables
    if with_labelled_products:
        platform.init_labelled_products()
    _emit({"database": platform.engine.url.render_as_string(hide_password=True), "status": "ready"})


@app.command("ingest")
def ingest_cmd(
    source: Annotated[str | None, typer.Option(help="Catalogue folder or s3://bucket/prefix (default: the platform catalogue)")] = None,
    labelled_table: Annotated[bool, typer.Option("--labelled-table/--no-labelled-table", help="Also read the labelled-products table")] = True,
) -> None:
    """Validate the sources into a content-addressed snapshot; bad rows go to quarantine."""
    _emit(run_ingest(source=source, use_labelled_table=labelled_table))


def run_ingest(*, source: str | None = None, use_labelled_table: bool = True) -> dict[str, Any]:
    from rakuten_ml.data.ingest import ingest
    from rakuten_ml.storage.object_store import open_store

    platform = _platform()
    settings = platform.settings
    source_store = open_store(source or settings.catalogue_url, settings, create=False)
    result = ingest(
        source_store=source_store,
        source_prefix="",
        target_store=platform.store,
        engine=platform.engine,
        labelled_engine=platform.engine if use_labelled_table and settings.labelled_products_table else None,
        labelled_table=settings.labelled_products_table or None,
        require_image=settings.image_policy == "require",
        x_file=settings.x_file,
        y_file=settings.y_file,
        image_folder=settings.image_folder,
    )
    return result.summary()


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
) -> None:
    """Train on a snapshot, evaluate, log to MLflow and register a new model version."""
    from rakuten_ml.training.train import train_and_register

    result = train_and_register(_platform(), snapshot_id=snapshot, modalities=[m.strip() for m in modalities.split(",") if m.strip()], reason=reason)
    _emit(result.summary())


@app.command("score")
def score_cmd(
    snapshot: Annotated[str | None, typer.Option(help="Snapshot id (default: latest)")] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: champion alias, else newest)")] = None,
    run_id: Annotated[str | None, typer.Option(help="Run id; rerunning the same id overwrites its predictions")] = None,
) -> None:
    """Score a snapshot's products and upsert the predictions."""
    from rakuten_ml.registry.resolve import resolve_model
    from rakuten_ml.scoring.batch import score_products

    platform = _platform()
    model = resolve_model(platform.settings, version=version)
    result = score_products(platform, run_id=run_id or f"manual-{uuid.uuid4().hex[:12]}", snapshot_id=snapshot, model=model)
    _emit(result.summary())


def run() -> None:
    """Entry point that turns the platform's typed errors into one clear line and exit code 2."""
    try:
        app()
    except RakutenError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    run()
