"""Every order function, loaded from template.yaml, invoked with each of its events/ files.

HTTP functions get API Gateway events, consumers SQS batches, the reconciler a scheduled
event. Each runs with the environment the template gives it: the module's DynamoDB Local
table, the test Redis, and the template's queues created on moto. Every DynamoDB call a
function makes must be one its own policy allows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from funcmart.domain import orders as model
from funcmart.domain.catalog import Product
from funcmart.domain.money import Money
from funcmart.domain.orders import IdempotencyRecord, Order, OrderLine, OrderPlaced
from funcmart.services import orders
from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.loader import Handler
from funcmart_hosts.gateway.template import Template
from funcmart_hosts.local.resources import Deployment
from tests.functions.invoking import (
    DynamoCalls,
    assert_calls_allowed,
    assert_http_answer,
    invoke,
    load_event,
)
from tests.support.builders import dynamo_container

OID = "00000000000000000000000000000a01"
PID = "00000000000000000000000000000b01"
OWNER = "customer-1"
PRODUCT = Product(
    id=PID,
    name="Espresso cup",
    description="",
    category="kitchen",
    price=Money(850, "EUR"),
    stock=20,
    created_at="2026-11-01T09:00:00.000Z",
    updated_at="2026-11-01T09:00:00.000Z",
)


@dataclass
class World:
    """The module's table and queues, seen from outside the functions."""

    deps: Any
    sqs: Any
    queue_urls: dict[str, str]
    table: str
    dynamodb_client: Any

    def order(self) -> Order | None:
        return self.deps.orders.get(OID)

    def stock(self) -> int:
        return int(self.deps.products.get(PID).stock)

    def messages(self, queue: str) -> list[dict[str, Any]]:
        """What the queue holds, taken off it (a message left in flight would count as a
        backlog for the next test's reconciler)."""
        url = self.queue_urls[queue]
        got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        for m in messages:
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in messages]

    def reset(self) -> None:
        """An empty order partition, the product with its stock, empty queues."""
        client, table = self.dynamodb_client, self.table
        for pk in (f"ORDER#{OID}", f"PAYSIM#{OID}", f"PRODUCT#{PID}"):
            items = client.query(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
            )["Items"]
            for item in items:
                client.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
        for key in ("2f0c7b1e-demo-key-1", "2f0c7b1e-demo-key-2", "seed-key"):
            client.delete_item(
                TableName=table,
                Key={"pk": {"S": f"IDEMPOTENCY#{OWNER}#{key}"}, "sk": {"S": "IDEMPOTENCY"}},
            )
        self.deps.products.add(PRODUCT)
        for url in self.queue_urls.values():
            self.drain(url)

    def drain(self, url: str) -> None:
        """Delete whatever a queue holds (PurgeQueue may run once a minute only)."""
        for _ in range(20):
            got = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0
            ).get("Messages", [])
            if not got:
                return
            for m in got:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def pending(self, minutes_ago: int = 0, token: str = "tok_ok") -> Order:
        at = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds")
        at = at.replace("+00:00", "Z")
        order = Order(
            id=OID,
            customer=OWNER,
            lines=(OrderLine(PID, PRODUCT.name, PRODUCT.price, 2),),
            total=Money(1700, "EUR"),
            status=model.PENDING,
            payment_token=token,
            created_at=at,
            updated_at=at,
            correlation_id="req-seed",
        )
        record = IdempotencyRecord(OWNER, "seed-key", "x", 202, order.to_dict(), 0)
        self.deps.orders.place(order, {PID: PRODUCT.version}, record)
        return order

    def paid(self) -> None:
        self.pending()
        assert orders.process_order(self.deps.order_ports, OrderPlaced(OID, "c")) == "paid"


# ------------------------------------------------------------------- checks on answers
def placed_and_published(body: Any, w: World) -> None:
    stored = w.deps.orders.get(body["id"])
    assert stored is not None
    assert stored.status == model.PENDING
    assert w.stock() == PRODUCT.stock - 2
    assert [m["orderId"] for m in w.messages("OrderPlacedQueue")] == [body["id"]]


def nothing_placed(_: Any, w: World) -> None:
    assert w.stock() == PRODUCT.stock
    assert w.messages("OrderPlacedQueue") == []


def lists_the_order(body: Any, _: World) -> None:
    assert [o["id"] for o in body["items"]] == [OID]


def cancelled_with_stock_back(body: Any, w: World) -> None:
    assert body["status"] == model.CANCELLED
    assert w.stock() == PRODUCT.stock


def paid_and_published(body: Any, w: World) -> None:
    assert body == {"batchItemFailures": []}
    assert w.order().status == model.PAID
    assert [m["orderId"] for m in w.messages("OrderPaidQueue")] == [OID]


def poison_dead_lettered_at_once(body: Any, w: World) -> None:
    """The poison record (not an order event: no retry can fix it) is sent to ProcessOrder's
    own dead-letter queue, with why, and reported processed; the good record is paid."""
    event = load_event("process_order_batch_with_poison.json")
    poison = event["Records"][1]
    assert body == {"batchItemFailures": []}
    assert w.order().status == model.PAID
    url = w.queue_urls["OrderPlacedDeadLetterQueue"]
    got = w.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    (dead,) = got["Messages"]
    w.sqs.delete_message(QueueUrl=url, ReceiptHandle=dead["ReceiptHandle"])
    assert dead["Body"] == poison["body"]
    assert dead["MessageAttributes"]["failure"]["StringValue"].startswith("InvalidRequest: ")


def fulfilled(body: Any, w: World) -> None:
    assert body == {"batchItemFailures": []}
    assert w.order().status == model.FULFILLED


def flagged(body: Any, w: World) -> None:
    assert body == {"batchItemFailures": []}
    assert w.order().status == model.NEEDS_ATTENTION


def republished(body: Any, w: World) -> None:
    assert body["republished"] == 1
    assert [m["orderId"] for m in w.messages("OrderPlacedQueue")] == [OID]


# Minutes after which HandleDeadLetters, as the template deploys it, believes a dead letter.
PAST_THE_RETRY_BUDGET = (
    int(template.load().raw["Parameters"]["DeadLetterMinAgeSeconds"]["Default"]) // 60 + 1
)


@dataclass(frozen=True)
class Case:
    function: str
    status: int | None = None  # HTTP status; None for queue and schedule functions
    body: dict[str, Any] = field(default_factory=dict)
    given: Callable[[World], Any] | None = None
    check: Callable[[Any, World], None] | None = None


CASES: dict[str, Case] = {
    "place_order.json": Case("PlaceOrder", 202, {"status": "PENDING"}, check=placed_and_published),
    "place_order_without_idempotency_key.json": Case(
        "PlaceOrder", 400, {"field": "Idempotency-Key"}, check=nothing_placed
    ),
    "place_order_out_of_stock.json": Case(
        "PlaceOrder", 409, {"title": "Insufficient stock"}, check=nothing_placed
    ),
    "get_order.json": Case("GetOrder", 200, {"id": OID}, given=World.pending),
    "get_order_of_another_customer.json": Case("GetOrder", 404, given=World.pending),
    "list_orders.json": Case("ListOrders", 200, given=World.pending, check=lists_the_order),
    "cancel_order.json": Case(
        "CancelOrder", 200, given=World.pending, check=cancelled_with_stock_back
    ),
    "process_order.json": Case("ProcessOrder", given=World.pending, check=paid_and_published),
    "process_order_batch_with_poison.json": Case(
        "ProcessOrder", given=World.pending, check=poison_dead_lettered_at_once
    ),
    "fulfil_order.json": Case("FulfilOrder", given=World.paid, check=fulfilled),
    "handle_dead_letters.json": Case(
        "HandleDeadLetters",
        given=lambda w: w.pending(minutes_ago=PAST_THE_RETRY_BUDGET),
        check=flagged,
    ),
    "reconcile_orders.json": Case(
        "ReconcileOrders", given=lambda w: w.pending(minutes_ago=10), check=republished
    ),
}


class _Silent:
    def publish(self, event: Any) -> None:
        pass


@pytest.fixture(scope="module")
def world(
    deployment: Deployment,
    function_table: str,
    dynamodb_endpoint: str,
    moto_endpoint: str,
    dynamodb_client: Any,
) -> World:
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    # the seeding container publishes nothing: only the functions under test do
    deps = dynamo_container(dynamodb_endpoint, function_table, publisher=_Silent())
    return World(
        deps=deps,
        sqs=sqs,
        queue_urls={lid: q.url for lid, q in deployment.queues.items()},
        table=function_table,
        dynamodb_client=dynamodb_client,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_order_function_answers_its_event(
    name: str,
    tpl: Template,
    handlers: dict[str, Handler],
    world: World,
    dynamodb_calls: DynamoCalls,
) -> None:
    case = CASES[name]
    world.reset()
    if case.given is not None:
        case.given(world)
    dynamodb_calls.calls.clear()
    event = load_event(name)
    # WHEN the function handles the event, THEN it answers as expected
    if case.status is None:  # a queue or schedule event: the handler's result as it is
        body = handlers[case.function](event, None)
        for key, value in case.body.items():
            assert body[key] == value, key
    else:
        status, headers, body = invoke(handlers[case.function], event)
        assert_http_answer(event, status, headers, body, case.status, case.body)
    # AND every DynamoDB call it made is one its own policy allows
    assert_calls_allowed(tpl, case.function, dynamodb_calls)
    if case.check is not None:
        case.check(body, world)


def test_a_declined_payment_gives_the_stock_back_and_invalidates_the_cached_product(
    handlers: dict[str, Handler], world: World, redis_client: Any
) -> None:
    from funcmart.adapters.redis_store import RedisProductCache

    key = RedisProductCache.key(PID)
    # GIVEN an order of 2 whose payment will be declined, and its product cached
    world.reset()
    world.pending(token="tok_decline")
    redis_client.set(key, json.dumps(PRODUCT.to_dict()))
    # WHEN ProcessOrder takes its OrderPlaced (its cold start built no product cache)
    body = handlers["ProcessOrder"](load_event("process_order.json"), None)
    # THEN the order failed, the stock is back, and the cached product was invalidated
    assert body == {"batchItemFailures": []}
    order = world.order()
    assert order is not None
    assert order.status == model.FAILED
    assert world.stock() == PRODUCT.stock  # the 2 reserved when it was placed
    assert redis_client.get(key) == RedisProductCache.TOMBSTONE


def test_a_dead_letter_sooner_than_the_retry_budget_leaves_the_order_alone(
    tpl: Template, handlers: dict[str, Handler], world: World, dynamodb_calls: DynamoCalls
) -> None:
    # GIVEN an order placed just now
    world.reset()
    world.pending()
    dynamodb_calls.calls.clear()
    # WHEN its OrderPlaced arrives on the dead-letter queue (posted there, not redriven)
    body = handlers["HandleDeadLetters"](load_event("handle_dead_letters.json"), None)
    # THEN it is acknowledged and the order is still PENDING: no retries can have run out yet
    assert body == {"batchItemFailures": []}
    assert world.order().status == model.PENDING
    assert_calls_allowed(tpl, "HandleDeadLetters", dynamodb_calls)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.status is None))
def test_queue_and_schedule_events_have_the_lambda_shape(tpl: Template, name: str) -> None:
    fn = tpl.functions[CASES[name].function]
    assert name.removesuffix(".json").startswith(fn.module)
    event = load_event(name)
    if fn.queues:
        assert event["Records"]
        assert all(r["eventSource"] == "aws:sqs" for r in event["Records"])
    else:
        assert fn.schedules
        assert event["detail-type"] == "Scheduled Event"


def test_a_retry_of_a_placed_order_replays_past_a_spent_limit(
    tpl: Template, env_for: Callable[..., dict[str, str]], world: World
) -> None:
    """The orders limit counts new orders; a retry with the key of a placed one creates
    nothing and gets its answer even when the caller's limit is spent."""
    import copy
    import uuid

    from funcmart_hosts.gateway.loader import load_handler

    world.reset()
    fn = tpl.functions["PlaceOrder"]
    place = load_handler(fn, {**env_for(fn), "RATE_LIMIT": "2/3600s"})
    caller = f"customer-{uuid.uuid4().hex[:8]}"

    def request(key: str) -> dict[str, Any]:
        event = copy.deepcopy(load_event("place_order.json"))
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = caller
        event["headers"]["idempotency-key"] = key
        answer: dict[str, Any] = place(event, None)
        return answer

    first = request("key-1")
    assert first["statusCode"] == 202
    assert request("key-2")["statusCode"] == 202  # the limit is now spent
    # WHEN the caller retries the first order, then tries a new one
    replayed = request("key-1")
    refused = request("key-3")
    # THEN the retry replays the first answer; the new order is refused
    assert replayed["statusCode"] == 202, replayed["body"]
    assert replayed["headers"]["Idempotent-Replayed"] == "true"
    assert json.loads(replayed["body"]) == json.loads(first["body"])
    assert refused["statusCode"] == 429
