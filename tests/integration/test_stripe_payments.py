"""The Stripe adapter, on the official SDK, against a local server answering as Stripe's API.

The SDK's API base points at the server (tests/support/stripe_api.py): real HTTP, real
form-encoded requests, Stripe's idempotency and error bodies.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from funcmart.adapters.stripe_payments import StripePaymentGateway, charge_key
from funcmart.bootstrap import Container
from funcmart.domain import orders as model
from funcmart.domain.commands import CancelStuckOrder, PlaceOrder
from funcmart.domain.errors import TransientFailure
from funcmart.domain.identity import Principal
from funcmart.domain.money import Money
from funcmart.domain.orders import OrderPlaced, PaymentDeclined, PaymentMisconfigured, RequestedLine
from funcmart.services import operations, orders
from funcmart.settings import Settings, SettingsError
from tests.support.builders import customer, fake_order_ports, fake_product, random_id
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

    def test_a_stuck_paid_order_is_cancelled_with_exactly_one_refund(self, ns):
        pid, oid = self.place(ns)
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "paid"
        orders.handle_dead_letter(ns.ports, model.OrderPaid(oid, "c"), "dlq")
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
