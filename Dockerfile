# One image for every function. Which one a container serves is chosen by its environment
# (FUNCMART_FUNCTION, FUNCMART_HANDLER, FUNCMART_TRIGGER, FUNCMART_ROUTES: see
# hosts/funcmart_hosts/knative/host.py); infra/functions/*.yaml sets them per Service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    PORT=8080

WORKDIR /app

# Runtime dependencies only: the function package's requirements plus what the Knative host
# needs (functions-framework, CloudEvents, JWT verification).
COPY functions/requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt "functions-framework>=3.8,<4" "cloudevents>=1.11" \
        "pyjwt[crypto]>=2.8,<3" \
    && rm /tmp/requirements.txt

# The function package (handler modules and funcmart) and the Knative host with the gateway
# emulation it uses: no local platform, no OpenAPI writer, no fakes.
COPY functions/*.py /app/
COPY functions/funcmart/ /app/funcmart/
COPY hosts/funcmart_hosts/__init__.py /app/funcmart_hosts/__init__.py
COPY hosts/funcmart_hosts/gateway/ /app/funcmart_hosts/gateway/
COPY hosts/funcmart_hosts/knative/ /app/funcmart_hosts/knative/

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin funcmart
USER 10001

EXPOSE 8080
CMD ["python", "-m", "funcmart_hosts.knative"]
