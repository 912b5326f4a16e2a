"""Jobs of ``ingest_products`` (and of the retrain DAG's fresh snapshot): sources -> snapshot."""

from __future__ import annotations

from typing import Any

from rakuten_ml.jobs.context import JobContext, WithEvents
from rakuten_ml.orchestration import SNAPSHOT_ASSET_URI, snapshot_event_extra
from rakuten_ml.resources import Platform


def init_database(ctx: JobContext) -> str:
    """Bring the platform's schema up to date (migrations) and create the labelled-products table."""
    platform = Platform.ready()
    platform.init_labelled_products()
    return platform.engine.url.render_as_string(hide_password=True)


def run_ingest(*, source: str | None = None, use_labelled_table: bool = True, run_id: str | None = None) -> dict[str, Any]:
    """One ingest run on the configured sources (``source`` overrides the catalogue); its summary."""
    from rakuten_ml.data.ingest import ingest
    from rakuten_ml.storage.object_store import open_store

    platform = Platform.ready()
    settings = platform.settings
    result = ingest(
        source_store=open_store(source or settings.catalogue_url, settings, create=False),
        source_prefix="",
        target_store=platform.store,
        engine=platform.engine,
        policy=settings.ingest,
        labelled_engine=platform.engine if use_labelled_table else None,
        ingest_run_id=run_id,
    )
    return result.summary()


def ingest(ctx: JobContext) -> WithEvents:
    """The DAG's ingest: the run id names the ingest run (a retry replaces its record); emits the snapshot event."""
    summary = run_ingest(
        source=ctx.param("source"), use_labelled_table=bool(ctx.param("labelled_table", True)), run_id=ctx.run_id,
    )
    return WithEvents(summary, {SNAPSHOT_ASSET_URI: snapshot_event_extra(summary, ctx.as_of)})
