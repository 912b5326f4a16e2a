"""The test suite, by kind:

- ``unit/``: no service needed (SQLite under tmp_path, local object store and MLflow store, in-process FastAPI
  TestClient, child processes of the CLI). ``pytest tests/unit`` needs nothing running.
- ``integration/``: real services: PostgreSQL, the moto S3 server, an MLflow server, Redis, uvicorn processes.
- ``e2e/``: DAGs run with ``dag.test()`` and the whole stack (``make demo``'s life cycle, its report in a browser).
- ``faults/``: the fault suite (services stopped, processes killed, hostile inputs).
- ``support/``: helpers shared by several modules (no tests). Shared fixtures live in ``conftest.py`` files:
  the services in ``tests/conftest.py``, the integration ones in ``tests/integration/conftest.py``.

No test module imports another test module; what two modules share goes to ``support/`` or a conftest.
"""
