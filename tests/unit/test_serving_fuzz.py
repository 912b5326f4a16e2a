"""Property test from the app's own OpenAPI schema (schemathesis + hypothesis): whatever a client
sends to any route, valid for the schema or deliberately not, the app answers without a 5xx.

Runs in-process over ASGI with the admin token, so admin bodies are fuzzed too; a champion and
a challenger are both loaded so every prediction path is reachable. (schemathesis' own pytest
plugin does not run on pytest 9 yet, hence one hypothesis test per operation and mode.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from serving.app import create_app
from tests.support.serving import ADMIN_TOKEN, registry_settings, set_alias

# The schema does not depend on the models: read it from an app that loads none.
_PATHS = create_app(load_models=False).openapi()["paths"]
OPERATIONS = sorted((method.upper(), path) for path, methods in _PATHS.items() for method in methods)
TAKES_INPUT = {(m.upper(), p) for p, methods in _PATHS.items() for m, spec in methods.items() if spec.get("requestBody") or spec.get("parameters")}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    platform_settings = registry_settings(tmp_path_factory, tmp_path_factory.mktemp("fuzz"), api_admin_token=ADMIN_TOKEN)
    set_alias(platform_settings, "champion", "1")
    set_alias(platform_settings, "challenger", "2")
    app = create_app(platform_settings)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    from schemathesis.python.asgi import shutdown_lifespans

    shutdown_lifespans()  # stop the app's poller and log writer now, not at interpreter exit


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_input_makes_the_app_fail(api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode) -> None:
    if mode is GenerationMode.NEGATIVE and (method, path) not in TAKES_INPUT:
        pytest.skip("no parameter or body to make invalid")
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, checks=[not_a_server_error])

    check()
