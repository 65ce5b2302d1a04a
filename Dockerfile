# One image for every function. Which one a container serves is chosen by its environment
# (FUNCMART_FUNCTION, FUNCMART_HANDLER, FUNCMART_TRIGGER, FUNCMART_ROUTES: see
# hosts/funcmart_hosts/knative/host.py); infra/functions/*.yaml sets them per Service.
#
# The base is pinned by digest at build time: `make image` resolves python:3.13-slim to its
# digest and passes BASE_IMAGE=python@sha256:...; a plain `docker build` uses the tag.
ARG BASE_IMAGE=python:3.13-slim
FROM ${BASE_IMAGE}

ARG BASE_IMAGE
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="funcmart" \
      org.opencontainers.image.description="funcmart functions on Knative: the function package and the Knative host" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    PORT=8080

WORKDIR /app

# Runtime dependencies only, as requirements/image.lock pins them (every file's hash
# checked; `make lock` writes it): the function package's requirements (the Stripe SDK
# included) plus pyproject.toml's `hosts` extra, what the Knative host needs.
COPY requirements/image.lock /tmp/
RUN pip install --require-hashes --no-deps -r /tmp/image.lock && rm /tmp/image.lock

# OpenTelemetry (FUNCMART_TRACING=otlp) only in an image built with --build-arg TRACING=1,
# without the SDK's metrics part, which redis-py would import at every cold start (as the
# Lambda layer: functions/Makefile, build-OpenTelemetry).
ARG TRACING=0
COPY functions/requirements-tracing.lock /tmp/
RUN if [ "$TRACING" = "1" ]; then \
        pip install --require-hashes --no-deps -r /tmp/requirements-tracing.lock \
        && python -c "import opentelemetry.sdk.metrics as m, os, shutil; shutil.rmtree(os.path.dirname(m.__file__))"; \
    fi \
    && rm /tmp/requirements-tracing.lock

# The function package (handler modules and funcmart) and the Knative host with the gateway
# emulation it uses: no local platform, no OpenAPI writer, no fakes.
COPY functions/*.py /app/
COPY functions/funcmart/ /app/funcmart/
COPY hosts/funcmart_hosts/__init__.py /app/funcmart_hosts/__init__.py
COPY hosts/funcmart_hosts/serving.py /app/funcmart_hosts/serving.py
COPY hosts/funcmart_hosts/gateway/ /app/funcmart_hosts/gateway/
COPY hosts/funcmart_hosts/knative/ /app/funcmart_hosts/knative/

# Bytecode compiled at build time (the root file system is read-only at run time):
# unchecked-hash .pyc files stay valid whatever the files' timestamps in the image. Then the
# unprivileged user the manifests run as (runAsUser 10001).
RUN python -m compileall -q --invalidation-mode unchecked-hash /app \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin funcmart
USER 10001

EXPOSE 8080
CMD ["python", "-m", "funcmart_hosts.knative"]
