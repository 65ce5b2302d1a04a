"""The cart functions, Health and PlaceOrder-from-cart, loaded from template.yaml and invoked
with each of their events/ files, on DynamoDB Local and the test Redis.

Every DynamoDB call a function makes must be allowed by its own policy in the template.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from funcmart.adapters.dynamodb.catalog import DynamoProductRepository, product_key
from funcmart.adapters.dynamodb.table import bind
from funcmart.domain.catalog import Product
from funcmart.domain.money import Money
from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.loader import Handler, load_handler
from funcmart_hosts.gateway.template import Function, Template
from tests.functions.invoking import (
    DynamoCalls,
    assert_calls_allowed,
    assert_http_answer,
    invoke,
    load_event,
)

REGION = "us-east-1"
CUSTOMER = "5b1e8c2a-7d3f-4a9e-b6c1-0e2d4f6a8b3c"  # the sub the events carry
CART = f"cart:{CUSTOMER}"
SEED = Product(
    id="3f8e2b7c9a1d4e5fb6c7d8e9f0a1b2c3",
    name="The Pragmatic Programmer",
    description="From journeyman to master.",
    category="books",
    price=Money(3999, "EUR"),
    stock=10,
    created_at="2026-11-01T09:00:00.000Z",
    updated_at="2026-11-01T09:00:00.000Z",
)
FUNCTIONS = ["GetCart", "PutCartItem", "RemoveCartItem", "ClearCart", "Health", "PlaceOrder"]


@dataclass(frozen=True)
class Case:
    function: str
    status: int
    cart_before: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)  # must appear in the JSON body
    cart_after: dict[str, str] | None = None  # the Redis hash afterwards, when checked


CASES: dict[str, Case] = {
    "get_cart.json": Case(
        "GetCart",
        200,
        {SEED.id: "2"},
        {"itemCount": 2, "total": {"amount": 7998, "currency": "EUR"}},
        cart_after={SEED.id: "2"},
    ),
    "put_cart_item.json": Case(
        "PutCartItem",
        200,
        body={"itemCount": 2, "total": {"amount": 7998, "currency": "EUR"}},
        cart_after={SEED.id: "2"},
    ),
    "put_cart_item_zero_removes.json": Case(
        "PutCartItem", 200, {SEED.id: "3"}, {"lines": [], "total": None}, cart_after={}
    ),
    "put_cart_item_unknown_product.json": Case("PutCartItem", 404, cart_after={}),
    "put_cart_item_invalid_quantity.json": Case(
        "PutCartItem", 400, {SEED.id: "1"}, cart_after={SEED.id: "1"}
    ),
    "remove_cart_item.json": Case("RemoveCartItem", 204, {SEED.id: "1", "b": "1"}, {}, {"b": "1"}),
    "clear_cart.json": Case("ClearCart", 204, {SEED.id: "1"}, cart_after={}),
    "health.json": Case(
        "Health", 200, body={"status": "ok", "checks": {"dynamodb": "ok", "redis": "ok"}}
    ),
    "place_order_from_cart.json": Case(
        "PlaceOrder",
        202,
        {SEED.id: "2"},
        {"status": "PENDING", "total": {"amount": 7998, "currency": "EUR"}},
        cart_after={},
    ),
}


@pytest.fixture(scope="module")
def queue_url(moto_endpoint: str) -> str:
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name=REGION)
    return str(sqs.create_queue(QueueName="cart-functions-order-placed")["QueueUrl"])


@pytest.fixture(scope="module")
def env(
    tpl: Template,
    function_table: str,
    redis_url: str,
    dynamodb_endpoint: str,
    moto_endpoint: str,
    queue_url: str,
) -> Callable[..., dict[str, str]]:
    def make(fn: Function, redis: str = redis_url) -> dict[str, str]:
        refs = {name: str(p.get("Default")) for name, p in tpl.raw["Parameters"].items()}
        refs.update(Table=function_table, RedisUrl=redis, OrderPlacedQueue=queue_url)
        values = {k: template.resolve(v, refs) for k, v in fn.environment.items()}
        values.update(
            AWS_ENDPOINT_URL_DYNAMODB=dynamodb_endpoint,
            AWS_ENDPOINT_URL_SQS=moto_endpoint,
            RATE_LIMIT="off",
        )
        return values

    return make


@pytest.fixture(scope="module")
def cart_handlers(tpl: Template, env: Callable[..., dict[str, str]]) -> dict[str, Handler]:
    return {lid: load_handler(tpl.functions[lid], env(tpl.functions[lid])) for lid in FUNCTIONS}


@pytest.fixture(scope="module")
def products(function_table: str, dynamodb_endpoint: str) -> DynamoProductRepository:
    return DynamoProductRepository(bind(function_table, REGION, dynamodb_endpoint))


@pytest.fixture
def seeded(products: DynamoProductRepository, dynamodb_client: Any, function_table: str) -> None:
    pk, sk = product_key(SEED.id)
    dynamodb_client.delete_item(TableName=function_table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
    products.add(SEED)


def test_every_cart_function_has_an_event(tpl: Template) -> None:
    covered = {case.function for case in CASES.values()}
    assert set(FUNCTIONS) <= covered
    for name, case in CASES.items():
        fn = tpl.functions[case.function]
        event = load_event(name)
        assert name.startswith(fn.module)
        assert event["routeKey"] in {f"{r.method} {r.path}" for r in fn.routes}


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("name", sorted(CASES))
def test_function_answers_its_event(
    name: str,
    tpl: Template,
    cart_handlers: dict[str, Handler],
    redis_client: Any,
    dynamodb_calls: DynamoCalls,
) -> None:
    case = CASES[name]
    # GIVEN the caller's cart as the case says
    if case.cart_before:
        redis_client.hset(CART, mapping=case.cart_before)
    event = load_event(name)
    # WHEN the function handles the event
    status, headers, body = invoke(cart_handlers[case.function], event)
    # THEN it answers as expected
    assert_http_answer(event, status, headers, body, case.status, case.body)
    # AND the cart in Redis is what it should be
    if case.cart_after is not None:
        assert redis_client.hgetall(CART) == case.cart_after
    # AND every DynamoDB call is one its own policy allows
    assert_calls_allowed(tpl, case.function, dynamodb_calls)


@pytest.mark.usefixtures("seeded")
def test_a_replayed_order_from_the_cart_gets_the_first_answer(
    cart_handlers: dict[str, Handler], redis_client: Any
) -> None:
    # GIVEN an order placed from the cart, which emptied the cart
    redis_client.hset(CART, mapping={SEED.id: "1"})
    event = load_event("place_order_from_cart.json")
    event["headers"]["idempotency-key"] = "replay-after-cart-cleared"
    first = invoke(cart_handlers["PlaceOrder"], json.loads(json.dumps(event)))
    assert first[0] == 202
    assert redis_client.hgetall(CART) == {}
    # WHEN the client retries with the same key
    again = invoke(cart_handlers["PlaceOrder"], event)
    # THEN it gets the same order, not "the cart is empty"
    assert again[0] == 202
    assert again[2] == first[2]
    assert again[1]["Idempotent-Replayed"] == "true"


def _dead_redis() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


@pytest.mark.usefixtures("seeded")
def test_with_redis_down_the_cart_is_503_and_health_is_degraded(
    tpl: Template, env: Callable[..., dict[str, str]]
) -> None:
    dead = _dead_redis()
    fns = {
        lid: load_handler(tpl.functions[lid], env(tpl.functions[lid], dead)) for lid in FUNCTIONS
    }
    for name in ["get_cart.json", "put_cart_item.json", "clear_cart.json"]:
        status, headers, body = invoke(fns[CASES[name].function], load_event(name))
        assert status == 503, name
        assert headers["Content-Type"] == "application/problem+json"
        assert int(headers["Retry-After"]) >= 1
    status, _, body = invoke(fns["Health"], load_event("health.json"))
    assert status == 200
    assert body["status"] == "degraded"
    assert body["checks"]["redis"] == "degraded"


def test_health_is_503_without_the_table(tpl: Template, env: Callable[..., dict[str, str]]) -> None:
    fn = tpl.functions["Health"]
    values = env(fn)
    values["TABLE_NAME"] = "funcmart-no-such-table"
    status, _, body = invoke(load_handler(fn, values), load_event("health.json"))
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["dynamodb"] == "unavailable"
    assert "version" in body
