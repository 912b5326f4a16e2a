"""One typed settings object for the whole platform, read from ``RAKUTEN_*`` environment variables.

Embedded defaults (SQLite, a local folder as object store, a local MLflow store under
``RAKUTEN_HOME``) need no server; pointing the URLs at PostgreSQL, S3 and an MLflow
server runs the same code against real infrastructure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_", extra="ignore")

    home: Path = Field(default=Path("var"), description="Root folder of every embedded default store.")
    database_url: str = Field(default="", description="SQLAlchemy URL of the platform database.")
    object_store_url: str = Field(default="", description="s3://bucket/prefix or a local folder path.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint (MinIO, moto); None = AWS.")
    s3_region: str = "us-east-1"
    mlflow_tracking_uri: str = Field(default="", description="MLflow tracking URI (server URL or sqlite:///...).")
    mlflow_experiment: str = "rakuten-product-classifier"
    registered_model_name: str = "rakuten-product-classifier"

    catalogue_prefix: str = Field(default="raw/catalogue", description="Where raw catalogue files live in the store.")
    x_file: str = "X_train_update.csv"
    y_file: str = "Y_train_CVw08PX.csv"
    image_folder: str = "image_train"
    labelled_products_table: str = Field(
        default="labelled_products", description="PostgreSQL table of human-labelled products ('' disables it)."
    )
    image_policy: Literal["require", "optional"] = Field(
        default="require",
        description="require: a row whose image is absent is quarantined; optional: it is kept as text-only. "
        "A present but undecodable image is always quarantined.",
    )

    random_seed: int = 42
    validation_share: float = Field(default=0.2, gt=0.0, lt=0.5)
    confidence_threshold: float = Field(default=0.80, ge=0.0, le=1.0, description="Seed: auto vs review.")
    image_weight: float = Field(default=0.6, ge=0.0, le=1.0, description="Late fusion weight of the image model.")

    ab_challenger_share: float = Field(default=0.05, ge=0.0, le=0.5, description="Seed: 5% of traffic to the challenger.")
    ab_salt: str = Field(default="rakuten-ab-v1", description="Change it to reshuffle who sees the challenger.")

    api_admin_token: SecretStr | None = None

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        home = self.home.expanduser().resolve()
        self.home = home
        if not self.database_url:
            self.database_url = f"sqlite:///{home / 'rakuten.db'}"
        if not self.object_store_url:
            self.object_store_url = str(home / "object-store")
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
        return self

    @property
    def mlflow_artifact_location(self) -> str | None:
        """Local artifact root when MLflow runs embedded; a server decides its own otherwise."""
        if self.mlflow_tracking_uri.startswith("sqlite:"):
            return (self.home / "mlartifacts").as_uri()
        return None

    @property
    def catalogue_url(self) -> str:
        return join_url(self.object_store_url, self.catalogue_prefix)

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)


def join_url(base: str, *parts: str) -> str:
    """Join object-store URL segments with single slashes."""
    cleaned = [base.rstrip("/")] + [p.strip("/") for p in parts if p and p.strip("/")]
    return "/".join(cleaned)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags, tests) taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
