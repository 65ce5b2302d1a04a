"""Typed settings, read once at cold start: explicit argument, then environment, then default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar


class SettingsError(ValueError):
    """A setting is missing or malformed; raised at cold start, never per request."""


@dataclass(frozen=True)
class Settings:
    table_name: str
    redis_url: str = "redis://127.0.0.1:6379/0"
    aws_region: str = "us-east-1"
    dynamodb_endpoint: str | None = None
    sqs_endpoint: str | None = None
    max_body_bytes: int = 65536
    cache_ttl_seconds: int = 300
    # A cart lives this long after its last change.
    cart_ttl_seconds: int = 604800
    # Per caller and route class: "60/60s", "off"; unset means the class default
    # (funcmart.domain.ratelimit.DEFAULT_LIMITS). The class defaults from the HTTP method.
    rate_limit: str | None = None
    rate_limit_class: str | None = None
    # How long /health waits for each dependency.
    health_timeout_seconds: float = 1.0
    # How long a Redis outage is remembered before the next attempt (a small circuit breaker).
    redis_retry_after_seconds: float = 5.0
    redis_socket_timeout_seconds: float = 0.25
    # Orders and the pipeline.
    order_placed_queue_url: str | None = None
    order_paid_queue_url: str | None = None
    idempotency_ttl_seconds: int = 86400
    # Who takes payments: "simulator" (development and tests; its magic tokens work only
    # here) or "stripe". Unset, no payment is taken and the simulator's tokens are refused.
    payment_provider: str | None = None
    payment_slow_seconds: float = 2.0
    # Stripe: the secret key itself (a Kubernetes Secret, a local shell), or the id of the
    # Secrets Manager secret holding it (AWS), read once at cold start.
    stripe_api_key: str | None = None
    stripe_secret_id: str | None = None
    # Where the Stripe SDK sends requests; Stripe's own API unless set (tests).
    stripe_api_base: str | None = None
    stripe_timeout_seconds: float = 10.0
    reconcile_after_seconds: int = 120
    abandon_after_seconds: int = 86400
    max_republish: int = 5
    # With no queue to ask for a backlog (a broker), flag an open order only after this long.
    reconcile_flag_after_seconds: int = 3600
    # "deadLetterQueueArn>sourceQueueArn,..." and how to move them back: "move-task" (SQS's
    # StartMessageMoveTask) or "copy" (message by message; endpoints without move tasks).
    redrive_queues: str | None = None
    redrive_method: str = "move-task"
    # A failed queue record becomes visible again after base * 2^(receives-1) seconds.
    retry_backoff_base_seconds: int = 2
    retry_backoff_max_seconds: int = 300
    # Records of one queue batch processed at once (FIFO queues: always one at a time).
    batch_concurrency: int = 10
    # "emf" (CloudWatch, the default on Lambda) or "inprocess" (Prometheus exposition).
    metrics_backend: str | None = None
    # Where events go: "sqs" (one queue per event type; AWS, LocalStack, local) or
    # "cloudevents" (binary-mode CloudEvents POSTed to a Knative broker).
    publisher: str = "sqs"
    # The broker's ingress URL; Knative's K_SINK (a SinkBinding) when not set.
    broker_url: str | None = None
    # The CloudEvents `source` of published events.
    event_source: str = "funcmart"
    publish_timeout_seconds: float = 2.0

    _ENV: ClassVar[dict[str, str]] = {
        "table_name": "TABLE_NAME",
        "redis_url": "REDIS_URL",
        "aws_region": "AWS_REGION",
        "dynamodb_endpoint": "AWS_ENDPOINT_URL_DYNAMODB",
        "sqs_endpoint": "AWS_ENDPOINT_URL_SQS",
        "max_body_bytes": "MAX_BODY_BYTES",
        "cache_ttl_seconds": "CACHE_TTL_SECONDS",
        "cart_ttl_seconds": "CART_TTL_SECONDS",
        "rate_limit": "RATE_LIMIT",
        "rate_limit_class": "RATE_LIMIT_CLASS",
        "health_timeout_seconds": "HEALTH_TIMEOUT_SECONDS",
        "redis_retry_after_seconds": "REDIS_RETRY_AFTER_SECONDS",
        "redis_socket_timeout_seconds": "REDIS_SOCKET_TIMEOUT_SECONDS",
        "order_placed_queue_url": "ORDER_PLACED_QUEUE_URL",
        "order_paid_queue_url": "ORDER_PAID_QUEUE_URL",
        "idempotency_ttl_seconds": "IDEMPOTENCY_TTL_SECONDS",
        "payment_provider": "PAYMENT_PROVIDER",
        "payment_slow_seconds": "PAYMENT_SLOW_SECONDS",
        "stripe_api_key": "STRIPE_API_KEY",
        "stripe_secret_id": "STRIPE_SECRET_ID",
        "stripe_api_base": "STRIPE_API_BASE",
        "stripe_timeout_seconds": "STRIPE_TIMEOUT_SECONDS",
        "reconcile_after_seconds": "RECONCILE_AFTER_SECONDS",
        "abandon_after_seconds": "ABANDON_AFTER_SECONDS",
        "max_republish": "RECONCILE_MAX_REPUBLISH",
        "reconcile_flag_after_seconds": "RECONCILE_FLAG_AFTER_SECONDS",
        "redrive_queues": "REDRIVE_QUEUES",
        "redrive_method": "REDRIVE_METHOD",
        "retry_backoff_base_seconds": "RETRY_BACKOFF_BASE_SECONDS",
        "retry_backoff_max_seconds": "RETRY_BACKOFF_MAX_SECONDS",
        "batch_concurrency": "BATCH_CONCURRENCY",
        "metrics_backend": "METRICS_BACKEND",
        "publisher": "PUBLISHER",
        "broker_url": "BROKER_URL",
        "event_source": "EVENT_SOURCE",
        "publish_timeout_seconds": "PUBLISH_TIMEOUT_SECONDS",
    }
    # Standard variables read when the setting's own is not set.
    _FALLBACK: ClassVar[dict[str, tuple[str, ...]]] = {
        "aws_region": ("AWS_DEFAULT_REGION",),
        "dynamodb_endpoint": ("AWS_ENDPOINT_URL",),
        "sqs_endpoint": ("AWS_ENDPOINT_URL",),
        "broker_url": ("K_SINK",),
    }
    PUBLISHERS: ClassVar[tuple[str, ...]] = ("sqs", "cloudevents")
    PAYMENT_PROVIDERS: ClassVar[tuple[str, ...]] = ("simulator", "stripe")
    REDRIVE_METHODS: ClassVar[tuple[str, ...]] = ("move-task", "copy")
    # The setting holding the queue each published event type goes to (with "sqs").
    EVENT_QUEUES: ClassVar[dict[str, str]] = {
        "OrderPlaced": "order_placed_queue_url",
        "OrderPaid": "order_paid_queue_url",
    }

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from overrides, then `environ` (default os.environ), then defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in overrides:
                values[f.name] = overrides[f.name]
                continue
            names = (cls._ENV[f.name], *cls._FALLBACK.get(f.name, ()))
            raw = next((env[n] for n in names if env.get(n)), None)
            if raw in (None, ""):
                continue
            values[f.name] = coerce(f.name, f.type, raw)
        if "metrics_backend" not in values:
            # EMF on Lambda itself; emulators (the local platform, SAM) set AWS_SAM_LOCAL and
            # keep the in-process registry that /metrics serves.
            on_lambda = env.get("AWS_LAMBDA_FUNCTION_NAME") and not env.get("AWS_SAM_LOCAL")
            values["metrics_backend"] = "emf" if on_lambda else "inprocess"
        if "table_name" not in values:
            raise SettingsError("TABLE_NAME is not set: the function does not know its table")
        if values.get("publisher", "sqs") not in cls.PUBLISHERS:
            raise SettingsError(f"PUBLISHER must be one of {cls.PUBLISHERS}")
        if values.get("payment_provider", "simulator") not in cls.PAYMENT_PROVIDERS:
            raise SettingsError(f"PAYMENT_PROVIDER must be one of {cls.PAYMENT_PROVIDERS}")
        if values.get("redrive_method", "move-task") not in cls.REDRIVE_METHODS:
            raise SettingsError(f"REDRIVE_METHOD must be one of {cls.REDRIVE_METHODS}")
        return cls(**values)


def coerce(name: str, type_: Any, raw: str) -> Any:
    """An environment string as the field's type (int, float, Path or str)."""
    kind = str(type_)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if kind.startswith("Path"):
        from pathlib import Path

        return Path(raw)
    return raw
