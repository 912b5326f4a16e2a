"""Wiring: the object store and database a job uses, built once from :class:`Settings`.

Reading :attr:`Platform.engine` or :attr:`Platform.store` only connects; the schema changes in one
explicit place, :meth:`Platform.prepare` (entry points: jobs, CLI, serving, `rakuten-ml db upgrade`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy.engine import Engine

from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import labelled_products_table, make_engine
from rakuten_ml.storage.object_store import ObjectStore, open_store


@dataclass
class Platform:
    settings: Settings
    _prepared: bool = field(default=False, init=False, repr=False, compare=False)

    @classmethod
    def from_env(cls, **overrides: Any) -> Platform:
        return cls(Settings(**{k: v for k, v in overrides.items() if v is not None}))

    @classmethod
    def ready(cls, **overrides: object) -> Platform:
        """:meth:`from_env`, its database brought to this version's schema: what every entry point opens."""
        return cls.from_env(**overrides).prepare()

    @cached_property
    def store(self) -> ObjectStore:
        self.settings.ensure_home()
        return open_store(self.settings.object_store_url, self.settings)

    @cached_property
    def engine(self) -> Engine:
        self.settings.ensure_home()
        return make_engine(self.settings.database_url)

    def prepare(self) -> Platform:
        """Apply this version's schema migrations once per object (Alembic; idempotent, serialised by a lock on
        PostgreSQL); a failure is raised again by the next call, which retries."""
        if not self._prepared:
            from rakuten_ml.storage.schema import upgrade_database

            upgrade_database(self.engine)
            self._prepared = True
        return self

    def init_labelled_products(self) -> None:
        """Create the labelled-products source table (embedded default and first deployments)."""
        if self.settings.ingest.labelled_products_table:
            table = labelled_products_table(self.settings.ingest.labelled_products_table)
            table.metadata.create_all(self.engine, checkfirst=True)
