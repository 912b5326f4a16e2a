"""The one MLflow error mapping: an outage, a refusal and a missing thing each become the typed error that says what to do."""

import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from rakuten_ml.errors import ModelLoadError, RegistryError, RegistryNotFoundError
from rakuten_ml.registry.errors import NO_SUCH_ALIAS_CODES, is_not_found, registry_errors

URI = "http://127.0.0.1:1"


def test_a_missing_version_is_not_found_and_says_how_to_find_one():
    with pytest.raises(RegistryNotFoundError, match=r"cannot read version 9: .*no such version; check the version .*rakuten-ml train"), registry_errors(URI, "read version 9"):
        raise MlflowException("no such version", error_code=RESOURCE_DOES_NOT_EXIST)


def test_a_refusal_names_the_server_and_the_next_step():
    with pytest.raises(RegistryError) as caught, registry_errors(URI, "set alias 'champion'", then="rerun this command"):
        raise MlflowException("bad alias", error_code=INVALID_PARAMETER_VALUE)
    assert not isinstance(caught.value, RegistryNotFoundError)
    assert str(caught.value) == (
        f"cannot set alias 'champion' at {URI}: bad alias; check that MLflow is up, then rerun this command "
        "(its address is RAKUTEN_MLFLOW_TRACKING_URI)"
    )


@pytest.mark.parametrize("failure", [requests.ConnectionError("refused"), ConnectionResetError("reset"), TimeoutError("slow")])
def test_a_transport_failure_is_the_callers_error_class(failure):
    with pytest.raises(ModelLoadError, match=rf"cannot resolve model 'm' at {URI}: {type(failure).__name__}: .*MLflow is up"), registry_errors(URI, "resolve model 'm'", error=ModelLoadError, not_found=None):
        raise failure


def test_without_a_not_found_class_a_missing_thing_is_the_callers_error():
    with pytest.raises(ModelLoadError, match="cannot read 'm' version 3 at"), registry_errors(URI, "read 'm' version 3", error=ModelLoadError, not_found=None):
        raise MlflowException("gone", error_code=RESOURCE_DOES_NOT_EXIST)


def test_other_errors_pass_through_untouched():
    with pytest.raises(KeyError), registry_errors(URI, "read"):
        raise KeyError("not MLflow's")


def test_an_unset_alias_is_told_apart_from_a_refusal():
    assert is_not_found(MlflowException("x", error_code=RESOURCE_DOES_NOT_EXIST))
    assert not is_not_found(MlflowException("x", error_code=INVALID_PARAMETER_VALUE))
    assert is_not_found(MlflowException("x", error_code=INVALID_PARAMETER_VALUE), NO_SUCH_ALIAS_CODES)
    assert not is_not_found(ValueError("no code"))


def test_what_mlflow_prints_to_stderr_becomes_info_records(caplog, capsys):
    import logging
    import sys

    from rakuten_ml.registry.model_registry import prints_as_logs

    with caplog.at_level(logging.INFO, logger="rakuten_ml.registry.model_registry"), prints_as_logs():
        sys.stderr.write("Successfully registered model 'm'.\n")  # what mlflow's eprint does
    assert capsys.readouterr().err == ""
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("INFO", "mlflow: Successfully registered model 'm'.")]
