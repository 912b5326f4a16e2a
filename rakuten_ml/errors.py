"""Typed errors of the platform. Each message says what went wrong and what to do about it."""

from __future__ import annotations


class RakutenError(Exception):
    """Base class: every error the platform raises on purpose derives from it."""


class ConfigurationError(RakutenError):
    """A setting is missing or inconsistent."""


class UnknownLabelError(RakutenError, ValueError):
    """A prdtypecode outside the 27 known classes was met where a valid label is required."""


class ObjectStoreError(RakutenError):
    """The object store (S3 or local folder) cannot be reached or lacks a bucket/key."""


class ObjectNotFoundError(ObjectStoreError, KeyError):
    """A key does not exist in the object store."""


class DatabaseError(RakutenError):
    """The relational database cannot be reached or lacks a table."""


class SourceError(RakutenError):
    """An ingestion source is unreadable as a whole (not one bad row: those are quarantined)."""


class SnapshotNotFoundError(RakutenError, LookupError):
    """No dataset snapshot matches the requested id."""


class TrainingError(RakutenError):
    """A model cannot be trained on the data it was given."""


class ModelLoadError(RakutenError):
    """A registered model cannot be resolved or loaded."""


class RegistryError(RakutenError):
    """The MLflow model registry is unreachable or refused an alias/tag operation."""


class RegistryNotFoundError(RegistryError, LookupError):
    """The registered model, one of its versions or a run does not exist in MLflow (nothing trained yet, a wrong version)."""


class PromotionConflictError(RegistryError):
    """The registry is not in the state an alias move expected (someone else moved it first)."""


class GateError(RakutenError):
    """The evaluation gate cannot compare a candidate with the champion (evaluation set or snapshot missing)."""


class NoModelYetError(ModelLoadError, LookupError):
    """No version of the model is registered yet (a fresh install): jobs that need one have nothing to do."""


class ScoringRunConflictError(RakutenError):
    """A scoring run id is reused with another snapshot or model than the run recorded at its start."""


class InvalidObjectKeyError(ObjectStoreError, ValueError):
    """A key that no object can have (``..``, empty): a bad reference in the data, not a store outage."""


class UnreadableObjectError(ObjectStoreError):
    """One object exists but cannot be read as a file (a folder, a symlink loop, no permission): bad data, not an outage."""
