"""Wiring: the object store and database a job uses, built once from :class:`Settings`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.engine import Engine

from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import init_db, labelled_products_table, make_engine
from rakuten_ml.storage.object_store import ObjectStore, open_store


@dataclass
class Platform:
    settings: Settings

    @classmethod
    def from_env(cls, **overrides: object) -> Platform:
        return cls(Settings(**{k: v for k, v in overrides.items() if v is not None}))

    @cached_property
    def store(self) -> ObjectStore:
        self.settings.ensure_home()
        return open_store(self.settings.object_store_url, self.settings)

    @cached_property
    def engine(self) -> Engine:
        self.settings.ensure_home()
        engine = make_engine(self.settings.database_url)
        init_db(engine)
        return engine

    def init_labelled_products(self) -> None:
        """Create the labelled-products source table (embedded default and first deployments)."""
        if self.settings.labelled_products_table:
            table = labelled_products_table(self.settings.labelled_products_table)
            table.metadata.create_all(self.engine, checkfirst=True)
