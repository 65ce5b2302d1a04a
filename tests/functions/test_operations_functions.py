"""Every operations function, loaded from template.yaml, invoked with each of its events/
files on DynamoDB Local, the test Redis and the template's queues on moto. Every DynamoDB
call a function makes must be one its own policy allows."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from funcmart.domain import orders as model
from funcmart.domain.orders import OrderPaid, OrderPlaced
from funcmart.services import orders
from funcmart_hosts.gateway.loader import Handler
from funcmart_hosts.gateway.template import Template
from tests.functions.invoking import (
    DynamoCalls,
    assert_calls_allowed,
    assert_http_answer,
    invoke,
    load_event,
)
from tests.functions.test_order_functions import OID, PRODUCT, World, world  # noqa: F401
from tests.support.builders import ANY_DEAD_LETTER


def flagged(w: World) -> None:
    """A PENDING order whose OrderPlaced was dead-lettered."""
    w.pending()
    assert (
        orders.handle_dead_letter(w.deps.order_ports, ANY_DEAD_LETTER, OrderPlaced(OID, "c"), "dlq")
        == "flagged"
    )


def paid_then_flagged(w: World) -> None:
    """A PAID order whose OrderPaid was dead-lettered: its charge is captured."""
    w.paid()
    assert (
        orders.handle_dead_letter(w.deps.order_ports, ANY_DEAD_LETTER, OrderPaid(OID, "c"), "dlq")
        == "flagged"
    )


def dead_letters(w: World) -> None:
    for dlq, body in (
        ("OrderPlacedDeadLetterQueue", {"type": "OrderPlaced", "orderId": "a"}),
        ("OrderPlacedDeadLetterQueue", {"type": "OrderPlaced", "orderId": "b"}),
        ("OrderPaidDeadLetterQueue", {"type": "OrderPaid", "orderId": "c"}),
    ):
        w.sqs.send_message(QueueUrl=w.queue_urls[dlq], MessageBody=json.dumps(body))


# ------------------------------------------------------------------- checks on answers
def lists_the_flagged_order(body: Any, _: World) -> None:
    assert [o["id"] for o in body["items"]] == [OID]
    assert body["items"][0]["flaggedFrom"] == model.PENDING


def retried_and_republished(body: Any, w: World) -> None:
    assert w.order().status == model.PENDING
    (action,) = body["operatorActions"]
    assert action["actor"] == "operator-1"
    assert action["action"] == "retry"
    assert action["reason"] == "payment provider outage over"
    assert [m["orderId"] for m in w.messages("OrderPlacedQueue")] == [OID]


def untouched(_: Any, w: World) -> None:
    assert w.order().status == model.PENDING
    assert w.messages("OrderPlacedQueue") == []


def still_waiting(_: Any, w: World) -> None:
    assert w.order().status == model.NEEDS_ATTENTION


def cancelled_and_refunded(body: Any, w: World) -> None:
    assert w.order().status == model.CANCELLED
    assert w.stock() == PRODUCT.stock
    assert body["operatorActions"][0]["reason"] == "customer asked by phone"
    ledger = w.deps.payments.lookup(OID)
    assert ledger is not None
    assert ledger.status == model.REFUNDED
    assert w.deps.orders.get_charge(OID).status == model.REFUNDED


def resolved(body: Any, w: World) -> None:
    assert w.order().status == model.FULFILLED
    assert body["operatorActions"][0]["action"] == "resolve"
    assert w.deps.orders.get_charge(OID).status == model.CAPTURED
    # Resolving publishes nothing: the function has built no publisher (nor its client).
    assert sys.modules["funcmart_fn_ResolveOrder"].deps.built("publisher") is None


def moved_back_once(body: Any, w: World) -> None:
    moved = {q["deadLetterQueue"].rsplit("-", 1)[-1]: q["moved"] for q in body["queues"]}
    assert moved == {"OrderPlacedDeadLetterQueue": 2, "OrderPaidDeadLetterQueue": 1}
    placed = sorted(m["orderId"] for m in w.messages("OrderPlacedQueue"))
    assert placed == ["a", "b"]
    assert [m["orderId"] for m in w.messages("OrderPaidQueue")] == ["c"]
    assert w.messages("OrderPlacedDeadLetterQueue") == []
    assert w.messages("OrderPaidDeadLetterQueue") == []


def nothing_moved(_: Any, w: World) -> None:
    assert len(w.messages("OrderPlacedDeadLetterQueue")) == 2


@dataclass(frozen=True)
class Case:
    function: str
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    given: Callable[[World], Any] | None = None
    check: Callable[[Any, World], None] | None = None


CASES: dict[str, Case] = {
    "list_orders_by_state.json": Case(
        "ListOrdersByState", 200, given=flagged, check=lists_the_flagged_order
    ),
    "list_orders_by_state_as_customer.json": Case("ListOrdersByState", 403),
    "list_orders_by_state_terminal_state.json": Case(
        "ListOrdersByState", 400, {"field": "query.state"}
    ),
    "retry_order.json": Case(
        "RetryOrder", 200, {"status": "PENDING"}, given=flagged, check=retried_and_republished
    ),
    "retry_order_not_waiting.json": Case("RetryOrder", 409, given=World.pending, check=untouched),
    "cancel_stuck_order.json": Case(
        "CancelStuckOrder",
        200,
        {"status": "CANCELLED"},
        given=paid_then_flagged,
        check=cancelled_and_refunded,
    ),
    "cancel_stuck_order_without_reason.json": Case(
        "CancelStuckOrder", 400, {"field": "reason"}, given=flagged, check=still_waiting
    ),
    "resolve_order.json": Case(
        "ResolveOrder", 200, {"status": "FULFILLED"}, given=paid_then_flagged, check=resolved
    ),
    "resolve_order_unpaid.json": Case("ResolveOrder", 409, given=flagged, check=still_waiting),
    "redrive_dead_letters.json": Case(
        "RedriveDeadLetters", 202, given=dead_letters, check=moved_back_once
    ),
    "redrive_dead_letters_as_customer.json": Case(
        "RedriveDeadLetters", 403, given=dead_letters, check=nothing_moved
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_operations_function_answers_its_event(
    name: str,
    tpl: Template,
    handlers: dict[str, Handler],
    world: World,  # noqa: F811
    dynamodb_calls: DynamoCalls,
) -> None:
    case = CASES[name]
    world.reset()
    if case.given is not None:
        case.given(world)
    dynamodb_calls.calls.clear()
    event = load_event(name)
    # WHEN the function handles the event
    status, headers, body = invoke(handlers[case.function], event)
    # THEN it answers as expected
    assert_http_answer(event, status, headers, body, case.status, case.body)
    # AND every DynamoDB call it made is one its own policy allows
    assert_calls_allowed(tpl, case.function, dynamodb_calls)
    if case.check is not None:
        case.check(body, world)
