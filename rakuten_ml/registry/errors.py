"""The one translation of MLflow failures into the platform's typed errors.

Every module that talks to MLflow wraps its calls in :func:`registry_errors`, so an outage reads
the same wherever it happens (the action, the server, what to do next) and a missing model,
version or run is told apart from a server that is down.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rakuten_ml.errors import RakutenError, RegistryError, RegistryNotFoundError

# MLflow's error codes for "no such model / version / alias / run" (an alias lookup on a file store
# answers INVALID_PARAMETER_VALUE, a REST server RESOURCE_DOES_NOT_EXIST or NOT_FOUND)
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
NO_SUCH_ALIAS_CODES = NOT_FOUND_CODES | {"INVALID_PARAMETER_VALUE"}
NOT_REGISTERED_HINT = "check the version (`rakuten-ml registry status`) or train and register a model first (`rakuten-ml train`)"


def is_not_found(exc: BaseException, codes: frozenset[str] = NOT_FOUND_CODES) -> bool:
    """Whether ``exc`` is MLflow saying the thing asked for does not exist (not that the server failed)."""
    return getattr(exc, "error_code", None) in codes


@contextmanager
def registry_errors(
    uri: str,
    action: str,
    *,
    then: str | None = None,
    error: type[RakutenError] = RegistryError,
    not_found: type[RakutenError] | None = RegistryNotFoundError,
    not_found_hint: str = NOT_REGISTERED_HINT,
) -> Iterator[None]:
    """MLflow failing inside the block becomes ``error`` ("cannot <action> at <uri>: ..."), and a missing
    model, version or run becomes ``not_found`` (None: ``error`` too); ``then`` says what to do once
    MLflow is back."""
    import requests
    from mlflow.exceptions import MlflowException

    advice = f"check that MLflow is up{f', then {then}' if then else ''} (its address is RAKUTEN_MLFLOW_TRACKING_URI)"
    try:
        yield
    except MlflowException as exc:
        if not_found is not None and is_not_found(exc):
            raise not_found(f"cannot {action}: {exc.message}; {not_found_hint}") from exc
        raise error(f"cannot {action} at {uri}: {exc.message}; {advice}") from exc
    except (requests.RequestException, OSError) as exc:
        raise error(f"cannot {action} at {uri}: {type(exc).__name__}: {exc}; {advice}") from exc
