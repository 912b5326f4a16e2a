"""Alembic environment of the platform's database: run by :func:`rakuten_ml.storage.migrations.upgrade`
(``rakuten-ml db upgrade``) on a connection it passes in, never on a URL read from a file."""

from __future__ import annotations

from alembic import context

from rakuten_ml.storage.database import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
