"""Typed settings, read once at cold start: explicit argument, then environment, then default.

Each setting names the environment variables it is read from beside its type and bounds; every
value is checked at cold start, so a misspelled choice (`METRICS_BACKEND=prometeus`) or a
malformed number stops the function with a message naming the variable, never a silent
fallback. A plain dataclass read by a few lines here, not a validation library: every function
loads its settings, and most have no other use for one.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, get_args, get_origin, get_type_hints

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


def _env(*names: str, default: Any = dataclasses.MISSING, repr: bool = True, **limits: Any) -> Any:
    """A setting read from the first of `names` that is set (and not empty) in the environment,
    with its bounds (`gt`, `ge`, `le`, `min_length`). Without a default it must be set."""
    return dataclasses.field(default=default, repr=repr, metadata={"env": names, **limits})


@dataclasses.dataclass(frozen=True)
class Settings:
    table_name: str = _env("TABLE_NAME", min_length=1)
    # Whether `Container.ready` builds clients at cold start (Lambda: its init phase, which
    # SnapStart snapshots) or leaves them to their first use (the Knative host: a pod that
    # only serves cache hits never loads botocore).
    clients_at_cold_start: bool = _env("FUNCMART_CLIENTS_AT_COLD_START", default=True)
    # redis:// or, for a server that speaks TLS (ElastiCache with in-transit encryption),
    # rediss:// (the server's certificate is verified); unix:// for a local socket.
    redis_url: str = _env("REDIS_URL", default="redis://127.0.0.1:6379/0", repr=False)
    # On AWS: the Secrets Manager secret whose string is the Redis URL (its password inside),
    # read once at cold start in place of REDIS_URL.
    redis_url_secret_id: str | None = _env("REDIS_URL_SECRET_ID", default=None)
    aws_region: str = _env("AWS_REGION", "AWS_DEFAULT_REGION", default="us-east-1")
    dynamodb_endpoint: str | None = _env(
        "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL", default=None
    )
    sqs_endpoint: str | None = _env("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL", default=None)
    max_body_bytes: int = _env("MAX_BODY_BYTES", default=65536, gt=0)
    cache_ttl_seconds: int = _env("CACHE_TTL_SECONDS", default=300, ge=0)
    # A cart lives this long after its last change.
    cart_ttl_seconds: int = _env("CART_TTL_SECONDS", default=604800, gt=0)
    # Per caller and route class: "60/60s", "off"; unset means the class default
    # (funcmart.domain.ratelimit.DEFAULT_LIMITS). Without a class the HTTP method picks one.
    rate_limit: str | None = _env("RATE_LIMIT", default=None)
    rate_limit_class: RouteClass | None = _env("RATE_LIMIT_CLASS", default=None)  # noqa: RUF009
    # How long /health waits for each dependency.
    health_timeout_seconds: float = _env("HEALTH_TIMEOUT_SECONDS", default=1.0, gt=0)
    # How long a Redis outage is remembered before the next attempt (a small circuit breaker).
    redis_retry_after_seconds: float = _env("REDIS_RETRY_AFTER_SECONDS", default=5.0, ge=0)
    redis_socket_timeout_seconds: float = _env("REDIS_SOCKET_TIMEOUT_SECONDS", default=0.25, gt=0)
    # Orders and the pipeline.
    order_placed_queue_url: str | None = _env("ORDER_PLACED_QUEUE_URL", default=None)
    order_paid_queue_url: str | None = _env("ORDER_PAID_QUEUE_URL", default=None)
    # A queue consumer's own dead-letter queue (the one its queue redrives to): a message no
    # retry can fix is sent there at once, without spending the retry budget.
    dead_letter_queue_url: str | None = _env("DEAD_LETTER_QUEUE_URL", default=None)
    idempotency_ttl_seconds: int = _env("IDEMPOTENCY_TTL_SECONDS", default=86400, gt=0)
    # HandleDeadLetters leaves alone an order in its state for less than this: no message that
    # exhausted its retries can be that early (funcmart.domain.retries). At most the earliest
    # dead letter of the transport; the template and the manifests set it per platform.
    dead_letter_min_age_seconds: int = _env(
        "DEAD_LETTER_MIN_AGE_SECONDS", default=DEAD_LETTER_MIN_AGE_SECONDS, ge=0
    )
    # Who takes payments: "simulator" (development and tests; its magic tokens work only
    # here) or "stripe". Unset, no payment is taken and the simulator's tokens are refused.
    payment_provider: Literal["simulator", "stripe"] | None = _env("PAYMENT_PROVIDER", default=None)
    payment_slow_seconds: float = _env("PAYMENT_SLOW_SECONDS", default=2.0, ge=0)
    # Stripe: the secret key itself (a Kubernetes Secret, a local shell), or the id of the
    # Secrets Manager secret holding it (AWS), read once at cold start.
    stripe_api_key: str | None = _env("STRIPE_API_KEY", default=None, repr=False)
    stripe_secret_id: str | None = _env("STRIPE_SECRET_ID", default=None)
    # Where the Stripe SDK sends requests; Stripe's own API unless set (tests).
    stripe_api_base: str | None = _env("STRIPE_API_BASE", default=None)
    stripe_timeout_seconds: float = _env("STRIPE_TIMEOUT_SECONDS", default=10.0, gt=0)
    reconcile_after_seconds: int = _env("RECONCILE_AFTER_SECONDS", default=120, gt=0)
    abandon_after_seconds: int = _env("ABANDON_AFTER_SECONDS", default=86400, gt=0)
    max_republish: int = _env("RECONCILE_MAX_REPUBLISH", default=5, ge=0)
    # With no queue to ask for a backlog (a broker), flag an open order only after this long.
    reconcile_flag_after_seconds: int = _env("RECONCILE_FLAG_AFTER_SECONDS", default=3600, gt=0)
    # "deadLetterQueueArn>sourceQueueArn,..." and how to move them back: "move-task" (SQS's
    # StartMessageMoveTask) or "copy" (message by message; endpoints without move tasks).
    redrive_queues: str | None = _env("REDRIVE_QUEUES", default=None)
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
    broker_url: str | None = _env("BROKER_URL", "K_SINK", default=None)
    # The CloudEvents `source` of published events.
    event_source: str = _env("EVENT_SOURCE", default="funcmart", min_length=1)
    publish_timeout_seconds: float = _env("PUBLISH_TIMEOUT_SECONDS", default=2.0, gt=0)
    # With "cloudevents": the key every published event is signed with (HMAC-SHA256), and the
    # previous key, still accepted by consumers while a rotation rolls out. Both come from a
    # Kubernetes Secret created out of band (docs/deploy.md); never shown in a repr.
    event_signing_key: str | None = _env("FUNCMART_EVENT_KEY", default=None, repr=False)
    event_signing_previous_key: str | None = _env(
        "FUNCMART_EVENT_KEY_PREVIOUS", default=None, repr=False
    )

    # The setting holding the queue each published event type goes to (with "sqs").
    EVENT_QUEUES: ClassVar[dict[str, str]] = {
        "OrderPlaced": "order_placed_queue_url",
        "OrderPaid": "order_paid_queue_url",
    }

    def __repr__(self) -> str:
        # Secrets are left out (repr=False); a password inside a URL is redacted.
        return redacted_repr(self)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every setting's name."""
        return tuple(_specs())

    @classmethod
    def env_names(cls, field: str) -> tuple[str, ...]:
        """The environment variables a setting is read from, in order."""
        return _specs()[field].env

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from overrides, then `environ` (default os.environ), then defaults;
        every value checked, every problem named in one SettingsError."""
        env = os.environ if environ is None else environ
        specs = _specs()
        unknown = set(overrides) - set(specs)
        if unknown:
            raise SettingsError(f"unknown settings: {sorted(unknown)}")
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, spec in specs.items():
            given = name in overrides  # an argument is read as given, None included
            if given:
                raw = overrides[name]
            else:
                raw = next((env[n] for n in spec.env if env.get(n)), None)
                if raw is None and name == "metrics_backend" and on_lambda(env):
                    raw = "emf"
            if raw is None and not given:
                if spec.required:
                    problems.append(f"{spec.env[0]} is not set")
                continue
            try:
                values[name] = spec.read(raw)
            except ValueError as exc:
                shown = repr(raw) if spec.shown else "(not shown)"
                problems.append(f"{spec.env[0]}={shown}: {exc}")
        if problems:
            raise SettingsError("; ".join(problems))
        settings = cls(**values)
        if settings.payment_provider == "simulator":
            require_simulator_allowed(env)
        return settings


_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


@dataclasses.dataclass(frozen=True)
class _Spec:
    """How one setting is read: its variables, its type and its bounds."""

    env: tuple[str, ...]
    kind: Any  # bool, int, float, str, or a tuple of the allowed strings (a Literal)
    optional: bool
    required: bool
    shown: bool
    limits: Mapping[str, Any]
    check: Callable[[str], object] | None

    def read(self, raw: Any) -> Any:
        """`raw` (a string from the environment, or an argument's value) as this setting's
        type; ValueError saying what is wrong."""
        if raw is None:
            if self.optional:
                return None
            raise ValueError("must be set")
        value = self._typed(raw)
        if self.check is not None:
            self.check(value)
        for bound, (holds, says) in _BOUNDS.items():
            limit = self.limits.get(bound)
            if limit is not None and not holds(value, limit):
                raise ValueError(says.format(limit))
        return value

    def _typed(self, raw: Any) -> Any:
        if isinstance(self.kind, tuple):
            if raw not in self.kind:
                choices = [repr(c) for c in self.kind]
                raise ValueError(f"must be {', '.join(choices[:-1])} or {choices[-1]}")
            return raw
        return _PARSERS[self.kind](raw)


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError("must be a boolean: true or false")


def _int(raw: Any) -> int:
    """A whole number, also when written with a fractional part of zero (`10.0`: what a
    CloudFormation Number parameter passes on as it was typed)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise ValueError("must be a valid integer") from None
    if not number.is_integer():
        raise ValueError("must be a whole number")
    return int(number)


def _float(raw: Any) -> float:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        number = float(raw)
    else:
        try:
            number = float(str(raw).strip())
        except ValueError:
            raise ValueError("must be a valid number") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("must be a string")
    return raw


_PARSERS: dict[Any, Callable[[Any], Any]] = {bool: _bool, int: _int, float: _float, str: _str}

# Each bound: whether a value keeps it, and what the message says when it does not.
_BOUNDS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "gt": (lambda v, limit: v > limit, "must be greater than {}"),
    "ge": (lambda v, limit: v >= limit, "must be greater than or equal to {}"),
    "le": (lambda v, limit: v <= limit, "must be less than or equal to {}"),
    "min_length": (lambda v, limit: len(v) >= limit, "must be at least {} characters long"),
}

# Settings whose values are checked beyond their type.
_CHECKS: dict[str, Callable[[str], object]] = {
    "redis_url": check_redis_url,
    "rate_limit": parse_policy,  # raises ValueError with what is wrong
}


@functools.cache
def _specs() -> dict[str, _Spec]:
    """How each setting is read, from Settings' fields and their types (resolved once)."""
    hints = get_type_hints(Settings)
    specs = {}
    for f in dataclasses.fields(Settings):
        args = [a for a in get_args(hints[f.name]) if a is not type(None)]
        optional = len(args) < len(get_args(hints[f.name]))
        kind = args[0] if optional else hints[f.name]
        if get_origin(kind) is Literal:
            kind = get_args(kind)
        limits = {k: v for k, v in f.metadata.items() if k != "env"}
        specs[f.name] = _Spec(
            env=f.metadata["env"],
            kind=kind,
            optional=optional,
            required=f.default is dataclasses.MISSING,
            shown=f.repr,
            limits=limits,
            check=_CHECKS.get(f.name),
        )
    return specs


assert set(DEFAULT_LIMITS) == set(get_args(RouteClass)), "route classes and their defaults agree"


def coerce(name: str, type_: Any, raw: str) -> Any:
    """An environment string as a dataclass field's type (int, float, Path or str): for the
    hosts' own settings."""
    kind = str(type_)
    try:
        if kind.startswith("int"):
            return _int(raw)
        if kind.startswith("float"):
            return _float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if kind.startswith("Path"):
        from pathlib import Path

        return Path(raw)
    return raw
