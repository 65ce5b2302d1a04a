# One image for every function. Which one a container serves is chosen by its environment
# (FUNCMART_FUNCTION, FUNCMART_HANDLER, FUNCMART_TRIGGER, FUNCMART_ROUTES: see
# functions/funcmart/platforms/knative.py); infra/functions/*.yaml sets them per Service.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    PORT=8080

WORKDIR /app

# Runtime dependencies only: the Lambda package's requirements plus functions-framework.
COPY functions/requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt "functions-framework>=3.8,<4" \
    && rm /tmp/requirements.txt

# The same code package SAM deploys: handler modules and the funcmart package.
COPY functions/ /app/

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin funcmart
USER 10001

EXPOSE 8080
CMD ["python", "-m", "funcmart.platforms.knative"]
