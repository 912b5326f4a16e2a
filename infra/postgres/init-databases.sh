#!/usr/bin/env bash
# Creates one database per platform component in the compose PostgreSQL server.
#
# Mounted into /docker-entrypoint-initdb.d/ of the postgres image, it runs once, when the
# data volume is empty (first `docker compose up`). To re-run it: `docker compose down -v`
# (this deletes the data) or run the same psql commands by hand.
#
#   airflow  - Airflow metadata database and Celery result backend
#   mlflow   - MLflow tracking + model registry backend store
#   rakuten  - platform database (RAKUTEN_DATABASE_URL): labelled products, predictions, ...
#
# All three are owned by $POSTGRES_USER (the dev superuser). Override the list with
# POSTGRES_MULTIPLE_DATABASES="a,b,c".
set -euo pipefail

databases="${POSTGRES_MULTIPLE_DATABASES:-airflow,mlflow,rakuten}"
owner="${POSTGRES_USER:?POSTGRES_USER is not set}"

psql_admin() {
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${owner}" --dbname postgres "$@"
}

for db in ${databases//,/ }; do
    if [[ ! "${db}" =~ ^[a-z_][a-z0-9_]*$ ]]; then
        echo "init-databases: refusing database name '${db}' (lowercase letters, digits, _)" >&2
        exit 1
    fi
    if [[ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '${db}'")" == "1" ]]; then
        echo "init-databases: database '${db}' already exists"
    else
        echo "init-databases: creating database '${db}' owned by '${owner}'"
        psql_admin -c "CREATE DATABASE \"${db}\" OWNER \"${owner}\""
    fi
done
