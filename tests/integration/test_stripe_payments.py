"""The Stripe adapter, on the official SDK, against a local server answering as Stripe's API.

The SDK's API base points at the server (tests/support/stripe_api.py): real HTTP, real
form-encoded requests, Stripe's idempotency and error bodies.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import stripe as stripe_sdk

from funcmart.adapters.stripe_payments import StripePaymentGateway, charge_key, classify
from funcmart.bootstrap import Container
from funcmart.domain import orders as model
from funcmart.domain.commands import CancelStuckOrder, PlaceOrder, RetryOrder
from funcmart.domain.errors import Conflict, TransientFailure
from funcmart.domain.identity import Principal
from funcmart.domain.money import Money
from funcmart.domain.orders import OrderPlaced, PaymentDeclined, PaymentMisconfigured, RequestedLine
from funcmart.services import operations, orders
from funcmart.settings import Settings, SettingsError
from tests.support.builders import (
    ANY_DEAD_LETTER,
    customer,
    fake_order_ports,
    fake_product,
    random_id,
)
from tests.support.stripe_api import StripeState, stripe_api

KEY = "sk_test_funcmart"
EUR = Money(1700, "EUR")


@pytest.fixture
def stripe() -> Iterator[tuple[StripePaymentGateway, StripeState]]:
    with stripe_api(KEY) as (base, state):
        yield StripePaymentGateway(KEY, base, timeout_seconds=5), state


def created(state: StripeState) -> list[tuple[str, str | None, bool]]:
    return [
        (path, key, replayed) for method, path, key, replayed in state.requests if method == "POST"
    ]


class TestCharges:
    def test_a_charge_is_one_confirmed_intent_keyed_by_the_order(self, stripe):
        gateway, state = stripe
        charge = gateway.charge("ord-1", EUR, "pm_card_visa")
        assert charge.captured
        assert charge.id.startswith("pi_")
        (intent,) = state.intents.values()
        assert (intent["amount"], intent["currency"], intent["status"]) == (
            1700,
            "eur",
            "succeeded",
        )
        assert intent["metadata"] == {"order_id": "ord-1"}
        assert created(state) == [("/v1/payment_intents", charge_key("ord-1"), False)]

    def test_a_redelivered_charge_is_replayed_not_taken_again(self, stripe):
        gateway, state = stripe
        first = gateway.charge("ord-2", EUR, "pm_card_visa")
        again = gateway.charge("ord-2", EUR, "pm_card_visa")
        assert again == first
        assert len(state.intents) == 1
        assert [replayed for _, _, replayed in created(state)] == [False, True]

    def test_the_same_key_with_another_amount_is_a_configuration_error(self, stripe):
        gateway, _ = stripe
        gateway.charge("ord-3", EUR, "pm_card_visa")
        with pytest.raises(PaymentMisconfigured):
            gateway.charge("ord-3", Money(1, "EUR"), "pm_card_visa")

    def test_a_declined_card_is_final(self, stripe):
        gateway, _ = stripe
        with pytest.raises(PaymentDeclined):
            gateway.charge("ord-4", EUR, "pm_card_chargeDeclined")

    @pytest.mark.parametrize(
        ("status", "kind"), [(500, "api_error"), (503, "api_error"), (429, "invalid_request_error")]
    )
    def test_server_errors_and_rate_limits_are_retried(self, stripe, status, kind):
        gateway, state = stripe
        state.fail_next(status, kind)
        with pytest.raises(TransientFailure):
            gateway.charge("ord-5", EUR, "pm_card_visa")
        # the retry (same key) goes through: money taken once
        assert gateway.charge("ord-5", EUR, "pm_card_visa").captured
        assert len(state.intents) == 1

    def test_an_unreachable_stripe_is_retried(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # nothing listens once closed
        gateway = StripePaymentGateway(KEY, f"http://127.0.0.1:{port}", timeout_seconds=2)
        with pytest.raises(TransientFailure):
            gateway.charge("ord-6", EUR, "pm_card_visa")

    def test_a_wrong_key_is_a_configuration_error(self):
        with stripe_api(KEY) as (base, _):
            gateway = StripePaymentGateway("sk_test_wrong", base)
            with pytest.raises(PaymentMisconfigured, match="credentials"):
                gateway.charge("ord-7", EUR, "pm_card_visa")


class TestWhoCausedTheError:
    """A payment method the customer sent that cannot pay is a decline; only our own
    configuration pages a person."""

    @pytest.mark.parametrize("token", ["pm_1MadeUpButWellFormed", "tok_madeUp123"])
    def test_a_made_up_payment_method_or_token_is_a_decline(self, stripe, token):
        gateway, _ = stripe
        with pytest.raises(PaymentDeclined):
            gateway.charge("ord-10", EUR, token)

    def test_a_detached_payment_method_is_a_decline(self):
        exc = stripe_sdk.InvalidRequestError(
            "The provided PaymentMethod was previously used ... detached",
            param="payment_method",
            code="payment_method_unexpected_state",
            http_status=400,
        )
        assert isinstance(classify(exc), PaymentDeclined)

    def test_a_request_of_ours_stripe_refuses_still_pages(self):
        exc = stripe_sdk.InvalidRequestError(
            "Invalid currency", param="currency", code="parameter_invalid_empty", http_status=400
        )
        assert isinstance(classify(exc), PaymentMisconfigured)

    def test_a_card_token_becomes_a_payment_method_as_stripe_documents(self, stripe):
        gateway, state = stripe
        charge = gateway.charge("ord-11", EUR, "tok_visa")
        assert charge.captured
        (intent,) = state.intents.values()
        assert intent["payment_method"] == "pm_from_tok_visa"

    def test_a_declined_card_token_is_a_decline(self, stripe):
        gateway, _ = stripe
        with pytest.raises(PaymentDeclined):
            gateway.charge("ord-12", EUR, "tok_chargeDeclined")

    def test_a_processing_intent_is_neither_paid_nor_declined(self, stripe):
        gateway, state = stripe
        state.processing_methods.add("pm_card_visa")
        first = gateway.charge("ord-13", EUR, "pm_card_visa")
        assert first.status == model.PROCESSING
        state.settle(first.id, "succeeded")
        # the redelivery's replayed answer says processing: the intent is read afresh
        assert gateway.charge("ord-13", EUR, "pm_card_visa").captured
        assert len(state.intents) == 1


class TestRefunds:
    def test_a_refund_is_made_once_however_often_asked(self, stripe):
        gateway, state = stripe
        charge = gateway.charge("ord-8", EUR, "pm_card_visa")
        assert gateway.refund(charge).status == model.REFUNDED
        assert gateway.refund(charge).status == model.REFUNDED  # replayed
        assert len(state.refunds) == 1

    def test_lookup_finds_the_orders_intent_and_its_refund(self, stripe):
        gateway, _ = stripe
        assert gateway.lookup("ord-9") is None
        charge = gateway.charge("ord-9", EUR, "pm_card_visa")
        assert gateway.lookup("ord-9") == charge
        gateway.refund(charge)
        assert gateway.lookup("ord-9").status == model.REFUNDED


class TestThroughTheServices:
    """The order pipeline over fakes, paying through Stripe's API."""

    @pytest.fixture
    def ns(self, stripe):
        from dataclasses import replace

        gateway, state = stripe
        ns = fake_order_ports()
        ns.payments = gateway
        ns.ports = replace(ns.ports, payments=gateway, payment_provider="stripe")
        ns.state = state
        return ns

    def place(self, ns, token="pm_card_visa"):
        pid = fake_product(ns, stock=10)
        lines = [RequestedLine(pid, 2)]
        body = orders.place_order(
            ns.ports,
            customer(),
            PlaceOrder(
                idempotency_key=random_id(),
                lines=lines,
                payment_token=token,
                request_body={},
                correlation_id="c",
            ),
        ).body
        return pid, body["id"]

    def test_declined_card_fails_the_order_and_releases_its_stock(self, ns):
        pid, oid = self.place(ns, "pm_card_chargeDeclined")
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "declined"
        assert ns.orders.get(oid).status == model.FAILED
        assert ns.products.get(pid).stock == 10

    def test_wrong_credentials_flag_the_order_for_a_person(self, ns):
        from dataclasses import replace

        _, oid = self.place(ns)
        with stripe_api(KEY) as (base, _):
            wrong = StripePaymentGateway("sk_test_wrong", base)
            ports = replace(ns.ports, payments=wrong)
            assert orders.process_order(ports, OrderPlaced(oid, "c")) == "flagged"
        order = ns.orders.get(oid)
        assert order.status == model.NEEDS_ATTENTION
        assert "credentials" in (order.failure_reason or "")

    def test_a_made_up_payment_method_fails_the_order_and_pages_nobody(self, ns):
        pid, oid = self.place(ns, "pm_1MadeUpButWellFormed")
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "declined"
        assert ns.orders.get(oid).status == model.FAILED
        assert ns.products.get(pid).stock == 10
        assert "PaymentMisconfigured" not in ns.metrics.counters

    def test_a_processing_payment_keeps_the_order_pending_until_it_settles(self, ns):
        ns.state.processing_methods.add("pm_card_visa")
        pid, oid = self.place(ns)
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "processing"
        assert ns.orders.get(oid).status == model.PENDING
        assert ns.products.get(pid).stock == 8  # still held for the customer
        # looked up again by the reconciler's republishing, never flagged meanwhile
        for _ in range(8):
            ns.clock.advance(300)
            orders.reconcile_orders(ns.ports, orders.ReconcilePolicy())
            assert ns.orders.get(oid).status == model.PENDING
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "processing"
        (intent,) = ns.state.intents.values()
        ns.state.settle(intent["id"], "succeeded")
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "paid"
        assert ns.orders.get(oid).status == model.PAID

    def test_a_processing_payment_that_fails_later_is_a_decline(self, ns):
        ns.state.processing_methods.add("pm_card_visa")
        pid, oid = self.place(ns)
        orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        (intent,) = ns.state.intents.values()
        ns.state.settle(intent["id"], "requires_payment_method")
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "declined"
        assert ns.products.get(pid).stock == 10

    def test_a_payment_that_never_settles_releases_the_stock_after_the_limit(self, ns):
        ns.state.processing_methods.add("pm_card_visa")
        ns.state.cancel_processing = True
        pid, oid = self.place(ns)
        orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        policy = orders.ReconcilePolicy()
        ns.clock.advance(policy.abandon_after_seconds + 1)
        orders.reconcile_orders(ns.ports, policy)
        assert ns.orders.get(oid).status == model.FAILED
        assert ns.products.get(pid).stock == 10
        (intent,) = ns.state.intents.values()
        assert intent["status"] == "canceled"  # no capture can land any more
        assert ns.orders.get_charge(oid).status == model.VOIDED

    def test_a_capture_landing_after_the_order_failed_is_refunded(self, ns):
        ns.state.processing_methods.add("pm_card_visa")  # and Stripe cannot cancel it
        pid, oid = self.place(ns)
        orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        policy = orders.ReconcilePolicy()
        ns.clock.advance(policy.abandon_after_seconds + 1)
        ns.publisher.published.clear()
        orders.reconcile_orders(ns.ports, policy)
        assert ns.orders.get(oid).status == model.FAILED
        assert ns.products.get(pid).stock == 10
        # its event comes back to ProcessOrder, which retries while the payment processes
        assert [e.order_id for e in ns.publisher.published] == [oid]
        with pytest.raises(TransientFailure):
            orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        (intent,) = ns.state.intents.values()
        ns.state.settle(intent["id"], "succeeded")
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "skipped"
        assert len(ns.state.refunds) == 1
        assert ns.orders.get_charge(oid).status == model.REFUNDED

    def test_a_customer_cancel_while_the_payment_processes_refunds_a_late_capture(self, ns):
        from funcmart.domain.commands import CancelOrder

        ns.state.processing_methods.add("pm_card_visa")  # Stripe cannot cancel it
        pid, oid = self.place(ns)
        orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        owner = Principal(ns.orders.get(oid).customer)
        ns.publisher.published.clear()
        assert orders.cancel_order(ns.ports, owner, CancelOrder(oid)).status == model.CANCELLED
        assert ns.products.get(pid).stock == 10
        assert [e.order_id for e in ns.publisher.published] == [oid]  # looked at again
        (intent,) = ns.state.intents.values()
        ns.state.settle(intent["id"], "succeeded")
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "skipped"
        assert len(ns.state.refunds) == 1

    def test_a_refunded_order_is_not_retried_into_shipping_for_free(self, ns):
        # GIVEN a paid order stuck before fulfilment, whose charge was then refunded
        _, oid = self.place(ns)
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "paid"
        orders.handle_dead_letter(ns.ports, ANY_DEAD_LETTER, model.OrderPaid(oid, "c"), "dlq")
        ns.payments.refund(ns.payments.lookup(oid))
        # WHEN an operator retries it THEN it is refused (409), and nothing ships
        admin = Principal("operator-1", frozenset({"admin"}))
        with pytest.raises(Conflict, match="refunded"):
            operations.retry_order(ns.ports, admin, RetryOrder(oid, "try again"))
        assert ns.orders.get(oid).status == model.NEEDS_ATTENTION
        assert len(ns.state.refunds) == 1

    def test_customers_read_a_fixed_reason_and_operators_the_providers(self, ns):
        _, oid = self.place(ns, "pm_1MadeUpButWellFormed")
        orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        order = ns.orders.get(oid)
        assert order.to_dict()["failureReason"] == model.PUBLIC_REASONS[model.FAILED]
        assert "resource_missing" in order.to_operations_dict()["failureReason"]

    def test_a_stuck_paid_order_is_cancelled_with_exactly_one_refund(self, ns):
        pid, oid = self.place(ns)
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "paid"
        orders.handle_dead_letter(ns.ports, ANY_DEAD_LETTER, model.OrderPaid(oid, "c"), "dlq")
        admin = Principal("operator-1", frozenset({"admin"}))
        cmd = CancelStuckOrder(oid, "customer asked")
        operations.cancel_stuck_order(ns.ports, admin, cmd)
        operations.cancel_stuck_order(ns.ports, admin, cmd)  # asked twice
        assert len(ns.state.refunds) == 1
        assert ns.products.get(pid).stock == 10
        assert ns.orders.get_charge(oid).status == model.REFUNDED
        assert ns.payments.lookup(oid).status == model.REFUNDED


def test_stripe_needs_a_key_from_the_environment() -> None:
    settings = Settings.load({}, table_name="t", payment_provider="stripe")
    with pytest.raises(SettingsError, match="STRIPE_API_KEY"):
        Container(settings).payments  # noqa: B018


def test_an_unset_provider_takes_no_payment() -> None:
    with pytest.raises(SettingsError, match="PAYMENT_PROVIDER"):
        Container(Settings.load({}, table_name="t")).payments  # noqa: B018


@pytest.mark.parametrize("token", ["pm_card_visa", "tok_visa", "tok_ok"])
def test_the_api_takes_both_token_shapes_stripe_takes(token) -> None:
    from funcmart.api.orders import NewOrder

    body = {"lines": [{"productId": "p1", "quantity": 1}], "paymentToken": token}
    assert NewOrder.model_validate(body).paymentToken == token
