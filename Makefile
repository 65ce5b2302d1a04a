# funcmart: `make dev` runs the whole backend locally, `make test` proves it.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 3000
ROLE ?= customer
SUB ?=

.PHONY: help venv dev consume invoke token test test-fast lint typecheck fmt openapi sam-build bench clean image manifests
IMAGE ?= funcmart:dev

help:
	@echo "make dev            run every function locally on http://127.0.0.1:$(PORT) (SEED=1 adds demo products)"
	@echo "make consume        only the queue pollers and schedules (endpoints from AWS_ENDPOINT_URL_*)"
	@echo "make test           install what is needed, start DynamoDB Local, run every test and gate"
	@echo "make invoke FN=ListProducts EVENT=events/list_products.json   one function, one event"
	@echo "make token ROLE=admin|customer [SUB=...]   a dev bearer token for the local gateway"
	@echo "make openapi        regenerate docs/openapi.json from the functions' code"
	@echo "make image [IMAGE=funcmart:dev]   the one container image for Knative (needs Docker)"
	@echo "make manifests     regenerate infra/ and localstack/ resources from template.yaml"
	@echo "make lint | typecheck | sam-build | bench"

$(STAMP): pyproject.toml functions/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $@

venv: $(STAMP)

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

dev: $(STAMP)
	$(PY) -m funcmart_hosts.local dev --port $(PORT) $(if $(SEED),--seed,) \
		$(if $(SCHEDULE_EVERY),--schedule-every $(SCHEDULE_EVERY),)

consume: $(STAMP)
	$(PY) -m funcmart_hosts.local consume $(if $(SCHEDULE_EVERY),--schedule-every $(SCHEDULE_EVERY),)

invoke: $(STAMP)
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<LogicalId> EVENT=events/<file>.json"; exit 2; }
	$(PY) -m funcmart_hosts.local invoke $(FN) $(EVENT)

token: $(STAMP)
	@$(PY) -m funcmart_hosts.local token --role $(ROLE) $(if $(SUB),--sub $(SUB),)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) node_modules/.installed .venv-sam/.installed lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

openapi: $(STAMP)
	$(PY) -m funcmart_hosts.openapi --write

# Writes docs/benchmarks.md and docs/benchmarks.png (under 15 minutes on 2 cores).
# BENCH_ARGS="--only coldstart,http" runs a subset; "--smoke" a tiny check.
bench: $(STAMP) node_modules/.installed
	$(PY) -m bench $(BENCH_ARGS)

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The SAM CLI pins packages that clash with ours, so it lives in its own environment. The
# build (functions/Makefile) needs the template runtime's python on PATH, but no container.
# tests/platforms/test_lambda_artifact.py runs the same build and checks every artifact.
.venv-sam/.installed:
	$(PYTHON) -m venv .venv-sam
	.venv-sam/bin/pip install --quiet aws-sam-cli
	@touch $@

sam-build: .venv-sam/.installed
	SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam build --template-file template.yaml

# Knative: one image for every function; infra/ and localstack/ follow template.yaml.
image:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
		docker build -t $(IMAGE) . ; \
	else \
		echo "make image: no Docker engine answers here. Build on a machine with Docker:"; \
		echo "  docker build -t $(IMAGE) .     (or: podman build -t $(IMAGE) .)"; \
		exit 1; \
	fi

manifests: $(STAMP)
	$(PY) -m tools.manifests

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
