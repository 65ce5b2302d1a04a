"""Small factories for tests: containers wired to real servers or fakes, products, events."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

from funcmart.bootstrap import Container
from funcmart.domain.commands import CreateProduct
from funcmart.domain.identity import Principal
from funcmart.domain.money import Money
from funcmart.services import catalog
from funcmart.services.orders import DeadLetterPolicy
from funcmart.settings import Settings
from tests.fakes import FakeCache, FakeMetrics, FakePublisher
from tests.support.factories import ADMIN

# Believes every dead letter however soon it comes: for tests of what follows a flag (the
# age check has tests of its own).
ANY_DEAD_LETTER = DeadLetterPolicy(min_age_seconds=0)


def random_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def customer(name: str | None = None) -> Principal:
    return Principal(name or random_id("cust-"))


def dynamo_container(
    dynamodb_endpoint: str, table_name: str, redis_url: str | None = None, **overrides: Any
) -> Container:
    """A container on DynamoDB Local; Redis real if given, else a fake cache. Publisher and
    metrics are fakes unless overridden, so tests can inspect what was published."""
    settings = Settings.load(
        {},
        table_name=table_name,
        dynamodb_endpoint=dynamodb_endpoint,
        redis_url=redis_url or "redis://127.0.0.1:1/0",
        aws_region="us-east-1",
        metrics_backend="inprocess",
        payment_provider="simulator",
    )
    defaults: dict[str, Any] = {"publisher": FakePublisher(), "metrics": FakeMetrics()}
    if redis_url is None:
        defaults["cache"] = FakeCache()
    defaults.update(overrides)
    return Container(settings, **defaults)


def add_product(
    deps: Container,
    stock: int = 10,
    amount: int = 1000,
    currency: str = "EUR",
    category: str = "books",
    name: str | None = None,
) -> str:
    product = catalog.create_product(
        deps,
        ADMIN,
        CreateProduct(
            name=name or random_id("Product "),
            description="",
            category=category,
            price=Money(amount, currency),
            stock=stock,
        ),
    )
    return product.id


def fake_order_ports() -> Any:
    """OrderPorts over in-memory fakes, with the fakes reachable for assertions."""
    from types import SimpleNamespace

    from tests.fakes import (
        FakeClock,
        FakeIds,
        FakeOrderRepository,
        FakePaymentGateway,
        FakeProductRepository,
    )

    products = FakeProductRepository()
    ns = SimpleNamespace(
        products=products,
        orders=FakeOrderRepository(products),
        payments=FakePaymentGateway(),
        publisher=FakePublisher(),
        cache=FakeCache(),
        clock=FakeClock(),
        ids=FakeIds("ord"),
        metrics=FakeMetrics(),
    )
    # the composition root's own wiring, over fakes
    ns.ports = Container(
        Settings.load({}, table_name="unused", payment_provider="simulator"),
        **{k: v for k, v in vars(ns).items() if k != "products"},
    ).order_ports
    return ns


def fake_product(ns: Any, stock: int = 10, amount: int = 1000, currency: str = "EUR") -> str:
    product = catalog.create_product(
        SimpleNamespace(products=ns.products, clock=ns.clock, ids=FakeIdsOnce()),
        ADMIN,
        CreateProduct(
            name=random_id("P "),
            description="",
            category="books",
            price=Money(amount, currency),
            stock=stock,
        ),
    )
    return product.id


class FakeIdsOnce:
    def new_id(self) -> str:
        return random_id("prod-")
