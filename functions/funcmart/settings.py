"""Typed settings, read once at cold start: explicit argument, then environment, then default.

Each setting names the environment variables it is read from beside its type; pydantic checks
every value at cold start, so a misspelled choice (`METRICS_BACKEND=prometeus`) or a malformed
number stops the function with a message naming the variable, never a silent fallback.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from funcmart.coldstart import on_lambda as on_lambda
from funcmart.domain.ratelimit import DEFAULT_LIMITS, parse_policy
from funcmart.domain.retries import DEAD_LETTER_MIN_AGE_SECONDS

RouteClass = Literal["reads", "writes", "orders", "health"]


class SettingsError(ValueError):
    """A setting is missing or malformed; raised at cold start, never per request."""


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def check_redis_url(url: str) -> str:
    """A Redis URL redis-py connects with: redis://, rediss:// (TLS) or unix://. The error
    never repeats the URL, which may hold a password."""
    if not url.startswith(REDIS_SCHEMES):
        scheme = url.split("://", 1)[0] if "://" in url else "no scheme"
        raise ValueError(f"a Redis URL starts with redis://, rediss:// or unix://, not {scheme!r}")
    return url


# A password inside a URL (redis://:secret@host, rediss://user:secret@host) and a password
# query parameter (redis://host/0?password=secret).
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:?#]*):[^@/?#]*@")
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")
REDACTED = "<redacted>"


def redact_url(value: str) -> str:
    """`value` with any password it carries replaced, for logs and reprs."""
    value = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)
    return _QUERY_PASSWORD.sub(rf"\1{REDACTED}", value)


def redacted_repr(obj: Any, secrets: frozenset[str] = frozenset()) -> str:
    """A dataclass's repr with the fields in `secrets` and URL passwords redacted (fields
    declared with repr=False are left out, as the generated repr does)."""
    shown = []
    for f in dataclasses.fields(obj):
        if not f.repr:
            continue
        value = getattr(obj, f.name)
        if f.name in secrets and value:
            value = REDACTED
        elif isinstance(value, str):
            value = redact_url(value)
        shown.append(f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(shown)})"


# The payment simulator takes every order without taking money: on a deployed platform
# (Lambda, Knative) it runs only when this variable holds exactly this value.
ALLOW_SIMULATOR = "FUNCMART_ALLOW_SIMULATOR"
ALLOW_SIMULATOR_VALUE = "yes-orders-are-not-paid-for"


def deployed(environ: Mapping[str, str]) -> bool:
    """Whether this runs on a deployed platform: the Lambda runtime, or a Knative Service
    (which sets K_SERVICE); not `make dev`, `make invoke`, SAM local or the tests."""
    return on_lambda(environ) or bool(environ.get("K_SERVICE"))


def require_simulator_allowed(environ: Mapping[str, str]) -> None:
    """SettingsError for the payment simulator on a deployed platform without the override;
    a loud warning when the override lets it run there."""
    if not deployed(environ):
        return
    if environ.get(ALLOW_SIMULATOR) != ALLOW_SIMULATOR_VALUE:
        raise SettingsError(
            "PAYMENT_PROVIDER=simulator takes orders without payment and is refused on a "
            f"deployed platform; use stripe, or (a staging deployment) set {ALLOW_SIMULATOR}="
            f"{ALLOW_SIMULATOR_VALUE}"
        )
    logging.getLogger(__name__).warning(
        "PAYMENT SIMULATOR ON A DEPLOYED PLATFORM: orders are not paid for (%s is set)",
        ALLOW_SIMULATOR,
    )


def _env(*names: str, default: Any = None, **constraints: Any) -> Any:
    """A field read from the first of `names` that is set in the environment."""
    return Field(default, validation_alias=AliasChoices(*names), **constraints)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=False)

    table_name: str = _env("TABLE_NAME", default=..., min_length=1)
    # Whether `Container.ready` builds clients at cold start (Lambda: its init phase, which
    # SnapStart snapshots) or leaves them to their first use (the Knative host: a pod that
    # only serves cache hits never loads botocore).
    clients_at_cold_start: bool = _env("FUNCMART_CLIENTS_AT_COLD_START", default=True)
    # redis:// or, for a server that speaks TLS (ElastiCache with in-transit encryption),
    # rediss:// (the server's certificate is verified); unix:// for a local socket.
    redis_url: str = _env("REDIS_URL", default="redis://127.0.0.1:6379/0", repr=False)
    # On AWS: the Secrets Manager secret whose string is the Redis URL (its password inside),
    # read once at cold start in place of REDIS_URL.
    redis_url_secret_id: str | None = _env("REDIS_URL_SECRET_ID")
    aws_region: str = _env("AWS_REGION", "AWS_DEFAULT_REGION", default="us-east-1")
    dynamodb_endpoint: str | None = _env("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL")
    sqs_endpoint: str | None = _env("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL")
    max_body_bytes: int = _env("MAX_BODY_BYTES", default=65536, gt=0)
    cache_ttl_seconds: int = _env("CACHE_TTL_SECONDS", default=300, ge=0)
    # A cart lives this long after its last change.
    cart_ttl_seconds: int = _env("CART_TTL_SECONDS", default=604800, gt=0)
    # Per caller and route class: "60/60s", "off"; unset means the class default
    # (funcmart.domain.ratelimit.DEFAULT_LIMITS). Without a class the HTTP method picks one.
    rate_limit: str | None = _env("RATE_LIMIT")
    rate_limit_class: RouteClass | None = _env("RATE_LIMIT_CLASS")
    # How long /health waits for each dependency.
    health_timeout_seconds: float = _env("HEALTH_TIMEOUT_SECONDS", default=1.0, gt=0)
    # How long a Redis outage is remembered before the next attempt (a small circuit breaker).
    redis_retry_after_seconds: float = _env("REDIS_RETRY_AFTER_SECONDS", default=5.0, ge=0)
    redis_socket_timeout_seconds: float = _env("REDIS_SOCKET_TIMEOUT_SECONDS", default=0.25, gt=0)
    # Orders and the pipeline.
    order_placed_queue_url: str | None = _env("ORDER_PLACED_QUEUE_URL")
    order_paid_queue_url: str | None = _env("ORDER_PAID_QUEUE_URL")
    # A queue consumer's own dead-letter queue (the one its queue redrives to): a message no
    # retry can fix is sent there at once, without spending the retry budget.
    dead_letter_queue_url: str | None = _env("DEAD_LETTER_QUEUE_URL")
    idempotency_ttl_seconds: int = _env("IDEMPOTENCY_TTL_SECONDS", default=86400, gt=0)
    # HandleDeadLetters leaves alone an order in its state for less than this: no message that
    # exhausted its retries can be that early (funcmart.domain.retries). At most the earliest
    # dead letter of the transport; the template and the manifests set it per platform.
    dead_letter_min_age_seconds: int = _env(
        "DEAD_LETTER_MIN_AGE_SECONDS", default=DEAD_LETTER_MIN_AGE_SECONDS, ge=0
    )
    # Who takes payments: "simulator" (development and tests; its magic tokens work only
    # here) or "stripe". Unset, no payment is taken and the simulator's tokens are refused.
    payment_provider: Literal["simulator", "stripe"] | None = _env("PAYMENT_PROVIDER")
    payment_slow_seconds: float = _env("PAYMENT_SLOW_SECONDS", default=2.0, ge=0)
    # Stripe: the secret key itself (a Kubernetes Secret, a local shell), or the id of the
    # Secrets Manager secret holding it (AWS), read once at cold start.
    stripe_api_key: str | None = _env("STRIPE_API_KEY", repr=False)
    stripe_secret_id: str | None = _env("STRIPE_SECRET_ID")
    # Where the Stripe SDK sends requests; Stripe's own API unless set (tests).
    stripe_api_base: str | None = _env("STRIPE_API_BASE")
    stripe_timeout_seconds: float = _env("STRIPE_TIMEOUT_SECONDS", default=10.0, gt=0)
    reconcile_after_seconds: int = _env("RECONCILE_AFTER_SECONDS", default=120, gt=0)
    abandon_after_seconds: int = _env("ABANDON_AFTER_SECONDS", default=86400, gt=0)
    max_republish: int = _env("RECONCILE_MAX_REPUBLISH", default=5, ge=0)
    # With no queue to ask for a backlog (a broker), flag an open order only after this long.
    reconcile_flag_after_seconds: int = _env("RECONCILE_FLAG_AFTER_SECONDS", default=3600, gt=0)
    # "deadLetterQueueArn>sourceQueueArn,..." and how to move them back: "move-task" (SQS's
    # StartMessageMoveTask) or "copy" (message by message; endpoints without move tasks).
    redrive_queues: str | None = _env("REDRIVE_QUEUES")
    redrive_method: Literal["move-task", "copy"] = _env("REDRIVE_METHOD", default="move-task")
    # A failed queue record becomes visible again after base * 2^(receives-1) seconds.
    retry_backoff_base_seconds: int = _env("RETRY_BACKOFF_BASE_SECONDS", default=2, ge=0)
    retry_backoff_max_seconds: int = _env("RETRY_BACKOFF_MAX_SECONDS", default=300, ge=0)
    # Records of one queue batch processed at once (FIFO queues: always one at a time).
    batch_concurrency: int = _env("BATCH_CONCURRENCY", default=10, ge=1, le=100)
    # "emf" (CloudWatch; the default on Lambda) or "inprocess" (Prometheus exposition; the
    # default everywhere else).
    metrics_backend: Literal["emf", "inprocess"] = _env("METRICS_BACKEND", default="inprocess")
    # Where events go: "sqs" (one queue per event type; AWS, LocalStack, local) or
    # "cloudevents" (binary-mode CloudEvents POSTed to a Knative broker).
    publisher: Literal["sqs", "cloudevents"] = _env("PUBLISHER", default="sqs")
    # The broker's ingress URL; Knative's K_SINK (a SinkBinding) when not set.
    broker_url: str | None = _env("BROKER_URL", "K_SINK")
    # The CloudEvents `source` of published events.
    event_source: str = _env("EVENT_SOURCE", default="funcmart", min_length=1)
    publish_timeout_seconds: float = _env("PUBLISH_TIMEOUT_SECONDS", default=2.0, gt=0)
    # With "cloudevents": the key every published event is signed with (HMAC-SHA256), and the
    # previous key, still accepted by consumers while a rotation rolls out. Both come from a
    # Kubernetes Secret created out of band (docs/deploy.md); never shown in a repr.
    event_signing_key: str | None = _env("FUNCMART_EVENT_KEY", repr=False)
    event_signing_previous_key: str | None = _env("FUNCMART_EVENT_KEY_PREVIOUS", repr=False)

    # The setting holding the queue each published event type goes to (with "sqs").
    EVENT_QUEUES: ClassVar[dict[str, str]] = {
        "OrderPlaced": "order_placed_queue_url",
        "OrderPaid": "order_paid_queue_url",
    }

    @field_validator("redis_url")
    @classmethod
    def _a_redis_url(cls, value: str) -> str:
        return check_redis_url(value)

    def __repr_args__(self) -> Any:
        # Secrets are left out (repr=False); a password inside a URL is redacted.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if isinstance(value, str) else value

    @field_validator("rate_limit")
    @classmethod
    def _a_rate_limit(cls, value: str | None) -> str | None:
        if value is not None:
            parse_policy(value)  # raises ValueError with what is wrong
        return value

    @classmethod
    def env_names(cls, field: str) -> tuple[str, ...]:
        """The environment variables a setting is read from, in order."""
        alias = cls.model_fields[field].validation_alias
        assert isinstance(alias, AliasChoices)
        return tuple(str(choice) for choice in alias.choices)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from overrides, then `environ` (default os.environ), then defaults."""
        env = os.environ if environ is None else environ
        unknown = set(overrides) - set(cls.model_fields)
        if unknown:
            raise SettingsError(f"unknown settings: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            if name in overrides:
                values[name] = overrides[name]
                continue
            raw = next((env[n] for n in cls.env_names(name) if env.get(n)), None)
            if raw is not None:
                values[name] = raw
        if "metrics_backend" not in values and on_lambda(env):
            values["metrics_backend"] = "emf"
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(cls._explain(exc)) from exc
        if settings.payment_provider == "simulator":
            require_simulator_allowed(env)
        return settings

    @classmethod
    def _explain(cls, exc: ValidationError) -> str:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            names = cls.env_names(field) if field in cls.model_fields else (field,)
            if error["type"] == "missing":
                problems.append(f"{names[0]} is not set")
            else:
                message = str(error["msg"]).removeprefix("Value error, ")
                secret = field in cls.model_fields and not cls.model_fields[field].repr
                shown = "(not shown)" if secret else repr(error["input"])
                problems.append(f"{names[0]}={shown}: {message}")
        return "; ".join(problems)


assert set(DEFAULT_LIMITS) == set(get_args(RouteClass)), "route classes and their defaults agree"


def coerce(name: str, type_: Any, raw: str) -> Any:
    """An environment string as a dataclass field's type (int, float, Path or str): for the
    hosts' own settings."""
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
