"""One typed settings object for the whole platform, read from ``RAKUTEN_*`` environment variables.

Embedded defaults (SQLite, a local folder as object store, a local MLflow store under
``RAKUTEN_HOME``) need no server; pointing the URLs at PostgreSQL, S3 and an MLflow
server runs the same code against real infrastructure.

Settings come in sections, one per concern (``settings.drift``, ``settings.gate``, ...). A section is the
single home of its defaults: the pure functions it governs take it as an argument instead of repeating
them. A section field ``drift.ks_p_value`` reads ``RAKUTEN_DRIFT_KS_P_VALUE``; the few whose variable
predates the sections keep it (``drift.concept_max_drop`` reads ``RAKUTEN_CONCEPT_MAX_DROP``).
:func:`variable_names` lists every variable with its field; ``Settings(drift_ks_p_value=0.01)`` and
:meth:`Settings.replace` take the same flat names.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from rakuten_ml.data.limits import MAX_IMAGE_SIDE

log = logging.getLogger(__name__)

ENV_PREFIX = "RAKUTEN_"


def _legacy(name: str) -> str:
    """The variable of a section field that predates the sections (no section prefix)."""
    return ENV_PREFIX + name.upper()


class Section(BaseSettings):
    """One concern's settings; frozen, so a section handed to a function cannot be changed under it."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    title: ClassVar[str] = ""

    @classmethod
    def variables(cls) -> Iterator[tuple[str, str, FieldInfo]]:
        """(variable, field name, field) of every field of this section."""
        prefix = cls.model_config.get("env_prefix", "")
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):  # the documented variable first, then older names still read
                alias = alias.choices[0]
            yield (alias if isinstance(alias, str) else (prefix + name).upper()), name, info

    @classmethod
    def older_variables(cls) -> Iterator[str]:
        """Variables read after the documented one (kept working when a setting was renamed)."""
        for info in cls.model_fields.values():
            if isinstance(info.validation_alias, AliasChoices):
                yield from (c for c in info.validation_alias.choices[1:] if isinstance(c, str) and c.startswith(ENV_PREFIX))


class IngestSettings(Section):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_INGEST_")
    title: ClassVar[str] = "Ingestion: where the catalogue is and what a row must satisfy"

    catalogue_prefix: str = Field(
        default="raw/catalogue", validation_alias=_legacy("catalogue_prefix"), description="Where raw catalogue files live in the store."
    )
    x_file: str = Field(
        default="X_train_update.csv", validation_alias=_legacy("x_file"), description="Product file of the catalogue (the challenge's name)."
    )
    y_file: str = Field(
        default="Y_train_CVw08PX.csv", validation_alias=_legacy("y_file"), description="Label file beside it, joined on the CSV index."
    )
    image_folder: str = Field(
        default="image_train", validation_alias=_legacy("image_folder"),
        description="Folder of `image_<imageid>_product_<productid>.jpg` photos.",
    )
    labelled_products_table: str = Field(
        default="labelled_products", validation_alias=_legacy("labelled_products_table"),
        description="PostgreSQL table of human-labelled products ('' disables it).",
    )
    image_policy: Literal["require", "optional"] = Field(
        default="require", validation_alias=_legacy("image_policy"),
        description="require: a row whose image is absent is quarantined; optional: it is kept as text-only. "
        "A present but undecodable image is always quarantined.",
    )
    max_image_side: int = Field(
        default=MAX_IMAGE_SIDE, ge=8,
        description="Widest and tallest image ingestion accepts, read from the header before any decode; a larger "
        "one is quarantined as image_too_large (decoding a 10,000 px PNG costs hundreds of MB). Default: "
        "serving's bound, so every ingested photo can also be served.",
    )
    max_encoding_error_share: float = Field(
        default=0.01, ge=0.0, le=1.0,
        description="Share of a CSV file's rows that may hold bytes that are not UTF-8: up to it (and always up to "
        "10 rows), those rows are quarantined as encoding_error and the rest ingested; beyond it the whole file is "
        "refused, naming its first bad lines, since it was exported in another encoding (cp1252, latin-1).",
    )


class TrainingSettings(Section):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_TRAINING_")
    title: ClassVar[str] = "Training: splits and the fused model's decision"

    validation_share: float = Field(
        default=0.2, gt=0.0, lt=0.5, validation_alias=_legacy("validation_share"),
        description="Stratified held-out share for validation and the gate.",
    )
    fusion_tune_share: float = Field(
        default=0.1, gt=0.0, lt=0.5, validation_alias=_legacy("fusion_tune_share"),
        description="Share of the training rows held out to early-stop vision and pick fusion weights.",
    )
    confidence_threshold: float = Field(
        default=0.80, ge=0.0, le=1.0, validation_alias=_legacy("confidence_threshold"),
        description="A prediction at least this confident is applied automatically; below it goes to review (the seed's 80%).",
    )
    image_weight: float = Field(
        default=0.6, ge=0.0, le=1.0, validation_alias=_legacy("image_weight"), description="Late fusion weight of the image model."
    )


class VisionSettings(Section):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_VISION_")
    title: ClassVar[str] = "Vision ensemble: members, weights, runtimes"

    profile: Literal["tiny", "full"] = Field(
        default="full", description="full: EfficientNet-B0 + ViT-S + ResNet-50 at 224 px; tiny: CPU-minutes profile (demo, tests)."
    )
    dino_weights: Path | None = Field(default=None, description="Local DINO ViT weights for the ViT member (no downloads).")
    max_epochs: int | None = Field(default=None, ge=1, description="Override the profile's fine-tuning epochs.")
    num_workers: int | None = Field(
        default=None, ge=0,
        description="DataLoader worker processes decoding images (training and batch scoring). Unset: 0 for "
        "training; batch scoring measures decoding against the networks at load and decodes in 1 worker beside "
        "them where decoding costs more (GPU: all cores but one, at most 8).",
    )
    cpu_bf16: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="bfloat16 autocast for the vision backbones on CPU (CUDA always uses fp16): auto = where the "
        "CPU runs bf16 natively (AVX-512 BF16, AMX; speed-ups in benchmarks/RESULTS.md); off = fp32.",
    )
    cpu_runtime: Literal["auto", "torch", "onnxruntime"] = Field(
        default="auto",
        description="Inference runtime of the vision networks on CPU: auto = ONNX Runtime for each network it makes "
        "at least 1.1x faster at the batch size in use, timed at load (measured gains: benchmarks/RESULTS.md); "
        "torch = eager PyTorch; onnxruntime = ONNX Runtime wherever the export is exact.",
    )
    cpu_int8: Literal["off", "on"] = Field(
        default="off",
        description="on = run the vision networks in int8 on CPU (ONNX Runtime static quantization calibrated on "
        "labelled validation photos kept with the model; measured gains in benchmarks/RESULTS.md), each only where "
        "its member's accuracy on other held-out labelled photos stays within 2 points of fp32's. Needs a model "
        "trained by this version.",
    )
    onnx_cache_dir: Path | None = Field(
        default=None,
        description="Folder of ONNX exports (and int8 models) keyed by the networks' weights, so that a restarted "
        "serving worker or scoring run skips the export; unset = <home>/cache/onnx. Share it between pods on a volume.",
    )
    onnx_cache_mb: int = Field(
        default=4096, ge=0, description="Size bound of that folder (least recently used exports go first); 0 = no cache.",
    )
    weights: str = Field(
        default="", description="Local weights per member, 'efficientnet=/w/effnet.pth,cnn-xgb=/w/resnet50.safetensors' (no downloads)."
    )
    members: str = Field(
        default="", description="Comma-separated subset of efficientnet,vit-mlp,cnn-xgb ('' = all three); e.g. skip fine-tuning on CPU."
    )


class ScoringSettings(Section):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_SCORING_")
    title: ClassVar[str] = "Nightly batch scoring"

    image_cache: bool = Field(
        default=True,
        description="Batch scoring reuses the image model's output for a photo (by SHA-256) that the same model "
        "version scored in an earlier run, at the same precision: the nightly run then only sends new photos "
        "through the backbones. Text and fusion are always recomputed.",
    )
    metrics_textfile: str = Field(
        default="", description="Prometheus textfile each finished scoring run rewrites ('' = $HOME/metrics/rakuten_scoring.prom)."
    )


class AirflowSettings(Section):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_AIRFLOW_")
    title: ClassVar[str] = "Airflow: queues and links to the UIs"

    gpu_queue: str = Field(
        default="gpu", min_length=1,
        validation_alias=AliasChoices("RAKUTEN_AIRFLOW_GPU_QUEUE", _legacy("scoring_queue")),
        description="Airflow queue of the GPU work: the nightly scoring's partitions and the training of image models "
        "(text-only training stays on `default`). Celery workers started with `-q gpu` take it; a CPU-only Celery "
        "deployment sets `default`; LocalExecutor ignores queues. Read when the DAG files are parsed.",
    )
    base_url: str = Field(
        default="http://localhost:8080",
        description="Airflow UI base URL: each registered MLflow version links back to the DAG run that trained it.",
    )
    mlflow_ui_url: str = Field(
        default="",
        description="MLflow UI base URL of Airflow's links to training runs and model versions; '' = the tracking URI "
        "when it is an http(s) server (no link for an embedded sqlite store).",
    )


class GateSettings(Section):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_GATE_")
    title: ClassVar[str] = "Offline gate: may a candidate become challenger?"

    f1_tolerance: float = Field(
        default=0.01, ge=0.0, le=1.0, description="A candidate may trail the champion's weighted F1 by this much on the same eval set."
    )
    class_guardrail: float = Field(
        default=0.05, ge=0.0, le=1.0, description="...and no class F1 may drop by more than this (weak classes reported apart)."
    )
    min_class_support: int = Field(
        default=10, ge=1, description="Classes with fewer eval rows are reported, not judged: one error would swing their F1."
    )


class ABSettings(Section):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_AB_")
    title: ClassVar[str] = "A/B test: traffic split and verdict"

    challenger_share: float = Field(default=0.05, ge=0.0, le=0.5, description="Seed: 5% of traffic to the challenger.")
    salt: str = Field(default="rakuten-ab-v1", description="Change it to reshuffle who sees the challenger.")
    min_samples_per_arm: int = Field(default=200, ge=1, description="No A/B verdict before each arm has this many labelled predictions.")
    max_samples_per_arm: int = Field(
        default=5000, ge=1, description="Challenger arm this large and still no significant difference: reject (keep the champion)."
    )
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5, description="One-sided significance level of each A/B test direction.")
    max_paired_labels: int = Field(
        default=20_000, ge=1,
        description="Labelled pairs (shadow scoring) this many and still no significant difference: reject (keep the champion).",
    )
    sequential: bool = Field(
        default=True,
        description="Decide with always-valid sequential tests (mixture SPRTs), valid however often the daily job looks; "
        "false = fixed-sample tests (z-test, exact McNemar), valid for one look only (docs/decisions.md).",
    )
    tau: float = Field(
        default=0.03, gt=0.0, le=1.0,
        description="Scale of the accuracy differences the split-traffic sequential test is tuned to (its normal mixture's standard deviation).",
    )
    paired_prior_concentration: float = Field(
        default=1.0, gt=0.0,
        description="Beta(a, a) mixture of the paired sequential test over the challenger's share of discordant pairs (1 = uniform).",
    )
    shadow_scoring: bool = Field(
        default=True,
        description="While a challenger exists, nightly scoring scores every product with both models (paired test, disagreement rate).",
    )


class RollbackSettings(Section):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_ROLLBACK_")
    title: ClassVar[str] = "Automatic rollback of a degrading champion"

    tolerance: float = Field(default=0.02, ge=0.0, le=1.0, description="Seed: roll back when accuracy < baseline - 2%.")
    window: int = Field(default=500, ge=1, description="The champion's last N labelled predictions make its rolling accuracy.")
    min_samples: int = Field(default=100, ge=1, description="Fewer labelled predictions: too noisy to roll back on.")
    max_error_rate: float = Field(default=0.05, ge=0.0, le=1.0, description="Serving error rate above this rolls back.")
    max_p95_latency_ms: float = Field(default=1000.0, gt=0.0, description="Seed: P95 latency < 1 s; above it rolls back.")


class DriftSettings(Section):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_DRIFT_")
    title: ClassVar[str] = "Drift monitoring: the production plan's rules (docs/production-plan.md)"

    ks_p_value: float = Field(default=0.05, gt=0.0, lt=1.0, description="Seed: a feature drifts when its KS p < 0.05.")
    feature_share: float = Field(
        default=0.3, ge=0.0, lt=1.0,
        description="A day drifts when at least this share of features has p < alpha, evidently's drift_share rule "
        "(multiple-testing control: 0.3 of ~13 features = 4, while no drift rarely gives 3).",
    )
    multiple_testing: Literal["share", "bonferroni"] = Field(
        default="share", description="How the per-feature KS tests make a day's verdict: a share of drifted features, or Bonferroni.",
    )
    consecutive_days: int = Field(default=3, ge=1, description="Seed: data-drift ALERT after 3 consecutive drifted days.")
    window_days: int = Field(default=1, ge=1, description="Days of scored products each daily data/prediction check sees.")
    min_rows: int = Field(default=100, ge=1, description="Fewer rows than this in a window: no verdict, not an alert.")
    prediction_kl_threshold: float = Field(
        default=0.1, gt=0.0, validation_alias=_legacy("prediction_kl_threshold"), description="Seed: KL(predicted || reference classes) > 0.1."
    )
    confidence_threshold: float = Field(
        default=0.75, ge=0.0, le=1.0, validation_alias=_legacy("confidence_drift_threshold"), description="Seed: mean confidence < 75%..."
    )
    confidence_window_days: int = Field(
        default=7, ge=1, validation_alias=_legacy("confidence_window_days"), description="...over one week."
    )
    concept_max_drop: float = Field(
        default=0.03, ge=0.0, le=1.0, validation_alias=_legacy("concept_max_drop"), description="Seed: accuracy > 3 points below validation."
    )
    concept_window_days: int = Field(
        default=30, ge=1, validation_alias=_legacy("concept_window_days"), description="Rolling window of labelled feedback (1% sample is sparse)."
    )
    concept_min_feedback: int = Field(
        default=200, ge=1, validation_alias=_legacy("concept_min_feedback"),
        description="Below this many labels the accuracy is too noisy to judge.",
    )
    concept_p_value: float = Field(
        default=0.05, gt=0.0, le=1.0, validation_alias=_legacy("concept_p_value"),
        description="The drop must also be significant (binomial test) at this level; 1.0 = the seed's plain rule.",
    )
    estimate_max_drop: float = Field(
        default=0.03, ge=0.0, le=1.0,
        description="Label-free: the champion's estimated accuracy on the scored catalogue this far below its validation accuracy is a drop.",
    )
    calibration_max_gap: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="The estimate is trusted unless accuracy on the labelled sample and mean confidence differ by more than this...",
    )
    calibration_p_value: float = Field(
        default=0.01, gt=0.0, le=1.0, description="...and that gap is significant at this level (Poisson-binomial test).",
    )
    calibration_min_labels: int = Field(
        default=100, ge=1, description="Fewer labels in the concept window: calibration is not checked and the estimate is not trusted.",
    )
    retrain_cooldown_hours: float = Field(
        default=168.0, ge=0.0, validation_alias=_legacy("retrain_cooldown_hours"),
        description="No second drift/scheduled retrain within this many hours of one that started (force overrides): "
        "a week lets the confidence window and an A/B test judge the new model first.",
    )
    metrics_textfile: str = Field(
        default="", description="Prometheus textfile the drift DAG writes ('' = $HOME/metrics/rakuten_drift.prom)."
    )


class ServingSettings(Section):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_SERVING_")
    title: ClassVar[str] = "Online serving: one process re-reads the aliases itself, so a promotion needs no restart"

    admin_token: SecretStr | None = Field(
        default=None, validation_alias=_legacy("api_admin_token"),
        description="Bearer token of the serving admin routes; unset = those routes answer 503.",
    )
    poll_interval_s: float = Field(default=30.0, gt=0.0, description="How often serving re-reads the champion/challenger aliases.")
    max_batch_size: int = Field(default=64, ge=1, le=1024, description="Most products one /v1/predict call may carry.")
    batch_max_products: int = Field(
        default=64, ge=1, le=1024,
        description="Most products the inference thread predicts in one call, across concurrent requests (1: no batching).",
    )
    batch_wait_ms: float = Field(
        default=10.0, ge=0.0, le=1000.0,
        description="How long a batch with images waits for more requests to share its image-model call; "
        "the wait ends early once every predict request in flight is in the batch "
        "(text-only batches never wait; 0: take what is queued).",
    )
    torch_threads: int = Field(
        default=0, ge=0, le=256,
        description="torch intra-op threads per serving worker (0: every CPU the container may use, its CPU limit "
        "or affinity, not the node's cores); "
        "`rakuten-ml serve` sets cores / workers so that workers do not oversubscribe the cores.",
    )
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes of `rakuten-ml serve`.")
    cache_enabled: bool = Field(default=False, description="Cache predictions in Redis by (model version, input hash).")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis of the prediction cache.")
    cache_ttl_s: int = Field(default=86_400, ge=1, description="A cached prediction expires after this many seconds.")
    cache_prefix: str = Field(default="rakuten:pred", min_length=1, description="Key prefix of cached predictions in Redis.")
    log_batch_size: int = Field(default=200, ge=1, description="prediction_log rows written per INSERT.")
    log_flush_s: float = Field(default=2.0, gt=0.0, description="Longest a logged prediction waits before its INSERT.")
    shadow_share: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="Share of live products (with a productid) the other model scores off the response path while a challenger "
        "is loaded (0 = no shadow scoring).",
    )
    shadow_queue_size: int = Field(
        default=64, ge=1,
        description="Requests waiting for shadow scoring, which runs only while the worker serves no predict request; "
        "beyond it (a saturated worker) shadow work is dropped (counted), never the client's.",
    )


def parse_reviewer_tokens(text: str) -> dict[str, str]:
    """``"name:token,name2:token2"`` -> {name: token}; a malformed entry is an error naming the variable."""
    tokens: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, token = entry.partition(":")
        if not sep or not name.strip() or not token.strip() or len(name.strip()) > 56:
            raise ValueError(f"RAKUTEN_REVIEW_REVIEWER_TOKENS: entry {name.strip()[:20]!r}... is not 'name:token' (name of at most 56 characters)")
        tokens[name.strip()] = token.strip()
    return tokens


class ReviewSettings(Section):
    model_config = SettingsConfigDict(env_prefix="RAKUTEN_REVIEW_")
    title: ClassVar[str] = "Human review queue: reviewers label the products the models are unsure of or disagree on"

    reviewer_tokens: SecretStr | None = Field(
        default=None,
        description="Reviewers and their login tokens, as 'name:token,name2:token2'; unset = the /review pages answer 503.",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs the reviewers' session cookies (keep it stable across restarts and workers); "
        "unset = the /review pages answer 503.",
    )
    page_size: int = Field(default=20, ge=1, le=200, description="Products one review queue page (and its JSON) lists.")
    rare_class_boost_cap: float = Field(
        default=5.0, ge=1.0,
        description="Most a rare predicted class multiplies a product's review priority by (inverse class frequency, capped).",
    )
    queue_cache_s: float = Field(
        default=10.0, ge=0.0,
        description="How long one serving process reuses the queue's prediction queries (a reviewer's own labels and skips are always read fresh).",
    )

    def reviewers(self) -> dict[str, str]:
        """{reviewer: token} from ``reviewer_tokens`` ({} when unset); a malformed entry is a ValueError naming the variable."""
        return parse_reviewer_tokens(self.reviewer_tokens.get_secret_value()) if self.reviewer_tokens is not None else {}

SECTIONS: dict[str, type[Section]] = {
    "ingest": IngestSettings,
    "training": TrainingSettings,
    "vision": VisionSettings,
    "scoring": ScoringSettings,
    "airflow": AirflowSettings,
    "gate": GateSettings,
    "ab": ABSettings,
    "rollback": RollbackSettings,
    "drift": DriftSettings,
    "serving": ServingSettings,
    "review": ReviewSettings,
}


class Settings(BaseSettings):
    """The platform's settings: where its stores are (top level), and one section per concern."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    home: Path = Field(default=Path("var"), description="Root folder of every embedded default store.")
    database_url: str = Field(default="", description="SQLAlchemy URL of the platform database.")
    object_store_url: str = Field(default="", description="s3://bucket/prefix or a local folder path.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint (MinIO, moto); None = AWS.")
    s3_region: str = Field(default="us-east-1", description="Region of the S3 client (MinIO and moto accept any).")
    mlflow_tracking_uri: str = Field(default="", description="MLflow tracking URI (server URL or sqlite:///...).")
    mlflow_experiment: str = Field(default="rakuten-product-classifier", description="MLflow experiment of the training runs.")
    registered_model_name: str = Field(
        default="rakuten-product-classifier", description="Registered model whose aliases champion/challenger the platform moves.",
    )
    random_seed: int = Field(default=42, description="Seed of the split, the models and the generator (the seed report's 42).")
    promotion_lock_timeout_s: float = Field(default=60.0, gt=0.0, description="Longest an alias move waits for another one.")

    ingest: IngestSettings = Field(default_factory=IngestSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    vision: VisionSettings = Field(default_factory=VisionSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    ab: ABSettings = Field(default_factory=ABSettings)
    rollback: RollbackSettings = Field(default_factory=RollbackSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)

    @model_validator(mode="before")
    @classmethod
    def _route_flat_names(cls, data: Any) -> Any:
        """``Settings(vision_profile="tiny")`` = ``Settings(vision=VisionSettings(profile="tiny"))``: a keyword may be
        a variable's name without ``RAKUTEN_``; the section's other fields still come from the environment."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        changes: dict[str, dict[str, Any]] = {}
        for key in [k for k in data if k not in cls.model_fields]:
            if key in _FLAT_FIELDS:
                section, name = _FLAT_FIELDS[key]
                changes.setdefault(section, {})[name] = data.pop(key)
        for section, values in changes.items():
            current = data.get(section)
            if isinstance(current, Section):  # every field given: the environment plays no part, the bounds still do
                current = current.model_dump()
            data[section] = SECTIONS[section](**((current or {}) | values))
        return data

    @model_validator(mode="after")
    def _warn_about_unknown_variables(self) -> Settings:
        warn_unknown_variables(tuple(sorted(os.environ)))
        return self

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

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied, validated; keys are top-level fields, sections, or flat names
        (``replace(rollback_window=150)``)."""
        fields = type(self).model_fields
        unknown = [key for key in changes if key not in fields and key not in _FLAT_FIELDS]
        if unknown:
            raise TypeError(f"Settings has no setting {unknown[0]!r}")
        return type(self).model_validate({name: getattr(self, name) for name in fields} | changes)

    def environment(self, *names: str) -> dict[str, str]:
        """The ``RAKUTEN_*`` variables that give a child process these settings (flat names, as for
        :meth:`replace`); an unset one is left out."""
        variables = {path: variable for variable, path, _ in variable_names()}
        env: dict[str, str] = {}
        for name in names:
            section, field = _FLAT_FIELDS.get(name, (None, name))
            value = getattr(getattr(self, section) if section else self, field)
            if value is None:
                continue
            secret = getattr(value, "get_secret_value", None)
            env[variables[f"{section}.{field}" if section else field]] = str(secret() if secret else value)
        return env

    @property
    def mlflow_artifact_location(self) -> str | None:
        """Local artifact root when MLflow runs embedded; a server decides its own otherwise."""
        if self.mlflow_tracking_uri.startswith("sqlite:"):
            return (self.home / "mlartifacts").as_uri()
        return None

    @property
    def catalogue_url(self) -> str:
        return join_url(self.object_store_url, self.ingest.catalogue_prefix)

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)


def variable_names() -> list[tuple[str, str, FieldInfo]]:
    """(variable, attribute path such as ``drift.ks_p_value``, field) of every setting, top level first."""
    names = [
        ((ENV_PREFIX + name).upper(), name, info) for name, info in Settings.model_fields.items() if name not in SECTIONS
    ]
    for section, cls in SECTIONS.items():
        names += [(variable, f"{section}.{name}", info) for variable, name, info in cls.variables()]
    return names


# Flat keyword (the variable without RAKUTEN_, lower case) -> (section, field).
_FLAT_FIELDS: dict[str, tuple[str, str]] = {
    variable.removeprefix(ENV_PREFIX).lower(): (section, name)
    for section, cls in SECTIONS.items()
    for variable, name, _ in cls.variables()
}


def join_url(base: str, *parts: str) -> str:
    """Join object-store URL segments with single slashes."""
    cleaned = [base.rstrip("/")] + [p.strip("/") for p in parts if p and p.strip("/")]
    return "/".join(cleaned)


# RAKUTEN_* names that belong to the test suite and the benchmarks, not to the platform's settings.
_NOT_SETTINGS_PREFIXES = ("RAKUTEN_TEST_", "RAKUTEN_BENCH_", "RAKUTEN_SOAK_")


@functools.cache
def warn_unknown_variables(names: tuple[str, ...]) -> list[str]:
    """Warn (once per set of variables) about ``RAKUTEN_*`` variables no setting reads: a typo such as
    ``RAKUTEN_DATABSE_URL`` would otherwise leave the embedded default in force without a word."""
    known = {variable for variable, _, _ in variable_names()} | {v for cls in SECTIONS.values() for v in cls.older_variables()}
    unknown = [n for n in names if n.startswith(ENV_PREFIX) and n not in known and not n.startswith(_NOT_SETTINGS_PREFIXES)]
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        log.warning("%s is set but no setting reads it%s", name, f"; did you mean {close[0]}?" if close else "")
    return unknown
