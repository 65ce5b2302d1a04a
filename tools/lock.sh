#!/usr/bin/env bash
# `make lock`: every install set's lock file, pinned with hashes, from the requirements it is
# made of (uv pip compile --generate-hashes, against PyPI). Run it after changing
# pyproject.toml or functions/requirements*.txt; commit what it writes.
#
#   functions/requirements.lock          the function package's runtime (Lambda layer)
#   functions/requirements-stripe.lock   the Stripe SDK layer, with the runtime's versions
#   functions/requirements-tracing.lock  the OpenTelemetry layer (TracingMode=otlp), likewise
#   requirements/image.lock              the container image: runtime, Stripe, the hosts extra
#   requirements/<extras>.lock           a virtualenv of tools/dx.sh (`make dev`, `make test`,
#                                        `make bench`, `make test-pythons`): extras joined by -
#
# Every lock resolves for every Python pyproject.toml supports (3.11-3.13) and keeps the
# runtime's versions (-c functions/requirements.lock), and the virtualenvs keep those of
# `make test`'s (dev,bench: the benchmarks pin their peers, uvicorn among them), so
# a package has one version in the layer, the image and the tests. tools/dx.sh, the
# Dockerfile and functions/Makefile install a lock with pip --require-hashes.
set -euo pipefail
cd "$(dirname "$0")/.."

UV="${UV:-.venv/bin/uv}"
# The virtualenvs tools/dx.sh makes (Makefile: venv-local, venv-dev, venv-bench,
# test-pythons): keep in step with the Makefile. `make test`'s first: the others keep its
# versions.
VENV_SETS=(dev,bench dev local local,unit)

compile() {
  local out="$1"
  shift
  echo "==> $out" >&2
  "$UV" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --custom-compile-command "make lock" --output-file "$out" "$@"
}

compile functions/requirements.lock functions/requirements.txt
compile functions/requirements-stripe.lock functions/requirements-stripe.txt \
  -c functions/requirements.lock
compile functions/requirements-tracing.lock functions/requirements-tracing.txt \
  -c functions/requirements.lock
compile requirements/image.lock pyproject.toml --extra hosts -c functions/requirements.lock
for extras in "${VENV_SETS[@]}"; do
  args=()
  IFS=, read -ra names <<<"$extras"
  for e in "${names[@]}"; do args+=(--extra "$e"); done
  # setuptools: the editable install of the project itself builds without isolation.
  constraints=(-c functions/requirements.lock)
  [ "$extras" = dev,bench ] || constraints+=(-c requirements/dev-bench.lock)
  compile "requirements/${extras//,/-}.lock" pyproject.toml "${args[@]}" \
    requirements/build.in "${constraints[@]}"
done
