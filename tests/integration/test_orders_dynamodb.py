"""Orders against DynamoDB Local: the transaction, idempotency and the state machine."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from funcmart.domain import orders as model
from funcmart.domain.commands import CancelOrder, PlaceOrder
from funcmart.domain.errors import IdempotencyKeyReused, OutOfStock
from funcmart.domain.orders import OrderPaid, OrderPlaced, RequestedLine
from funcmart.services import orders
from tests.support.builders import add_product, customer, dynamo_container, random_id


@pytest.fixture
def deps(dynamodb_endpoint, table_name):
    return dynamo_container(dynamodb_endpoint, table_name)


def place(deps, who, product_id, quantity=1, token="tok_ok", key=None):
    body = {"lines": [{"productId": product_id, "quantity": quantity}], "paymentToken": token}
    return orders.place_order(
        deps.order_ports,
        who,
        PlaceOrder(
            idempotency_key=key or random_id("key-"),
            lines=[RequestedLine(product_id, quantity)],
            payment_token=token,
            request_body=body,
            correlation_id=random_id("corr-"),
        ),
    )


def stock_of(deps, product_id):
    return deps.products.get(product_id).stock


def test_200_concurrent_orders_for_50_in_stock_accept_exactly_50(deps):
    # GIVEN a product with 50 in stock
    pid = add_product(deps, stock=50)
    accepted, rejected, errors = [], [], []
    lock = threading.Lock()

    def attempt(i):
        try:
            placed = place(deps, customer(f"c{i}"), pid)
            with lock:
                accepted.append(placed.body["id"])
        except OutOfStock:
            with lock:
                rejected.append(i)
        except Exception as exc:  # anything else is a failure of the test
            with lock:
                errors.append(exc)

    # WHEN 200 customers order one each at once
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(attempt, range(200)))

    # THEN exactly 50 orders exist and stock is 0, never negative
    assert errors == []
    assert len(accepted) == 50
    assert len(rejected) == 150
    assert stock_of(deps, pid) == 0
    for order_id in accepted:
        assert deps.orders.get(order_id).status == model.PENDING
    assert len(deps.publisher.published) == 50


def test_50_concurrent_duplicates_with_one_key_make_one_order(deps):
    pid = add_product(deps, stock=100)
    who, key = customer(), random_id("key-")
    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(lambda _: place(deps, who, pid, 2, key=key), range(50)))
    bodies = {str(a.body) for a in answers}
    assert len(bodies) == 1
    assert sum(not a.replayed for a in answers) == 1
    assert stock_of(deps, pid) == 98
    assert len(deps.orders.list_for_customer(who.subject, 100, None).items) == 1


def test_same_key_different_body_is_rejected(deps):
    pid = add_product(deps, stock=10)
    who, key = customer(), random_id("key-")
    place(deps, who, pid, 1, key=key)
    with pytest.raises(IdempotencyKeyReused):
        place(deps, who, pid, 2, key=key)
    assert stock_of(deps, pid) == 9


def test_out_of_stock_names_the_short_lines_and_changes_nothing(deps):
    plenty, scarce = add_product(deps, stock=10), add_product(deps, stock=1)
    body = {"x": 1}
    with pytest.raises(OutOfStock) as err:
        orders.place_order(
            deps.order_ports,
            customer(),
            PlaceOrder(
                idempotency_key=random_id(),
                lines=[RequestedLine(plenty, 2), RequestedLine(scarce, 2)],
                payment_token="tok_ok",
                request_body=body,
                correlation_id="c",
            ),
        )
    assert [line["productId"] for line in err.value.extra["lines"]] == [scarce]
    assert stock_of(deps, plenty) == 10
    assert stock_of(deps, scarce) == 1


def test_paid_then_fulfilled_with_exactly_one_charge_under_redelivery(deps):
    pid = add_product(deps, stock=5, amount=250)
    placed = place(deps, customer(), pid, 2)
    oid = placed.body["id"]
    event = OrderPlaced(oid, "corr")
    assert orders.process_order(deps.order_ports, event) == "paid"
    published = len(deps.publisher.published)
    assert orders.process_order(deps.order_ports, event) == "already-paid"  # redelivered
    assert len(deps.publisher.published) == published  # and nothing published again
    assert deps.orders.get(oid).status == model.PAID
    charge = deps.payments.lookup(oid)
    assert charge.amount.amount == 500
    assert deps.orders.get_charge(oid).id == charge.id
    assert orders.fulfil_order(deps.order_ports, OrderPaid(oid, "corr")) == "fulfilled"
    assert orders.fulfil_order(deps.order_ports, OrderPaid(oid, "corr")) == "skipped"
    assert deps.orders.get(oid).status == model.FULFILLED


def test_declined_payment_fails_the_order_and_restores_stock_exactly(deps):
    pid = add_product(deps, stock=7)
    oid = place(deps, customer(), pid, 3, token="tok_decline").body["id"]
    assert stock_of(deps, pid) == 4
    assert orders.process_order(deps.order_ports, OrderPlaced(oid, "c")) == "declined"
    assert orders.process_order(deps.order_ports, OrderPlaced(oid, "c")) == "skipped"
    assert deps.orders.get(oid).status == model.FAILED
    assert stock_of(deps, pid) == 7


def test_cancel_paid_order_refunds_and_releases_stock(deps):
    pid = add_product(deps, stock=5)
    who = customer()
    oid = place(deps, who, pid, 2).body["id"]
    orders.process_order(deps.order_ports, OrderPlaced(oid, "c"))
    cancelled = orders.cancel_order(deps.order_ports, who, CancelOrder(order_id=oid))
    assert cancelled.status == model.CANCELLED
    assert stock_of(deps, pid) == 5
    assert deps.payments.lookup(oid).status == "REFUNDED"
    assert deps.orders.get_charge(oid).status == "REFUNDED"


def test_publish_failure_after_commit_is_repaired_by_the_reconciler(deps):
    pid = add_product(deps, stock=5)
    deps.publisher.fail = True
    oid = place(deps, customer(), pid, 1).body["id"]
    assert deps.publisher.published == []
    deps.publisher.fail = False
    policy = orders.ReconcilePolicy(republish_after_seconds=0)
    counts = orders.reconcile_orders(deps.order_ports, policy)
    assert counts["republished"] >= 1
    republished = OrderPlaced(oid, deps.orders.get(oid).correlation_id)
    assert republished in deps.publisher.published
    # and the consumer that receives it takes the order the rest of the way
    assert orders.process_order(deps.order_ports, republished) == "paid"
    assert deps.orders.get(oid).status == model.PAID


def test_concurrent_charges_under_one_key_capture_once(deps):
    # GIVEN ten consumers charging the same order at the same moment
    from funcmart.domain.money import Money

    key = random_id("order-")
    with ThreadPoolExecutor(max_workers=10) as pool:
        charges = list(
            pool.map(lambda _: deps.payments.charge(key, Money(990, "EUR"), "tok_ok"), range(10))
        )
    # THEN every one of them sees the same charge, and money was taken once
    assert len({c.id for c in charges}) == 1
    ledger = deps.tables.SimulatedCharge.get(f"PAYSIM#{key}", "CHARGE", consistent_read=True)
    assert ledger.captures == 1


# ------------------------------------------------------- what each step asks of the table


class Calls:
    """The DynamoDB operations a container's client makes, with their consistency."""

    def __init__(self, deps):
        self.seen: list[str] = []
        self._events = deps.tables.connection.client.meta.events
        self._events.register("before-parameter-build.dynamodb.*", self._record)

    def _record(self, params, model, **_):
        spec = next(iter((params.get("RequestItems") or {}).values()), params)
        strong = bool(spec.get("ConsistentRead"))
        reads = ("GetItem", "BatchGetItem", "Query")
        self.seen.append(
            f"{model.name}{' (consistent)' if strong else ''}"
            if model.name in reads
            else model.name
        )

    def during(self, action):
        self.seen.clear()
        action()
        return list(self.seen)

    def close(self):
        self._events.unregister("before-parameter-build.dynamodb.*", self._record)


@pytest.fixture
def calls(deps):
    deps.orders  # noqa: B018 - the client exists before the hook is added
    recorder = Calls(deps)
    yield recorder
    recorder.close()


def test_a_new_order_reads_its_product_eventually_consistent_and_writes_once(deps, calls):
    pid = add_product(deps, stock=5)
    assert calls.during(lambda: place(deps, customer(), pid)) == [
        "BatchGetItem",
        "TransactWriteItems",
    ]


def test_a_retry_learns_the_first_answer_from_the_failed_condition_not_a_read(deps, calls):
    # GIVEN an order placed under a key
    pid, who = add_product(deps, stock=5), customer()
    first = place(deps, who, pid, key="key-retried")
    # WHEN the request is retried, THEN the transaction's failed condition carries the stored
    # answer (ALL_OLD): no read of the key
    seen = calls.during(lambda: place(deps, who, pid, key="key-retried"))
    assert seen == ["BatchGetItem", "TransactWriteItems"]
    again = place(deps, who, pid, key="key-retried")
    assert (again.replayed, again.body) == (True, first.body)
    assert stock_of(deps, pid) == 4


def test_paid_and_fulfilled_are_one_conditional_update_each_with_their_records(deps, calls):
    # GIVEN a placed order
    pid = add_product(deps, stock=5)
    oid = place(deps, customer(), pid).body["id"]
    # WHEN it is paid and fulfilled
    paying = calls.during(lambda: orders.process_order(deps.order_ports, OrderPlaced(oid, "c")))
    fulfilling = calls.during(lambda: orders.fulfil_order(deps.order_ports, OrderPaid(oid, "c")))
    # THEN each step is one read of the order and one conditional update of it (the charge
    # is the payment simulator's own write), never a transaction
    assert paying == ["GetItem (consistent)", "UpdateItem", "UpdateItem"]
    assert fulfilling == ["GetItem (consistent)", "UpdateItem"]
    # and the payment, the shipment and the notification are in the order item
    item = deps.tables.connection.client.get_item(
        TableName=deps.tables.table_name,
        Key={"pk": {"S": f"ORDER#{oid}"}, "sk": {"S": "ORDER"}},
        ConsistentRead=True,
    )["Item"]
    assert item["status"]["S"] == model.FULFILLED
    assert item["payment"]["M"]["charge_id"]["S"] == deps.payments.lookup(oid).id
    assert item["shipment"]["M"]["tracking_number"]["S"].startswith("FM")
    [note] = item["notifications"]["L"]
    assert note["M"]["kind"]["S"] == "order-shipped"


def test_a_charge_recorded_in_its_own_item_before_is_still_the_orders(deps):
    # GIVEN an order paid when the payment was an item of its own (ORDER#<id> / PAYMENT)
    pid = add_product(deps, stock=5)
    oid = place(deps, customer(), pid).body["id"]
    deps.tables.connection.client.put_item(
        TableName=deps.tables.table_name,
        Item={
            "pk": {"S": f"ORDER#{oid}"},
            "sk": {"S": "PAYMENT"},
            "charge_id": {"S": "ch_earlier"},
            "amount": {"N": "1000"},
            "currency": {"S": "EUR"},
            "status": {"S": "CAPTURED"},
            "created_at": {"S": "2026-11-26T18:00:00.000Z"},
        },
    )
    # THEN it is the order's charge, until one is recorded on the order itself
    assert deps.orders.get_charge(oid).id == "ch_earlier"
    deps.orders.mark_refunded(oid, "2026-11-30T09:00:00.000Z")
    charge = deps.orders.get_charge(oid)
    assert (charge.id, charge.status) == ("ch_earlier", "REFUNDED")
