# Fluxora — `make help` lists the targets. Only python3 and make are assumed: uv is bootstrapped
# into .tools/, the environment is created in .venv/ from the committed uv.lock.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
BIN := .venv/bin
ARGS ?=

.PHONY: help install browser run test faults serve status monitor-ui prefect-server deploy mlflow-server prefect-server-pg repro lint format bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-9s %s\n", $$1, $$2}'
	@echo "  (pass extra arguments with ARGS='...', e.g. make run ARGS='train.horizon=48')"

$(UV):
	@echo "bootstrapping uv $(UV_VERSION) into .tools/"
	@$(PYTHON) -m venv .tools && .tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)" \
	  || { rm -rf .tools && $(PYTHON) -m pip install --quiet --target .tools/lib "uv==$(UV_VERSION)" \
	       && mkdir -p .tools/bin && ln -sf ../lib/bin/uv $(UV); }

.venv/.synced: uv.lock pyproject.toml | $(UV)
	@# --compile-bytecode: every later process (CLI, tests, servers) reads .pyc files instead of compiling
	@# the libraries' sources again, which it would do each time where PYTHONDONTWRITEBYTECODE is set
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

install: .venv/.synced ## create .venv from the lock file (done by run/test/serve)

run: install ## run the whole pipeline on the built-in data (ARGS = Hydra overrides)
	$(BIN)/fluxora run $(ARGS)

browser: ## Debian's chromium for the docs' browser test (skipped when present or without apt-get)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
	  || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	       && { apt-get install -y --no-install-recommends chromium || { apt-get update && apt-get install -y --no-install-recommends chromium; }; } \
	  || echo "no chromium and no apt-get as root: tests/api/test_docs_offline.py will skip its browser checks"; }

test: install browser ## run the test suite
	$(BIN)/python -m pytest $(ARGS)

faults: install ## the fault-and-fuzz suite (pytest -m fault) and its figures; fails if a goal breaks
	$(BIN)/python scripts/fault_suite.py $(ARGS)

serve: install ## start the forecast API on the champion model
	@echo "Every /v1 route needs a key. First key (printed once, last line):  $(BIN)/fluxora keys create --role admin"
	@echo "Then:  curl -H 'X-API-Key: <key>' 'http://127.0.0.1:8000/v1/forecast?series_id=series_000&horizon=24'"
	$(BIN)/fluxora serve $(ARGS)

status: install ## champion, feature freshness, latest drift
	$(BIN)/fluxora status $(ARGS)

monitor-ui: install ## Evidently's UI on the monitoring history (HOST=127.0.0.1 PORT=8001)
	$(BIN)/fluxora monitor ui --host $${HOST:-127.0.0.1} --port $${PORT:-8001} $(ARGS)

prefect-server: install ## start a Prefect server (UI at http://127.0.0.1:4200) for `fluxora deploy`
	PREFECT_HOME="$${FLUXORA_HOME:-$(CURDIR)/.fluxora}/prefect" $(BIN)/prefect server start --host 127.0.0.1 --port 4200

deploy: install ## serve the scheduled deployments (needs `make prefect-server`)
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:4200/api} $(BIN)/fluxora deploy $(ARGS)

mlflow-server: install ## MLflow tracking server on PostgreSQL (infra=production), port 5000
	scripts/production-servers.sh mlflow

prefect-server-pg: install ## Prefect server on PostgreSQL (infra=production), port 4200
	scripts/production-servers.sh prefect

repro: install ## reproduce the pipeline with DVC (dvc repro) and show its metrics
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro $(ARGS) && PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc metrics show

lint: install ## ruff, ruff format --check, mypy, the import layers (lint-imports)
	$(BIN)/ruff check src flows tests benchmarks feature_repo
	$(BIN)/ruff format --check src flows tests benchmarks feature_repo
	$(BIN)/mypy src flows
	$(BIN)/lint-imports --no-cache

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix src flows tests benchmarks feature_repo
	$(BIN)/ruff format src flows tests benchmarks feature_repo

bench: install ## run every benchmark in benchmarks/ (prints ratios; not part of the tests)
	@for b in benchmarks/*.py; do [ -e "$$b" ] || { echo "no benchmarks yet"; break; }; echo "== $$b"; $(BIN)/python "$$b" || exit 1; done

clean: ## delete local run-time state (.fluxora/): resets the platform
	rm -rf .fluxora
