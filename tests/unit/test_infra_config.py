"""Static checks of the deployment files: docker-compose.yml, .env.example, the Dockerfile, the
Helm values, Prometheus and Grafana provisioning. Fast, no Docker, no network: the files are
parsed with PyYAML and cross-checked against each other and the repository tree."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import REPO_ROOT
from tests.support.promtool import needs_promtool, promtool

ROOT = REPO_ROOT
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
INIT_DB_SCRIPT = ROOT / "infra" / "postgres" / "init-databases.sh"
HELM_DIR = ROOT / "infra" / "helm" / "rakuten-ml"
PROMETHEUS_FILE = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = ROOT / "monitoring" / "grafana"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
}
EXPECTED_SERVICES = {"postgres", "redis", "minio", "minio-init", "mlflow", "serving", "prometheus", "grafana"} | AIRFLOW_SERVICES
# Services that run to completion; everything else must declare a healthcheck.
ONE_SHOT_SERVICES = {"minio-init", "airflow-init", "rakuten-cli"}

# Names of variables/keys that hold credentials.
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|FERNET|ACCESS_KEY|PRIVATE_KEY|_KEY$)", re.IGNORECASE)
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; `$${...}` is an escape.
VAR_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-?+])[^}]*)?\}")
# scheme://user:password@host
URL_CREDENTIALS = re.compile(r"[a-z0-9+.-]+://[^/\s:@]*:([^@\s]+)@", re.IGNORECASE)


# ----------------------------------------------------------------------------- helpers
def load_yaml(path: Path) -> Any:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = load_yaml(COMPOSE_FILE)
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose_vars(compose: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, modifier) of every variable compose interpolates (comments excluded)."""
    return [ref for _, value in iter_strings(compose) for ref in var_refs(value)]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    assert ENV_EXAMPLE.is_file(), ".env.example is missing"
    values: dict[str, str] = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f".env.example:{number}: not KEY=VALUE: {line!r}"
        assert key not in values, f".env.example: {key} is listed twice"
        values[key] = value
    return values


def var_refs(text: str) -> list[tuple[str, str]]:
    """(name, modifier) of every ${...} reference; modifier is '' or ':-x', ':?x', ..."""
    return [(m.group(1), m.group(2) or "") for m in VAR_REF.finditer(text)]


def resolve_defaults(text: str) -> str:
    """Substitute ${VAR:-default} by its default (what compose does with an empty .env)."""

    def substitute(match: re.Match[str]) -> str:
        modifier = match.group(2) or ""
        if modifier.startswith((":-", "-")):
            return modifier.split("-", 1)[1]
        return f"<{match.group(1)}>"

    return VAR_REF.sub(substitute, text)


def iter_strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, value) of every string scalar (keys included) in a parsed YAML tree."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            found.append((child, str(key)))
            found.extend(iter_strings(value, child))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(iter_strings(value, f"{path}[{index}]"))
    elif isinstance(node, str):
        found.append((path, node))
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return dict(pairs)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def host_bind_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/", "~")):
                sources.append(source)
        elif isinstance(volume, dict) and volume.get("type") == "bind":
            sources.append(str(volume["source"]))
    return sources


# ----------------------------------------------------------------------------- compose: shape
def test_compose_declares_every_expected_service(services: dict[str, Any]) -> None:
    missing = EXPECTED_SERVICES - set(services)
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_compose_uses_a_shared_airflow_anchor(compose: dict[str, Any], compose_text: str, services: dict[str, Any]) -> None:
    assert "x-airflow-common" in compose and "&airflow-common" in compose_text
    common = compose["x-airflow-common"]
    common_env = environment(common)
    assert common_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common_env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert "@postgres:5432/airflow" in common_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert common_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert environment(service)["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        targets = {str(v).split(":")[1] for v in service.get("volumes", []) if isinstance(v, str) and ":" in v}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins"} <= targets, f"{name} must mount ./dags and ./plugins"
        sources = host_bind_sources(service)
        assert "./dags" in sources and "./plugins" in sources, name


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("airflow-apiserver", "airflow api-server"),
        ("airflow-scheduler", "airflow scheduler"),
        ("airflow-dag-processor", "airflow dag-processor"),
        ("airflow-triggerer", "airflow triggerer"),
        ("airflow-worker", "airflow celery worker --queues default"),
        ("airflow-init", "airflow db migrate"),
        ("airflow-init", "rakuten-ml db upgrade"),
        ("serving", "uvicorn serving.app:app --host 0.0.0.0 --port 8000"),
    ],
)
def test_service_commands(services: dict[str, Any], service: str, expected: str) -> None:
    assert expected in command_text(services[service])


def test_mlflow_server_uses_postgres_and_proxied_s3_artifacts(services: dict[str, Any]) -> None:
    command = resolve_defaults(command_text(services["mlflow"]))
    assert command.startswith("mlflow server")
    assert re.search(r"--backend-store-uri postgresql(\+psycopg2)?://\S+@postgres:5432/mlflow", command)
    assert "--artifacts-destination s3://mlflow/" in command and "--serve-artifacts" in command
    assert "--host 0.0.0.0" in command and "--port 5000" in command
    env = environment(services["mlflow"])
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_minio_init_creates_both_buckets(services: dict[str, Any]) -> None:
    script = command_text(services["minio-init"])
    assert "mc mb --ignore-existing local/rakuten" in script
    assert "mc mb --ignore-existing local/mlflow" in script
    assert depends_on(services["minio-init"]) == {"minio": "service_healthy"}


def test_platform_settings_point_at_the_stack(services: dict[str, Any]) -> None:
    for name in ("serving", "airflow-worker", "airflow-worker-gpu"):
        env = environment(services[name])
        assert "@postgres:5432/rakuten" in env["RAKUTEN_DATABASE_URL"], name
        assert env["RAKUTEN_OBJECT_STORE_URL"] == "s3://rakuten", name
        assert env["RAKUTEN_S3_ENDPOINT_URL"] == "http://minio:9000", name
        assert env["RAKUTEN_MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        assert env["RAKUTEN_HOME"], name
    assert "RAKUTEN_API_ADMIN_TOKEN" in environment(services["serving"])


def test_postgres_creates_the_three_databases(services: dict[str, Any]) -> None:
    mounts = [v for v in services["postgres"]["volumes"] if isinstance(v, str)]
    assert any(
        v.startswith("./infra/postgres/init-databases.sh:/docker-entrypoint-initdb.d/") for v in mounts
    ), "init-databases.sh must be mounted into /docker-entrypoint-initdb.d/"
    script = INIT_DB_SCRIPT.read_text(encoding="utf-8")
    assert script.startswith("#!/usr/bin/env bash")
    assert os.access(INIT_DB_SCRIPT, os.X_OK), "init-databases.sh must be executable"
    listed = environment(services["postgres"]).get("POSTGRES_MULTIPLE_DATABASES", "")
    default = re.search(r"POSTGRES_MULTIPLE_DATABASES:-([a-z_,]+)", script)
    assert default is not None
    for database in ("airflow", "mlflow", "rakuten"):
        assert database in default.group(1).split(","), database
        assert database in listed.split(","), database
    assert "CREATE DATABASE" in script


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_init_databases_script_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(INIT_DB_SCRIPT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- compose: graph
def test_every_depends_on_target_exists(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target in depends_on(service):
            assert target in services, f"{name} depends on unknown service {target!r}"
            assert target != name, f"{name} depends on itself"


def test_depends_on_conditions_match_the_target(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} healthy, which has no healthcheck"
            if condition == "service_completed_successfully":
                assert target in ONE_SHOT_SERVICES, f"{name} waits for {target} to complete, which is not a one-shot"


def test_depends_on_has_no_cycle(services: dict[str, Any]) -> None:
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "visiting", f"depends_on cycle: {' -> '.join(trail + [name])}"
        state[name] = "visiting"
        for target in depends_on(services[name]):
            visit(target, trail + [name])
        state[name] = "done"

    for name in services:
        visit(name, [])


def test_every_service_has_a_healthcheck_or_is_a_one_shot(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT_SERVICES:
            assert str(service.get("restart", "no")) == "no", f"one-shot {name} must not restart"
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        test = check["test"]
        assert test and (isinstance(test, str) or test[0] in {"CMD", "CMD-SHELL"}), f"{name}: bad healthcheck test"
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, f"{name} should restart"


def test_airflow_components_wait_for_init_and_backends(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        deps = depends_on(services[name])
        assert deps.get("airflow-init") == "service_completed_successfully", name
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("redis") == "service_healthy", name
    assert depends_on(services["airflow-init"]).get("postgres") == "service_healthy"


def test_bind_mounted_host_paths_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for source in host_bind_sources(service):
            assert not source.startswith(("/", "~")), f"{name}: absolute host path {source!r} is not portable"
            assert (ROOT / source).exists(), f"{name}: bind-mounted {source!r} does not exist in the repository"


def test_build_contexts_and_dockerfiles_exist(services: dict[str, Any]) -> None:
    built = 0
    for name, service in services.items():
        build = service.get("build")
        if build is None:
            continue
        built += 1
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), name
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
    assert built >= 2


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, str):
                source = volume.split(":", 1)[0]
                if not source.startswith((".", "/", "~")):
                    assert source in declared, f"{name}: named volume {source!r} is not declared"
    assert {"postgres-data", "minio-data"} <= declared


# ----------------------------------------------------------------------------- compose: GPU
def test_gpu_worker_listens_on_queue_gpu_and_reserves_an_nvidia_gpu(services: dict[str, Any]) -> None:
    worker = services["airflow-worker-gpu"]
    command = command_text(worker)
    assert "airflow celery worker" in command
    assert re.search(r"--queues gpu(\s|$)", command), command
    assert "gpu" in worker.get("profiles", []), "the GPU worker must sit behind the `gpu` profile"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        device.get("driver") == "nvidia" and "gpu" in device.get("capabilities", []) and (device.get("count") or device.get("device_ids"))
        for device in devices
    ), devices
    assert worker["build"]["args"]["TORCH_VARIANT"] == "cuda"
    assert worker["image"].endswith("-cuda")
    # The CPU worker must not consume the GPU queue.
    assert "gpu" not in command_text(services["airflow-worker"]).split("--queues", 1)[1].split()[0].split(",")
    assert not services["airflow-worker"].get("deploy")


def test_only_optional_services_sit_behind_profiles(services: dict[str, Any]) -> None:
    for name in EXPECTED_SERVICES - {"airflow-worker-gpu"}:
        assert not services[name].get("profiles"), f"{name} must start with a plain `docker compose up`"


# ----------------------------------------------------------------------------- compose: ports
def test_published_host_ports_are_unique(services: dict[str, Any]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for name, service in services.items():
        for entry in service.get("ports") or []:
            if isinstance(entry, dict):
                host, protocol = str(entry.get("published", "")), entry.get("protocol", "tcp")
            else:
                spec, _, protocol = resolve_defaults(str(entry)).partition("/")
                protocol = protocol or "tcp"
                parts = spec.split(":")
                assert len(parts) in (2, 3), f"{name}: publish host and container port explicitly: {entry!r}"
                host = parts[-2]
            assert host.isdigit(), f"{name}: host port {host!r} does not resolve to a number"
            key = (host, protocol)
            assert key not in seen, f"host port {host}/{protocol} published by both {seen[key]} and {name}"
            seen[key] = name
    assert {"5000", "8000", "8080"} <= {host for host, _ in seen}


def test_published_ports_bind_to_a_configurable_address(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for entry in service.get("ports") or []:
            assert str(entry).startswith("${HOST_BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {entry!r} should bind to HOST_BIND_ADDRESS"


# ----------------------------------------------------------------------------- compose: secrets
def test_no_literal_secret_in_compose(compose: dict[str, Any]) -> None:
    for path, value in iter_strings(compose):
        key = path.rsplit(".", 1)[-1]
        if SECRET_NAME.search(key) and value != key and not key.endswith("_FILE"):
            refs = var_refs(value)
            assert refs and VAR_REF.sub("", value).strip() == "", f"{path}: secret must come from a ${{VAR}} reference"
        for match in URL_CREDENTIALS.finditer(value):
            assert VAR_REF.fullmatch(match.group(1)), f"{path}: URL password must be a ${{VAR}} reference: {value!r}"


def test_secret_variables_have_no_default(compose_vars: list[tuple[str, str]]) -> None:
    for name, modifier in compose_vars:
        if SECRET_NAME.search(name):
            assert modifier.startswith(":?"), f"${{{name}}} holds a secret: use ${{{name}:?...}}, not a default"


def test_every_variable_without_default_is_in_env_example(compose_vars: list[tuple[str, str]], env_example: dict[str, str]) -> None:
    required = {name for name, modifier in compose_vars if not modifier.startswith((":-", "-"))}
    missing = required - set(env_example)
    assert not missing, f".env.example lacks required variables: {sorted(missing)}"


def test_env_example_lists_exactly_the_compose_variables(compose_vars: list[tuple[str, str]], env_example: dict[str, str]) -> None:
    referenced = {name for name, _ in compose_vars}
    assert referenced - set(env_example) == set(), f"not in .env.example: {sorted(referenced - set(env_example))}"
    assert set(env_example) - referenced == set(), f"unused in docker-compose.yml: {sorted(set(env_example) - referenced)}"


def test_env_example_matches_compose_defaults(compose_vars: list[tuple[str, str]], env_example: dict[str, str]) -> None:
    for name, modifier in compose_vars:
        if modifier.startswith(":-"):
            assert env_example[name] == modifier[2:], f"{name}: .env.example says {env_example[name]!r}, compose default {modifier[2:]!r}"


def test_env_example_is_marked_dev_only_and_complete(env_example: dict[str, str]) -> None:
    header = "\n".join(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()[:12]).upper()
    assert "DEV-ONLY" in header or "DEV ONLY" in header
    for key, value in env_example.items():
        assert value, f".env.example: {key} has no value"
        if SECRET_NAME.search(key) and key != "AIRFLOW_FERNET_KEY":
            assert "dev" in value.lower(), f".env.example: {key} should be an obvious dev placeholder"


def test_env_example_fernet_key_is_valid(env_example: dict[str, str]) -> None:
    cryptography = pytest.importorskip("cryptography.fernet")
    cryptography.Fernet(env_example["AIRFLOW_FERNET_KEY"].encode())


# ----------------------------------------------------------------------------- Dockerfile
@pytest.fixture(scope="module")
def dockerfile() -> str:
    assert DOCKERFILE.is_file()
    return DOCKERFILE.read_text(encoding="utf-8")


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    result = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            result.append((instruction.upper(), args.strip()))
    return result


def test_dockerfile_is_multi_stage_on_python_311_slim(dockerfile: str) -> None:
    instructions = dockerfile_instructions(dockerfile)
    args = dict(
        arg.split("=", 1) for kind, arg in instructions if kind == "ARG" and "=" in arg
    )
    bases = [args_.split()[0] for kind, args_ in instructions if kind == "FROM"]
    assert len(bases) >= 2, "expected a multi-stage build"
    for base in bases:
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), base)
        assert resolved == "python:3.11-slim", base
    assert args.get("TORCH_VARIANT") == "cpu"
    assert "cuda)" in dockerfile and "cpu)" in dockerfile


def test_dockerfile_installs_the_project_with_constraints(dockerfile: str) -> None:
    runs = " ".join(args for kind, args in dockerfile_instructions(dockerfile) if kind == "RUN")
    assert re.search(r"pip install -c constraints\.txt \.(\s|$)", runs), "the project must be installed with -c constraints.txt"
    for match in re.finditer(r"pip install (.*?)(;|&&|$)", runs):
        assert "-c constraints.txt" in match.group(1), f"unconstrained pip install: {match.group(0)!r}"
    copies = " ".join(args for kind, args in dockerfile_instructions(dockerfile) if kind == "COPY")
    assert "constraints.txt" in copies and "pyproject.toml" in copies
    assert (ROOT / "constraints.txt").is_file()


def test_dockerfile_bakes_in_no_secret(dockerfile: str) -> None:
    instructions = dockerfile_instructions(dockerfile)
    for kind, args in instructions:
        if kind in {"ENV", "ARG", "LABEL"}:
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_.]*)=", args) + [args.split("=")[0].split()[0]]:
                assert not SECRET_NAME.search(name), f"{kind} {name}: secrets are run-time environment, never image config"
        if kind in {"COPY", "ADD"}:
            assert ".env" not in args.split(), f"{kind} {args}: .env must not enter the image"
    exposed = {port for kind, args in instructions if kind == "EXPOSE" for port in args.split()}
    assert exposed <= {"8000", "8080", "5000", "8793", "8974"}, exposed
    users = [args for kind, args in instructions if kind == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the runtime stage must run as an unprivileged user"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")}
    for required in (".env", ".git", ".venv/", "var/"):
        assert required in patterns, f".dockerignore must exclude {required}"
    for needed in ("constraints.txt", "pyproject.toml", "rakuten_ml", "serving", "dags", "plugins"):
        assert needed not in patterns and f"{needed}/" not in patterns, f".dockerignore must not exclude {needed}"


# ----------------------------------------------------------------------------- Helm
@pytest.fixture(scope="module")
def helm_values() -> dict[str, Any]:
    values = load_yaml(HELM_DIR / "values.yaml")
    assert isinstance(values, dict)
    return values


@pytest.fixture(scope="module")
def helm_gpu_values() -> dict[str, Any]:
    values = load_yaml(HELM_DIR / "values-gpu.yaml")
    assert isinstance(values, dict)
    return values


def test_helm_chart_metadata() -> None:
    chart = load_yaml(HELM_DIR / "Chart.yaml")
    assert chart["apiVersion"] == "v2" and chart["name"] == "rakuten-ml" and chart["version"]
    dependencies = {dep["name"]: dep for dep in chart.get("dependencies", [])}
    assert dependencies["airflow"]["repository"].startswith("https://")
    assert dependencies["airflow"]["condition"] == "airflow.enabled"


def test_helm_airflow_uses_celery_and_existing_secrets(helm_values: dict[str, Any]) -> None:
    airflow = helm_values["airflow"]
    assert airflow["enabled"] is True
    assert airflow["airflowVersion"].startswith("3.")
    assert "CeleryExecutor" in airflow["executor"] or airflow["executor"] == "KubernetesExecutor"
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert isinstance(airflow[key], str) and airflow[key], key
    for key in ("metadataSecretName", "resultBackendSecretName", "brokerUrlSecretName"):
        assert isinstance(airflow["data"][key], str) and airflow["data"][key], key
    assert "metadataConnection" not in airflow["data"] and "brokerUrl" not in airflow["data"]
    assert airflow["workers"]["celery"]["queue"] == "default"
    assert airflow["config"]["operators"]["default_queue"] == "default"


def test_helm_gpu_pool_requests_nvidia_gpu_on_queue_gpu(helm_gpu_values: dict[str, Any]) -> None:
    sets = helm_gpu_values["airflow"]["workers"]["celery"]["sets"]
    gpu_sets = [worker_set for worker_set in sets if worker_set.get("queue") == "gpu"]
    assert len(gpu_sets) == 1, sets
    gpu = gpu_sets[0]
    assert int(gpu["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert int(gpu["resources"]["requests"]["nvidia.com/gpu"]) == 1
    assert gpu["nodeSelector"], "the GPU pool must be pinned to GPU nodes"
    assert any(t.get("key") == "nvidia.com/gpu" for t in gpu["tolerations"]), "tolerate the GPU nodes' taint"
    assert "--queues gpu" in " ".join(gpu.get("args", [])) or gpu["queue"] == "gpu"
    assert helm_gpu_values["airflow"]["images"]["airflow"]["tag"].endswith("-cuda")
    # The CPU pool keeps queue `default` only.
    assert helm_gpu_values["airflow"]["workers"]["celery"]["queue"] == "default"


def test_helm_serving_has_replicas_resources_and_hpa(helm_values: dict[str, Any]) -> None:
    serving = helm_values["serving"]
    assert serving["enabled"] is True and serving["replicas"] >= 1
    assert serving["port"] == 8000 and "serving.app:app" in " ".join(serving["command"])
    assert serving["resources"]["requests"] and serving["resources"]["limits"]
    hpa = serving["hpa"]
    assert hpa["enabled"] is True and 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert 0 < hpa["targetCPUUtilizationPercentage"] <= 100
    mlflow = helm_values["mlflow"]
    assert mlflow["enabled"] is True and mlflow["command"][:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in mlflow["command"]


def test_helm_values_inline_no_secret(helm_values: dict[str, Any], helm_gpu_values: dict[str, Any]) -> None:
    allowed_key = re.compile(r"(SecretName|existingSecret|secretName|secretKey|passwordSecretName)$")
    for document in (helm_values, helm_gpu_values):
        for path, value in iter_strings(document):
            key = path.rsplit(".", 1)[-1].split("[", 1)[0]
            if value != key and SECRET_NAME.search(key) and not allowed_key.search(key):
                pytest.fail(f"{path}: secret-looking key with an inline value")
            assert not URL_CREDENTIALS.search(value), f"{path}: URL with inline credentials"
        for path, value in iter_strings(document):
            if path.endswith(".name") and SECRET_NAME.search(value):
                # an env var that holds a secret must come from a Secret, not `value:`
                parent = path.rsplit(".", 1)[0]
                entry = _lookup(document, parent)
                assert "value" not in entry, f"{parent}: {value} must come from an existing Secret"
    secret_refs = helm_values["platform"]["secretEnv"] + helm_values["serving"]["secretEnv"] + helm_values["mlflow"]["secretEnv"]
    assert all(ref["existingSecret"] and ref["key"] for ref in secret_refs)
    assert {ref["name"] for ref in secret_refs} >= {"RAKUTEN_DATABASE_URL", "RAKUTEN_API_ADMIN_TOKEN", "MLFLOW_BACKEND_STORE_URI"}


def _lookup(document: Any, path: str) -> Any:
    node = document
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    return node


def test_helm_template_reads_credentials_from_secrets_only() -> None:
    template = (HELM_DIR / "templates" / "serving-deployment.yaml").read_text(encoding="utf-8")
    assert "secretKeyRef" in template and "HorizontalPodAutoscaler" in template
    assert template.count("{{") == template.count("}}")


# ----------------------------------------------------------------------------- Prometheus
def test_prometheus_config_scrapes_serving(services: dict[str, Any]) -> None:
    config = load_yaml(PROMETHEUS_FILE)
    assert config["global"]["scrape_interval"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert len(jobs) == len(config["scrape_configs"]), "duplicate job_name"
    serving_targets = [
        target
        for job in jobs.values()
        for static in job.get("static_configs", [])
        for target in static["targets"]
        if target == "serving:8000"
    ]
    assert serving_targets, "Prometheus must scrape serving:8000"
    serving_job = next(job for job in jobs.values() if any("serving:8000" in s["targets"] for s in job["static_configs"]))
    assert serving_job.get("metrics_path", "/metrics") == "/metrics"
    for job in jobs.values():
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                assert port.isdigit(), target
                assert host == "localhost" or host in services, f"{job['job_name']}: {host} is not a compose service"
    for rule_file in config.get("rule_files", []):
        assert not rule_file.startswith("/"), "rule files are relative to the mounted config folder"


def test_prometheus_config_folder_is_mounted(services: dict[str, Any]) -> None:
    mounts = [v for v in services["prometheus"]["volumes"] if isinstance(v, str)]
    assert any(v.startswith("./monitoring/prometheus:/etc/prometheus") for v in mounts)
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


@needs_promtool
def test_prometheus_config_passes_promtool() -> None:
    promtool("check", "config", "--syntax-only", str(PROMETHEUS_FILE))


# ----------------------------------------------------------------------------- Grafana
def test_grafana_datasource_provisioning(services: dict[str, Any]) -> None:
    provisioning = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasource.yml")
    assert provisioning["apiVersion"] == 1
    sources = provisioning["datasources"]
    prometheus = [source for source in sources if source["type"] == "prometheus"]
    assert len(prometheus) == 1 and prometheus[0]["uid"] == "prometheus"
    assert prometheus[0]["url"] == "http://prometheus:9090" and "prometheus" in services
    assert sum(1 for source in sources if source.get("isDefault")) == 1


def test_grafana_dashboard_provider_matches_the_mount(services: dict[str, Any]) -> None:
    provisioning = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml")
    assert provisioning["apiVersion"] == 1
    paths = {provider["options"]["path"] for provider in provisioning["providers"] if provider["type"] == "file"}
    assert paths == {"/var/lib/grafana/dashboards"}
    mounts = [v for v in services["grafana"]["volumes"] if isinstance(v, str)]
    assert "./monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro" in mounts
    assert "./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    assert (GRAFANA_DIR / "dashboards").is_dir()


def test_grafana_dashboards_are_valid_json() -> None:
    for dashboard in sorted((GRAFANA_DIR / "dashboards").glob("**/*.json")):
        document = json.loads(dashboard.read_text(encoding="utf-8"))
        assert isinstance(document, dict) and document.get("title"), f"{dashboard.name}: a dashboard needs a title"
