"""The composition root: wires adapters into the ports the services use.

Each handler module calls `build().ready(...)` at module scope, naming what it uses: those
clients are built at cold start (on Lambda, in the init phase, before the first request is
timed) and reused while warm. Nothing else is built, so a function pays only for the clients
it touches. Tests call `build(...)` with fakes or with clients pointed at DynamoDB Local and a
real Redis.

On Lambda with SnapStart the container also registers the runtime hooks (`build`): before the
snapshot it lets go of its connections and settles the heap; after each restore it drops
whatever pooled connection the snapshot holds and reseeds `random` (adapters/snapstart.py).
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from funcmart.adapters import tracing
from funcmart.settings import Settings, SettingsError

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis
    from botocore.session import Session

    from funcmart.adapters.dynamodb.table import Tables
    from funcmart.adapters.redis_store import RedisGuard
    from funcmart.domain.money import Money
    from funcmart.domain.orders import Charge, Event
    from funcmart.ports import (
        AsyncRateLimiter,
        CartStore,
        Clock,
        DeadLetterRedrive,
        HealthProbe,
        IdGenerator,
        Metrics,
        OrderRepository,
        PaymentGateway,
        ProductCache,
        ProductRepository,
        Publisher,
        QueueBacklog,
        RateLimiter,
    )
    from funcmart.services.orders import DeadLetterPolicy, OrderPorts, ReconcilePolicy


_T = TypeVar("_T")


class lazily(cached_property[_T]):  # noqa: N801 - a decorator, named like cached_property
    """cached_property, built once under the container's lock: where clients are built at
    first use (the Knative host), concurrent requests would otherwise each build their own."""

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> lazily[_T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> _T: ...
    def __get__(self, instance: object, owner: type[Any] | None = None) -> _T | lazily[_T]:
        if instance is None:
            return self
        cache = instance.__dict__
        if self.attrname in cache:
            return cast("_T", cache[self.attrname])
        with cache["_build_lock"]:
            if self.attrname in cache:
                return cast("_T", cache[self.attrname])
            return super().__get__(instance, owner)


class Container:
    """The adapters one function instance uses, built lazily and kept while warm."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        # Re-entrant: building one dependency builds those it needs.
        self.__dict__["_build_lock"] = threading.RLock()
        self.settings = settings
        # Any port can be replaced (tests pass fakes or pre-built clients).
        for name, value in overrides.items():
            if name not in _OVERRIDABLE:
                raise TypeError(f"unknown dependency {name!r}")
            self.__dict__[name] = value

    def ready(self, *names: str) -> Container:
        """Build the named dependencies (and what they need) now, unless the settings leave
        clients to their first use (`clients_at_cold_start`); returns the container."""
        for name in names:
            if name not in _OVERRIDABLE:
                raise TypeError(f"unknown dependency {name!r}")
            if self.settings.clients_at_cold_start:
                getattr(self, name)
        return self

    def built(self, name: str) -> Any | None:
        """The named dependency if this function has built it, else None (never builds it)."""
        if name not in _OVERRIDABLE:
            raise TypeError(f"unknown dependency {name!r}")
        return self.__dict__.get(name)

    def before_snapshot(self) -> None:
        """SnapStart, once per published version: no open connection in the snapshot, and the
        heap collected once, then frozen (nothing built at cold start is walked again)."""
        import gc

        self._drop_connections()
        gc.collect()
        gc.freeze()

    def after_restore(self) -> None:
        """SnapStart, in every restored environment: pooled connections dropped (their sockets
        belong to the snapshotted process), `random` reseeded, the Redis breaker closed."""
        from funcmart.adapters import snapstart

        self._drop_connections()
        snapstart.reseed_random()
        guard = self.built("redis")
        if guard is not None:
            guard.breaker.reset()

    def _drop_connections(self) -> None:
        from funcmart.adapters import snapstart

        redis_client = self.built("redis_client")
        if redis_client is not None:
            snapstart.drop_redis_connections(redis_client)
        tables = self.built("tables")
        clients = [
            self.built("sqs_client"),
            getattr(self.built("table_probe"), "client", None),
            getattr(getattr(tables, "connection", None), "_client", None),
        ]
        for client in clients:
            if client is not None:
                snapstart.drop_botocore_connections(client)

    def flush_metrics(self) -> None:
        """Write what this invocation counted, if the function counts anything at all."""
        metrics = self.built("metrics")
        if metrics is not None:
            metrics.flush()

    @lazily
    def aws_session(self) -> Session:
        """One botocore session for every AWS client: its loaders read botocore's service
        descriptions and endpoint data once, each service's from its own folder
        (adapters/aws.py). (botocore alone: boto3 adds nothing we use.)
        Patched for X-Ray first, or its calls traced with OpenTelemetry, where traces are
        written."""
        from funcmart.adapters.aws import new_session
        from funcmart.observability import trace_aws_sdk

        trace_aws_sdk()
        session = new_session()
        if tracing.configure():
            tracing.trace_botocore(session)
        return session

    @lazily
    def tables(self) -> Tables:
        from funcmart.adapters.dynamodb.table import bind

        s = self.settings
        return bind(s.table_name, s.aws_region, s.dynamodb_endpoint, self.aws_session)

    @lazily
    def redis_client(self) -> redis.Redis:
        from funcmart.adapters.redis_store import connect

        return connect(self.redis_url, self.settings.redis_socket_timeout_seconds)

    @lazily
    def redis_url(self) -> str:
        """REDIS_URL, or the URL read once from Secrets Manager (REDIS_URL_SECRET_ID): on
        AWS the password never sits in the function's configuration."""
        from funcmart.settings import check_redis_url

        s = self.settings
        if not s.redis_url_secret_id:
            return s.redis_url
        client: Any = self.aws_session.create_client("secretsmanager", region_name=s.aws_region)
        secret: str = client.get_secret_value(SecretId=s.redis_url_secret_id)["SecretString"]
        try:
            return check_redis_url(secret.strip())
        except ValueError as exc:
            name = Settings.env_names("redis_url_secret_id")[0]
            raise SettingsError(f"the secret {name} names: {exc}") from exc

    @lazily
    def redis(self) -> RedisGuard:
        from funcmart.adapters.redis_store import Breaker, RedisGuard

        return RedisGuard(self.redis_client, Breaker(self.settings.redis_retry_after_seconds))

    @lazily
    def products(self) -> ProductRepository:
        from funcmart.adapters.dynamodb.catalog import DynamoProductRepository

        return DynamoProductRepository(self.tables)

    @lazily
    def cache(self) -> ProductCache:
        from funcmart.adapters.redis_store import RedisProductCache

        return RedisProductCache(self.redis, self.settings.cache_ttl_seconds)

    @lazily
    def carts(self) -> CartStore:
        from funcmart.adapters.redis_store import RedisCartStore

        return RedisCartStore(self.redis, self.settings.cart_ttl_seconds)

    @lazily
    def rate_limiter(self) -> RateLimiter:
        from funcmart.adapters.redis_store import RedisRateLimiter

        return RedisRateLimiter(self.redis)

    @lazily
    def async_rate_limiter(self) -> AsyncRateLimiter:
        """The rate limiter run from the event loop, for hosts that serve on one (built
        on first use there, never on Lambda)."""
        from funcmart.adapters.redis_store import AsyncRedisRateLimiter

        s = self.settings
        breaker = self.redis.breaker
        return AsyncRedisRateLimiter(self.redis_url, s.redis_socket_timeout_seconds, breaker)

    @lazily
    def table_probe(self) -> HealthProbe:
        from funcmart.adapters.dynamodb.health import TableProbe

        s = self.settings
        return TableProbe(
            s.table_name,
            s.aws_region,
            s.dynamodb_endpoint,
            s.health_timeout_seconds,
            session=self.aws_session,
        )

    @lazily
    def redis_probe(self) -> HealthProbe:
        return self.redis.ping

    @lazily
    def clock(self) -> Clock:
        from funcmart.adapters.system import SystemClock

        return SystemClock()

    @lazily
    def ids(self) -> IdGenerator:
        from funcmart.adapters.system import UuidGenerator

        return UuidGenerator()

    @lazily
    def orders(self) -> OrderRepository:
        from funcmart.adapters.dynamodb.orders import DynamoOrderRepository

        return DynamoOrderRepository(self.tables)

    @lazily
    def payments(self) -> PaymentGateway:
        s = self.settings
        if s.payment_provider == "stripe":
            from funcmart.adapters.stripe_payments import StripePaymentGateway

            return StripePaymentGateway(
                self.stripe_api_key, s.stripe_api_base, s.stripe_timeout_seconds
            )
        if s.payment_provider == "simulator":
            from funcmart.adapters.payments import SimulatedPaymentGateway

            return SimulatedPaymentGateway(self.tables, self.clock, s.payment_slow_seconds)
        raise SettingsError(
            "PAYMENT_PROVIDER is not set: set it to 'stripe' (or 'simulator' for development)"
        )

    @lazily
    def stripe_api_key(self) -> str:
        """The Stripe secret key: from the environment, or read once from Secrets Manager."""
        s = self.settings
        if s.stripe_api_key:
            return s.stripe_api_key
        if not s.stripe_secret_id:
            raise SettingsError("PAYMENT_PROVIDER=stripe needs STRIPE_API_KEY or STRIPE_SECRET_ID")
        client: Any = self.aws_session.create_client("secretsmanager", region_name=s.aws_region)
        secret: str = client.get_secret_value(SecretId=s.stripe_secret_id)["SecretString"]
        return secret.strip()

    @lazily
    def sqs_client(self) -> Any:
        return self.aws_session.create_client(
            "sqs", region_name=self.settings.aws_region, endpoint_url=self.settings.sqs_endpoint
        )

    @lazily
    def publisher(self) -> Publisher:
        s = self.settings
        if s.publisher == "cloudevents":
            from funcmart.adapters.broker import CloudEventPublisher
            from funcmart.adapters.event_signing import EventKeys

            if not s.event_signing_key:
                name = Settings.env_names("event_signing_key")[0]
                raise SettingsError(
                    f"{name} is not set: events published to a broker are signed with it "
                    "(docs/deploy.md)"
                )
            keys = EventKeys(s.event_signing_key, s.event_signing_previous_key)
            return CloudEventPublisher(
                s.broker_url, keys, s.event_source, s.publish_timeout_seconds
            )
        from funcmart.adapters.sqs import SqsPublisher

        urls = {event: getattr(s, field) for event, field in Settings.EVENT_QUEUES.items()}
        return SqsPublisher(self.sqs_client, {k: v for k, v in urls.items() if v}, self.metrics)

    @lazily
    def redrive(self) -> DeadLetterRedrive:
        from funcmart.adapters.sqs_operations import SqsDeadLetterRedrive, parse_pairs

        s = self.settings
        return SqsDeadLetterRedrive(
            self.sqs_client, parse_pairs(s.redrive_queues), s.redrive_method
        )

    @lazily
    def queue_backlog(self) -> QueueBacklog | None:
        """The queues' backlogs, where events travel over SQS; None over a broker."""
        s = self.settings
        if s.publisher != "sqs":
            return None
        from funcmart.adapters.sqs_operations import SqsQueueBacklog

        urls = {event: getattr(s, field) for event, field in Settings.EVENT_QUEUES.items()}
        return SqsQueueBacklog(self.sqs_client, {k: v for k, v in urls.items() if v})

    @lazily
    def metrics(self) -> Metrics:
        from funcmart.adapters.metrics import REGISTRY, EmfMetrics

        if self.settings.metrics_backend == "emf":
            return EmfMetrics()
        return REGISTRY

    @lazily
    def order_ports(self) -> OrderPorts:
        from funcmart.services.orders import OrderPorts

        # The Redis URL (on AWS read from its secret) is resolved now, though the product
        # cache below is built on first use: a secret that cannot be read stops the cold
        # start, not an order whose change is already saved when it invalidates the cache.
        self.redis_url  # noqa: B018
        return OrderPorts(
            orders=self.orders,
            # Built on first use: most order functions never pay, and the provider's client
            # (its secret, its SDK) should cost them nothing.
            payments=_DeferredPayments(self),
            # Built on first use too: half the order functions never publish (CancelOrder,
            # FulfilOrder, the operators' resolve and cancel); those that do name it in
            # `ready`, so that its client is built at their cold start.
            publisher=_DeferredPublisher(self),
            # Built on first use too: only a change of stock invalidates cached products, and
            # FulfilOrder, or ProcessOrder taking a payment, never loads the Redis client. Any
            # order function may change stock, so the cache is named (in a lambda: a use
            # later, as tools/function_needs reads it) and every one's pod gets its secret.
            cache=_DeferredCache(lambda: self.cache),
            clock=self.clock,
            ids=self.ids,
            metrics=self.metrics,
            idempotency_ttl_seconds=self.settings.idempotency_ttl_seconds,
            payment_provider=self.settings.payment_provider or "",
        )

    @lazily
    def dead_letter_policy(self) -> DeadLetterPolicy:
        from funcmart.services.orders import DeadLetterPolicy

        return DeadLetterPolicy(min_age_seconds=self.settings.dead_letter_min_age_seconds)

    @lazily
    def reconcile_policy(self) -> ReconcilePolicy:
        from funcmart.services.orders import ReconcilePolicy

        s = self.settings
        return ReconcilePolicy(
            republish_after_seconds=s.reconcile_after_seconds,
            abandon_after_seconds=s.abandon_after_seconds,
            max_republish=s.max_republish,
            flag_after_seconds=s.reconcile_flag_after_seconds,
        )


class _DeferredPayments:
    """The container's payment gateway, looked up when a payment call is made."""

    def __init__(self, container: Container) -> None:
        self._container = container

    def charge(self, idempotency_key: str, amount: Money, token: str) -> Charge:
        with tracing.span("payment charge", "client", self._attributes(idempotency_key)):
            return self._container.payments.charge(idempotency_key, amount, token)

    def lookup(self, idempotency_key: str) -> Charge | None:
        with tracing.span("payment lookup", "client", self._attributes(idempotency_key)):
            return self._container.payments.lookup(idempotency_key)

    def refund(self, charge: Charge) -> Charge:
        with tracing.span("payment refund", "client", self._attributes(charge.order_id)):
            return self._container.payments.refund(charge)

    def _attributes(self, order_id: str) -> dict[str, str] | None:
        if not tracing.enabled():
            return None
        provider = self._container.settings.payment_provider or "none"
        return {"funcmart.payment.provider": provider, "funcmart.order_id": order_id}


class _DeferredPublisher:
    """The container's publisher, looked up when an event is published. It holds the
    container, not a lambda naming the publisher as `_DeferredCache` does: tools/function_needs
    would read that as a later use and give every order function's pod the signing key, where
    only those that name the publisher in `ready` publish."""

    def __init__(self, container: Container) -> None:
        self._container = container

    def publish(self, event: Event) -> None:
        self._container.publisher.publish(event)


class _DeferredCache:
    """A product cache looked up when it is used."""

    def __init__(self, cache: Callable[[], ProductCache]) -> None:
        self._cache = cache

    def get(self, product_id: str) -> dict[str, Any] | None:
        return self._cache().get(product_id)

    def put(self, product_id: str, value: dict[str, Any]) -> None:
        self._cache().put(product_id, value)

    def invalidate(self, *product_ids: str) -> None:
        self._cache().invalidate(*product_ids)


_OVERRIDABLE = {
    name for name, value in vars(Container).items() if isinstance(value, cached_property)
}


def build(settings: Settings | None = None, **overrides: Any) -> Container:
    """The container for this process: settings from the environment unless given. In the
    Lambda runtime its SnapStart hooks are registered (they run only where SnapStart is on)."""
    from funcmart.adapters import snapstart

    container = Container(settings or Settings.load(), **overrides)
    snapstart.register(container.before_snapshot, container.after_restore)
    return container
