#!/usr/bin/env bash
# Start the production-style servers locally, on this machine's PostgreSQL:
#   mlflow   MLflow tracking server (PostgreSQL backend store, artifacts under FLUXORA_HOME)
#   prefect  Prefect server (PostgreSQL)
# Usage: scripts/production-servers.sh mlflow|prefect
# Environment (defaults in brackets):
#   FLUXORA_PG_URL   [postgresql://postgres@127.0.0.1:5432]  server without a database name
#   FLUXORA_HOME     [.fluxora]
# Each server gets its own database (fluxora_mlflow, fluxora_prefect), created if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
pg="${FLUXORA_PG_URL:-postgresql://postgres@127.0.0.1:5432}"
home="${FLUXORA_HOME:-$PWD/.fluxora}"
bin=.venv/bin

ensure_db() {
  "$bin/python" - "$pg" "$1" <<'PY'
import sys, psycopg
url, name = sys.argv[1], sys.argv[2]
with psycopg.connect(f"{url}/postgres", autocommit=True) as conn:
    if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
        conn.execute(f'create database "{name}"')
        print(f"created database {name}")
PY
}

case "${1:-}" in
  mlflow)
    ensure_db fluxora_mlflow
    mkdir -p "$home/mlflow/server-artifacts"
    echo "MLflow on http://127.0.0.1:5000 (export FLUXORA_MLFLOW_TRACKING_URI=http://127.0.0.1:5000)"
    exec "$bin/mlflow" server --host 127.0.0.1 --port 5000 --workers "${FLUXORA_MLFLOW_WORKERS:-1}" \
      --backend-store-uri "${pg/postgresql:/postgresql+psycopg:}/fluxora_mlflow" \
      --artifacts-destination "$home/mlflow/server-artifacts" --serve-artifacts ;;
  prefect)
    ensure_db fluxora_prefect
    echo "Prefect on http://127.0.0.1:4200 (export PREFECT_API_URL=http://127.0.0.1:4200/api)"
    PREFECT_HOME="$home/prefect" \
    PREFECT_API_DATABASE_CONNECTION_URL="${pg/postgresql:/postgresql+asyncpg:}/fluxora_prefect" \
      exec "$bin/prefect" server start --host 127.0.0.1 --port 4200 ;;
  *)
    echo "usage: $0 mlflow|prefect" >&2; exit 2 ;;
esac
