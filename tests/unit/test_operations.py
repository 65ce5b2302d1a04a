"""No order is a dead end: each way into NEEDS_ATTENTION, and each way out, over fakes.

Every scenario ends with the payment ledger (the gateway) and the order's payment record
agreeing, and with the stock where it belongs.
"""

from __future__ import annotations

import pytest

from funcmart.domain import orders as model
from funcmart.domain.commands import (
    CancelOrder,
    CancelStuckOrder,
    ListOrdersByState,
    PlaceOrder,
    ResolveOrder,
    RetryOrder,
)
from funcmart.domain.errors import Conflict, Forbidden, InvalidRequest, TransientFailure
from funcmart.domain.identity import Principal
from funcmart.domain.orders import OrderPaid, OrderPlaced, RequestedLine
from funcmart.services import operations, orders
from tests.fakes import FakeQueueBacklog
from tests.support.builders import (
    ADMIN,
    ANY_DEAD_LETTER,
    customer,
    fake_order_ports,
    fake_product,
    random_id,
)

OPERATOR = Principal("operator-7", frozenset({"admin"}))


@pytest.fixture
def ns():
    return fake_order_ports()


def place(ns, pid, qty=2, token="tok_ok"):
    lines = [RequestedLine(pid, qty)]
    placed = orders.place_order(
        ns.ports,
        customer(),
        PlaceOrder(
            idempotency_key=random_id(),
            lines=lines,
            payment_token=token,
            request_body={"t": token},
            correlation_id="c",
        ),
    )
    return placed.body["id"]


def ledger_agrees(ns, oid):
    """The gateway's charge and the order's payment record say the same."""
    ledger = ns.payments.lookup(oid)
    recorded = ns.orders.get_charge(oid)
    assert (ledger and ledger.status) == (recorded and recorded.status), (ledger, recorded)


def dead_letter(ns, oid, event):
    assert (
        orders.handle_dead_letter(ns.ports, ANY_DEAD_LETTER, event, "order-placed-dlq") == "flagged"
    )
    assert ns.orders.get(oid).status == model.NEEDS_ATTENTION


def run_pipeline(ns, oid):
    """Deliver what was published, as the queues would, until nothing is left."""
    for _ in range(10):
        events, ns.publisher.published[:] = list(ns.publisher.published), []
        if not events:
            return
        for event in events:
            if event.order_id != oid:
                continue
            if isinstance(event, OrderPlaced):
                orders.process_order(ns.ports, event)
            else:
                orders.fulfil_order(ns.ports, event)


def retry(ns, oid, reason="provider back"):
    return operations.retry_order(ns.ports, OPERATOR, RetryOrder(oid, reason))


def cancel(ns, oid, reason="customer asked"):
    return operations.cancel_stuck_order(ns.ports, OPERATOR, CancelStuckOrder(oid, reason))


class TestWaysIn:
    """Each of the four ways an order got stuck, and its way out."""

    def test_transient_token_stuck_order_is_cancelled_with_stock_back(self, ns):
        # GIVEN an order whose payment failed on every delivery and was dead-lettered
        pid = fake_product(ns, stock=10)
        oid = place(ns, pid, token="tok_transient")
        for _ in range(3):
            with pytest.raises(TransientFailure):
                orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        dead_letter(ns, oid, OrderPlaced(oid, "c"))
        assert ns.products.get(pid).stock == 8
        # WHEN an operator cancels it
        cancelled = cancel(ns, oid)
        # THEN the stock is back, nothing was charged, nothing refunded
        assert cancelled.status == model.CANCELLED
        assert ns.products.get(pid).stock == 10
        assert ns.payments.refunds == []
        ledger_agrees(ns, oid)

    def test_outage_longer_than_the_budget_is_retried_to_fulfilled(self, ns):
        pid = fake_product(ns)
        oid = place(ns, pid)
        ns.payments.down = True
        with pytest.raises(TransientFailure):
            orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        dead_letter(ns, oid, OrderPlaced(oid, "c"))
        ns.payments.down = False
        # WHEN the operator retries once the provider is back
        assert retry(ns, oid).status == model.PENDING
        run_pipeline(ns, oid)
        # THEN it was paid once and fulfilled
        assert ns.orders.get(oid).status == model.FULFILLED
        assert ns.payments.capture_calls == 1
        ledger_agrees(ns, oid)

    def test_paid_order_flagged_during_a_fulfilment_backlog_is_retried_to_fulfilled(self, ns):
        pid = fake_product(ns)
        oid = place(ns, pid)
        orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        # GIVEN the paid order was flagged (no queue evidence, past the time limit)
        policy = orders.ReconcilePolicy(max_republish=0, flag_after_seconds=60)
        ns.clock.advance(600)
        assert orders.reconcile_orders(ns.ports, policy, FakeQueueBacklog())["flagged"] == 1
        assert ns.orders.get(oid).flagged_from == model.PAID
        ns.publisher.published.clear()
        # WHEN the operator retries, it goes back to PAID (not charged again) and on
        assert retry(ns, oid).status == model.PAID
        assert ns.publisher.published == [OrderPaid(oid, "c")]
        run_pipeline(ns, oid)
        assert ns.orders.get(oid).status == model.FULFILLED
        assert ns.payments.capture_calls == 1
        ledger_agrees(ns, oid)

    def _charge_racing_the_flag(self, ns, oid):
        real_charge = ns.payments.charge

        def charge_then_flag(key, amount, token):
            charge = real_charge(key, amount, token)
            dead_letter(ns, oid, OrderPlaced(oid, "c"))  # the flag lands meanwhile
            return charge

        ns.payments.charge = charge_then_flag
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "lost-race"
        ns.payments.charge = real_charge

    def test_charge_racing_the_flag_is_recorded_then_refunded_once_on_cancel(self, ns):
        pid = fake_product(ns, stock=10)
        oid = place(ns, pid)
        self._charge_racing_the_flag(ns, oid)
        # THEN the order waits with its charge recorded: ledger and order agree
        assert ns.orders.get(oid).status == model.NEEDS_ATTENTION
        assert ns.orders.get_charge(oid).status == model.CAPTURED
        ledger_agrees(ns, oid)
        # WHEN cancelled (twice: a retried request)
        cancel(ns, oid)
        cancel(ns, oid)
        # THEN exactly one refund, stock back, and still in agreement
        assert ns.payments.refunds == [oid]
        assert ns.products.get(pid).stock == 10
        assert ns.orders.get_charge(oid).status == model.REFUNDED
        ledger_agrees(ns, oid)

    def test_charge_racing_the_flag_is_used_by_a_retry_not_taken_twice(self, ns):
        oid = place(ns, fake_product(ns))
        self._charge_racing_the_flag(ns, oid)
        assert retry(ns, oid).status == model.PAID
        run_pipeline(ns, oid)
        assert ns.orders.get(oid).status == model.FULFILLED
        assert ns.payments.capture_calls == 1
        ledger_agrees(ns, oid)

    def test_charge_captured_before_the_flag_but_never_recorded_is_refunded(self, ns):
        # GIVEN the consumer captured, then died before writing PAID; the message was
        # dead-lettered: the ledger knows of the charge, the order does not
        pid = fake_product(ns, stock=10)
        oid = place(ns, pid)
        order = ns.orders.get(oid)
        ns.payments.charge(oid, order.total, "tok_ok")
        dead_letter(ns, oid, OrderPlaced(oid, "c"))
        assert ns.orders.get_charge(oid) is None
        cancel(ns, oid)
        assert ns.payments.refunds == [oid]
        assert ns.products.get(pid).stock == 10
        ledger_agrees(ns, oid)


class TestOperatorActions:
    def test_every_action_is_recorded_with_who_when_why(self, ns):
        oid = place(ns, fake_product(ns))
        dead_letter(ns, oid, OrderPlaced(oid, "c"))
        ns.clock.advance(30)
        retried = retry(ns, oid, reason="  payment provider recovered ")
        (action,) = retried.actions
        assert action.action == model.RETRY
        assert action.actor == "operator-7"
        assert action.at == ns.clock.now()
        assert action.reason == "payment provider recovered"
        assert action.to == model.PENDING
        assert ns.orders.get(oid).actions == (action,)
        assert retried.to_operations_dict()["operatorActions"][0]["actor"] == "operator-7"

    def test_only_admins_operate(self, ns):
        oid = place(ns, fake_product(ns))
        dead_letter(ns, oid, OrderPlaced(oid, "c"))
        with pytest.raises(Forbidden):
            operations.retry_order(ns.ports, customer(), RetryOrder(oid, "why not"))
        assert ns.orders.get(oid).status == model.NEEDS_ATTENTION

    def test_a_reason_is_required(self, ns):
        oid = place(ns, fake_product(ns))
        dead_letter(ns, oid, OrderPlaced(oid, "c"))
        with pytest.raises(InvalidRequest):
            cancel(ns, oid, reason="   ")
        assert ns.orders.get(oid).status == model.NEEDS_ATTENTION

    def test_an_order_the_pipeline_still_moves_is_left_alone(self, ns):
        oid = place(ns, fake_product(ns))
        with pytest.raises(Conflict):
            retry(ns, oid)
        with pytest.raises(Conflict):
            cancel(ns, oid)

    def test_two_operators_at_once_one_wins(self, ns):
        pid = fake_product(ns, stock=10)
        oid = place(ns, pid)
        dead_letter(ns, oid, OrderPlaced(oid, "c"))
        stale = ns.orders.get(oid)
        retry(ns, oid)
        # the second operator acts on the order as it was read before the retry
        ns.orders.get = lambda _id: stale  # type: ignore[method-assign]
        with pytest.raises(Conflict):
            cancel(ns, oid)
        del ns.orders.get
        assert ns.orders.get(oid).status == model.PENDING
        assert ns.products.get(pid).stock == 8

    def test_resolve_needs_a_captured_charge(self, ns):
        oid = place(ns, fake_product(ns), token="tok_transient")
        dead_letter(ns, oid, OrderPlaced(oid, "c"))
        with pytest.raises(Conflict):
            operations.resolve_order(ns.ports, OPERATOR, ResolveOrder(oid, "shipped by hand"))

    def test_resolve_closes_a_paid_order_as_fulfilled_with_its_note(self, ns):
        oid = place(ns, fake_product(ns))
        orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        assert (
            orders.handle_dead_letter(ns.ports, ANY_DEAD_LETTER, OrderPaid(oid, "c"), "dlq")
            == "flagged"
        )
        done = operations.resolve_order(ns.ports, OPERATOR, ResolveOrder(oid, "shipped by hand"))
        assert done.status == model.FULFILLED
        assert done.actions[-1].reason == "shipped by hand"
        ledger_agrees(ns, oid)

    def test_a_refund_the_provider_refused_is_finished_by_asking_again(self, ns):
        pid = fake_product(ns, stock=10)
        oid = place(ns, pid)
        orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        orders.handle_dead_letter(ns.ports, ANY_DEAD_LETTER, OrderPaid(oid, "c"), "dlq")
        ns.payments.down = True
        with pytest.raises(TransientFailure):
            cancel(ns, oid)
        assert ns.orders.get(oid).status == model.CANCELLED  # stock back already
        ns.payments.down = False
        cancel(ns, oid)
        assert ns.payments.refunds == [oid]
        ledger_agrees(ns, oid)


class TestListing:
    def test_lists_waiting_orders_oldest_first_in_pages(self, ns):
        pid = fake_product(ns, stock=100)
        ids = []
        for _ in range(5):
            oid = place(ns, pid, qty=1)
            dead_letter(ns, oid, OrderPlaced(oid, "c"))
            ids.append(oid)
            ns.clock.advance(1)
        place(ns, pid, qty=1)  # a PENDING one, not listed
        first = operations.list_orders_by_state(
            ns.orders, ADMIN, ListOrdersByState(model.NEEDS_ATTENTION, limit=3)
        )
        assert [o.id for o in first.items] == ids[:3]
        rest = operations.list_orders_by_state(
            ns.orders, ADMIN, ListOrdersByState(model.NEEDS_ATTENTION, 3, first.next_cursor)
        )
        assert [o.id for o in rest.items] == ids[3:]
        assert rest.next_cursor is None

    def test_terminal_states_and_customers_are_refused(self, ns):
        with pytest.raises(InvalidRequest):
            operations.list_orders_by_state(ns.orders, ADMIN, ListOrdersByState(model.FULFILLED))
        with pytest.raises(Forbidden):
            operations.list_orders_by_state(ns.orders, customer(), ListOrdersByState("PENDING"))


class TestPaymentProvider:
    def test_simulator_tokens_are_refused_unless_the_simulator_runs(self, ns):
        from dataclasses import replace

        pid = fake_product(ns)
        real = replace(ns.ports, payment_provider="stripe")
        for token in ("tok_ok", "tok_transient", "tok_decline_x", "tok_flaky", "tok_slow"):
            with pytest.raises(InvalidRequest) as err:
                orders.place_order(
                    real,
                    customer(),
                    PlaceOrder(
                        idempotency_key=random_id(),
                        lines=[RequestedLine(pid, 1)],
                        payment_token=token,
                        request_body={},
                        correlation_id="c",
                    ),
                )
            assert err.value.extra["field"] == "paymentToken"
        placed = orders.place_order(
            real,
            customer(),
            PlaceOrder(
                idempotency_key=random_id(),
                lines=[RequestedLine(pid, 1)],
                payment_token="pm_card_visa",
                request_body={},
                correlation_id="c",
            ),
        )
        assert not placed.replayed
        assert ns.products.get(pid).stock == 9

    def test_misconfigured_provider_flags_the_order_with_a_clear_reason(self, ns):
        from funcmart.domain.orders import PaymentMisconfigured

        pid = fake_product(ns, stock=10)
        oid = place(ns, pid)

        def refuse(*_):
            raise PaymentMisconfigured("Stripe refused our credentials (AuthenticationError)")

        ns.payments.charge = refuse
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "flagged"
        order = ns.orders.get(oid)
        assert order.status == model.NEEDS_ATTENTION
        assert "credentials" in order.failure_reason
        assert ns.metrics.counters["PaymentMisconfigured"] == 1


class TestCustomerWayOut:
    def test_the_customer_may_cancel_a_waiting_order_and_gets_the_raced_charge_back(self, ns):
        pid, who = fake_product(ns, stock=10), customer("frank")
        oid = orders.place_order(
            ns.ports,
            who,
            PlaceOrder(
                idempotency_key=random_id(),
                lines=[RequestedLine(pid, 2)],
                payment_token="tok_ok",
                request_body={},
                correlation_id="c",
            ),
        ).body["id"]
        TestWaysIn()._charge_racing_the_flag(ns, oid)
        assert (
            orders.cancel_order(ns.ports, who, CancelOrder(order_id=oid)).status == model.CANCELLED
        )
        assert ns.payments.refunds == [oid]
        assert ns.products.get(pid).stock == 10
        ledger_agrees(ns, oid)


class TestWhatCustomersRead:
    """A customer reads one fixed reason per state; operators' notes and where a dead letter
    came from stay in the operations views."""

    def test_an_operators_note_is_not_shown_to_the_customer(self, ns):
        oid = place(ns, fake_product(ns))
        dead_letter(ns, oid, OrderPlaced(oid, "c"))
        note = "internal: fraud score 97, do not ship"
        operations.cancel_stuck_order(ns.ports, OPERATOR, CancelStuckOrder(oid, note))
        order = ns.orders.get(oid)
        assert order.to_dict()["failureReason"] == model.PUBLIC_REASONS[model.CANCELLED]
        assert "fraud" not in str(order.to_dict())
        assert order.to_operations_dict()["failureReason"] == note

    def test_where_a_dead_letter_came_from_is_for_operators(self, ns):
        oid = place(ns, fake_product(ns))
        dead_letter(ns, oid, OrderPlaced(oid, "c"))
        order = ns.orders.get(oid)
        assert order.to_dict()["failureReason"] == model.PUBLIC_REASONS[model.NEEDS_ATTENTION]
        assert "order-placed-dlq" in order.to_operations_dict()["failureReason"]

    def test_an_order_on_its_way_has_no_reason(self, ns):
        oid = place(ns, fake_product(ns))
        assert "failureReason" not in ns.orders.get(oid).to_dict()
