# The two commands a new user needs: `make demo` (main job end to end) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast lint clean-demo benchmarks

setup: $(STAMP)

# One virtualenv holds Airflow, MLflow, torch and the rest; constraints.txt is the verified resolution.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(PY) -m rakuten_ml.demo demo $(DEMO_ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test-fast: setup
	$(PY) -m pytest tests/unit -m "not slow" $(PYTEST_ARGS)

benchmarks: setup
	$(PY) -m benchmarks.run_all

clean-demo:
	rm -rf var/demo
