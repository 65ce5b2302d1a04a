"""Operations against DynamoDB Local: the waiting-orders index, operator actions stored on
the order, and the payment record following the ledger (the simulator's, in the table)."""

from __future__ import annotations

import pytest

from funcmart.domain import orders as model
from funcmart.domain.commands import (
    CancelStuckOrder,
    ListOrdersByState,
    PlaceOrder,
    ResolveOrder,
    RetryOrder,
)
from funcmart.domain.errors import Conflict, InvalidRequest
from funcmart.domain.identity import Principal
from funcmart.domain.orders import OrderPaid, OrderPlaced, RequestedLine
from funcmart.services import operations, orders
from tests.support.builders import (
    ANY_DEAD_LETTER,
    add_product,
    customer,
    dynamo_container,
    random_id,
)

OPERATOR = Principal("operator-9", frozenset({"admin"}))


@pytest.fixture
def deps(dynamodb_endpoint, table_name):
    return dynamo_container(dynamodb_endpoint, table_name)


def place(deps, pid, token="tok_ok", qty=1):
    lines = [RequestedLine(pid, qty)]
    return orders.place_order(
        deps.order_ports,
        customer(),
        PlaceOrder(
            idempotency_key=random_id("key-"),
            lines=lines,
            payment_token=token,
            request_body={"t": token},
            correlation_id="corr",
        ),
    ).body["id"]


def flag(deps, oid, event_type=OrderPlaced):
    assert (
        orders.handle_dead_letter(deps.order_ports, ANY_DEAD_LETTER, event_type(oid, "c"), "dlq")
        == "flagged"
    )


def listed(deps, state, limit=100):
    ids, cursor = [], None
    for _ in range(20):
        page = operations.list_orders_by_state(
            deps.orders, OPERATOR, ListOrdersByState(state, limit, cursor)
        )
        ids += [o.id for o in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids
    raise AssertionError("the listing did not end")


def test_waiting_orders_are_listed_oldest_first_across_pages(deps):
    pid = add_product(deps, stock=100)
    flagged = []
    for _ in range(5):
        oid = place(deps, pid)
        flag(deps, oid)
        flagged.append(oid)
    pending = [place(deps, pid) for _ in range(12)]  # spread over the 8 open shards
    assert listed(deps, model.NEEDS_ATTENTION, limit=2) == flagged
    assert set(listed(deps, model.PENDING, limit=5)) >= set(pending)
    assert not set(flagged) & set(listed(deps, model.PENDING, limit=5))


def test_a_cursor_of_another_listing_is_refused(deps):
    pid = add_product(deps, stock=10)
    for _ in range(3):
        flag(deps, place(deps, pid))
    page = operations.list_orders_by_state(
        deps.orders, OPERATOR, ListOrdersByState(model.NEEDS_ATTENTION, 1)
    )
    with pytest.raises(InvalidRequest):
        operations.list_orders_by_state(
            deps.orders, OPERATOR, ListOrdersByState(model.PENDING, 1, page.next_cursor)
        )


def test_retry_stores_the_action_and_leaves_the_waiting_index(deps):
    pid = add_product(deps, stock=10)
    oid = place(deps, pid, token="tok_flaky")
    flag(deps, oid)
    operations.retry_order(deps.order_ports, OPERATOR, RetryOrder(oid, "flaky card, try again"))
    stored = deps.orders.get(oid)
    assert stored.status == model.PENDING
    assert stored.flagged_from == model.PENDING
    (action,) = stored.actions
    assert (action.action, action.actor, action.reason) == (
        "retry",
        "operator-9",
        "flaky card, try again",
    )
    assert oid not in listed(deps, model.NEEDS_ATTENTION)
    assert stored.failure_reason is None
    # back in the pipeline, the reconciler counts its republishes from zero again
    assert deps.orders.record_republish(stored, stored.updated_at) == 1


def test_cancel_refunds_a_charge_that_raced_the_flag_once_and_records_it(deps):
    pid = add_product(deps, stock=10)
    oid = place(deps, pid, qty=3)
    order = deps.orders.get(oid)
    # GIVEN the charge was captured and the flag landed before PAID was written
    charge = deps.payments.charge(oid, order.total, "tok_ok")
    flag(deps, oid)
    paid = order.transition(model.PAID, deps.clock.now())
    assert deps.orders.transition(order, paid, charge=charge) is False
    assert orders.process_order(deps.order_ports, OrderPlaced(oid, "c")) == "skipped"
    # WHEN an operator cancels it, twice
    cmd = CancelStuckOrder(oid, "customer changed their mind")
    operations.cancel_stuck_order(deps.order_ports, OPERATOR, cmd)
    operations.cancel_stuck_order(deps.order_ports, OPERATOR, cmd)
    # THEN stock is back, the ledger shows one refund and the order agrees
    assert deps.products.get(pid).stock == 10
    assert deps.payments.lookup(oid).status == model.REFUNDED
    assert deps.orders.get_charge(oid).status == model.REFUNDED
    with pytest.raises(Conflict):
        operations.retry_order(deps.order_ports, OPERATOR, RetryOrder(oid, "too late"))


def test_resolve_records_the_ledgers_charge_on_the_order(deps):
    pid = add_product(deps, stock=10)
    oid = place(deps, pid)
    assert orders.process_order(deps.order_ports, OrderPlaced(oid, "c")) == "paid"
    flag(deps, oid, OrderPaid)
    done = operations.resolve_order(deps.order_ports, OPERATOR, ResolveOrder(oid, "by hand"))
    assert done.status == model.FULFILLED
    assert deps.orders.get(oid).actions[-1].reason == "by hand"
    assert deps.orders.get_charge(oid).status == model.CAPTURED
