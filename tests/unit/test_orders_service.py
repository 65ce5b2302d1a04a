"""Order use cases over in-memory fakes: rules, idempotency and the state machine."""

from __future__ import annotations

from dataclasses import replace

import pytest

from funcmart.domain import orders as model
from funcmart.domain.commands import ArchiveProduct, CancelOrder, PlaceOrder
from funcmart.domain.errors import (
    Conflict,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    OutOfStock,
)
from funcmart.domain.orders import PROCESSING, Charge, OrderPaid, OrderPlaced, RequestedLine
from funcmart.services import catalog, orders
from tests.support.builders import ADMIN, customer, fake_order_ports, fake_product, random_id


@pytest.fixture
def ns():
    return fake_order_ports()


def place(ns, who, pid, qty=1, token="tok_ok", key=None, lines=None):
    lines = lines or [RequestedLine(pid, qty)]
    body = {"lines": [(line.product_id, line.quantity) for line in lines], "t": token}
    return orders.place_order(
        ns.ports,
        who,
        PlaceOrder(
            idempotency_key=key or random_id(),
            lines=lines,
            payment_token=token,
            request_body=body,
            correlation_id="corr-1",
        ),
    )


class TestPlaceOrder:
    def test_prices_are_copied_from_the_catalog_and_stock_reserved(self, ns):
        pid = fake_product(ns, stock=5, amount=1250)
        placed = place(ns, customer(), pid, 2)
        assert not placed.replayed
        assert placed.body["total"] == {"amount": 2500, "currency": "EUR"}
        assert placed.body["status"] == "PENDING"
        assert ns.products.get(pid).stock == 3
        assert ns.publisher.published == [OrderPlaced(placed.body["id"], "corr-1")]

    def test_requires_an_idempotency_key(self, ns):
        pid = fake_product(ns)
        with pytest.raises(InvalidRequest):
            orders.place_order(
                ns.ports,
                customer(),
                PlaceOrder(
                    idempotency_key=None,
                    lines=[RequestedLine(pid, 1)],
                    payment_token="tok_ok",
                    request_body={},
                    correlation_id="c",
                ),
            )

    def test_retry_with_same_key_replays_the_first_answer(self, ns):
        pid, who = fake_product(ns), customer()
        first = place(ns, who, pid, key="k1")
        again = place(ns, who, pid, key="k1")
        assert again.replayed
        assert again.body == first.body
        assert ns.products.get(pid).stock == 9

    def test_an_order_that_goes_through_never_reads_its_key(self, ns):
        # The transaction's condition on the key finds a retry: a read first would be waste.
        place(ns, customer(), fake_product(ns))
        assert ns.orders.idempotency_reads == 0

    def test_a_retry_replays_although_the_stock_has_run_out_since(self, ns):
        pid, who = fake_product(ns, stock=2), customer()
        first = place(ns, who, pid, 2, key="k1")
        again = place(ns, who, pid, 2, key="k1")
        assert again.replayed
        assert again.body == first.body
        assert ns.products.get(pid).stock == 0

    def test_a_retry_replays_although_the_product_was_archived_since(self, ns):
        pid, who = fake_product(ns), customer()
        first = place(ns, who, pid, key="k1")
        catalog.archive_product(ns, ADMIN, ArchiveProduct(pid))
        again = place(ns, who, pid, key="k1")
        assert (again.replayed, again.body) == (True, first.body)

    def test_products_are_read_eventually_consistent_when_that_is_enough(self, ns):
        place(ns, customer(), fake_product(ns))
        assert ns.orders.product_reads == [False]

    def test_an_older_copy_showing_no_stock_is_read_again_before_refusing(self, ns):
        # GIVEN a product restocked a moment ago, which a lagging read still shows sold out
        pid = fake_product(ns, stock=5)
        ns.orders.stale[pid] = replace(ns.products.get(pid), stock=0)
        # WHEN it is ordered, THEN the order goes through on the fresh reading
        placed = place(ns, customer(), pid, 2)
        assert not placed.replayed
        assert ns.products.get(pid).stock == 3
        assert ns.orders.product_reads == [False, True]

    def test_a_product_a_lagging_read_does_not_know_yet_can_be_ordered(self, ns):
        pid = fake_product(ns)
        ns.orders.stale[pid] = None
        assert not place(ns, customer(), pid).replayed

    def test_prices_read_from_an_older_copy_are_never_charged(self, ns):
        # GIVEN a lagging read that shows an older version at an older price
        pid = fake_product(ns, amount=1000)
        current = ns.products.get(pid)
        ns.products._items[pid] = replace(current, price=replace(current.price, amount=1500))
        ns.products._items[pid] = replace(ns.products._items[pid], version=current.version + 1)
        ns.orders.stale[pid] = current
        # WHEN it is ordered, THEN the version condition refuses the old price; the fresh one
        # is charged
        placed = place(ns, customer(), pid)
        assert placed.body["total"]["amount"] == 1500
        assert ns.orders.product_reads == [False, True]

    def test_same_key_for_another_body_is_422(self, ns):
        pid, who = fake_product(ns), customer()
        place(ns, who, pid, 1, key="k1")
        with pytest.raises(IdempotencyKeyReused):
            place(ns, who, pid, 2, key="k1")

    def test_keys_are_per_customer(self, ns):
        pid = fake_product(ns)
        a = place(ns, customer("a"), pid, key="same")
        b = place(ns, customer("b"), pid, key="same")
        assert a.body["id"] != b.body["id"]

    def test_duplicate_lines_are_merged(self, ns):
        pid = fake_product(ns, stock=5)
        placed = place(ns, customer(), pid, lines=[RequestedLine(pid, 1), RequestedLine(pid, 2)])
        assert placed.body["lines"][0]["quantity"] == 3

    def test_out_of_stock_names_short_lines(self, ns):
        pid = fake_product(ns, stock=1)
        with pytest.raises(OutOfStock) as err:
            place(ns, customer(), pid, 2)
        assert err.value.extra["lines"] == [{"productId": pid, "requested": 2, "available": 1}]

    def test_unknown_product_is_not_found(self, ns):
        with pytest.raises(NotFound):
            place(ns, customer(), "nope", 1)

    def test_mixed_currencies_are_rejected(self, ns):
        eur, usd = fake_product(ns), fake_product(ns, currency="USD")
        with pytest.raises(InvalidRequest):
            place(ns, customer(), eur, lines=[RequestedLine(eur, 1), RequestedLine(usd, 1)])

    def test_publish_failure_still_answers_202(self, ns):
        pid = fake_product(ns)
        ns.publisher.fail = True
        placed = place(ns, customer(), pid)
        assert not placed.replayed
        assert ns.metrics.counters["PublishFailures"] == 1


class TestPipeline:
    def test_paid_then_fulfilled(self, ns):
        pid = fake_product(ns)
        oid = place(ns, customer(), pid).body["id"]
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "paid"
        assert ns.publisher.published[-1] == OrderPaid(oid, "c")
        assert orders.fulfil_order(ns.ports, OrderPaid(oid, "c")) == "fulfilled"
        assert ns.orders.get(oid).status == model.FULFILLED
        assert ns.orders.shipments[oid].tracking_number
        assert ns.orders.notifications[oid][0].kind == "order-shipped"

    def test_redelivery_of_a_paid_or_fulfilled_order_publishes_nothing(self, ns):
        # GIVEN an order paid (its OrderPaid published once), then one fulfilled too
        pid = fake_product(ns)
        paid = place(ns, customer(), pid).body["id"]
        fulfilled = place(ns, customer(), pid).body["id"]
        for oid in (paid, fulfilled):
            assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "paid"
        orders.fulfil_order(ns.ports, OrderPaid(fulfilled, "c"))
        before = list(ns.publisher.published)
        # WHEN their OrderPlaced is redelivered, three times each
        for oid in (paid, fulfilled) * 3:
            assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "already-paid"
        # THEN nothing more is published nor charged
        assert ns.publisher.published == before
        assert ns.payments.capture_calls == 2

    def test_a_delivery_that_never_answered_has_its_paid_order_published_again(self, ns):
        # GIVEN an order paid by a consumer that stopped before publishing its batch's events
        oid = place(ns, customer(), fake_product(ns)).body["id"]
        ns.publisher.fail = True
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "paid"
        ns.publisher.fail = False
        # WHEN the message comes back (received before)
        outcome = orders.process_order(ns.ports, OrderPlaced(oid, "c"), redelivered=True)
        # THEN its OrderPaid goes out, and nothing is charged again
        assert outcome == "republished"
        assert ns.publisher.published[-1] == OrderPaid(oid, "c")
        assert ns.payments.capture_calls == 1

    def test_redelivery_never_charges_twice(self, ns):
        pid = fake_product(ns)
        oid = place(ns, customer(), pid).body["id"]
        for _ in range(3):
            orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        assert ns.payments.capture_calls == 1

    def test_decline_fails_order_and_releases_stock(self, ns):
        pid = fake_product(ns, stock=4)
        oid = place(ns, customer(), pid, 3, token="tok_decline").body["id"]
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "declined"
        assert ns.orders.get(oid).status == model.FAILED
        assert ns.products.get(pid).stock == 4

    def test_transient_failure_propagates_for_retry(self, ns):
        from funcmart.domain.errors import TransientFailure

        pid = fake_product(ns)
        oid = place(ns, customer(), pid, token="tok_transient").body["id"]
        with pytest.raises(TransientFailure):
            orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        assert ns.orders.get(oid).status == model.PENDING

    def test_unknown_order_is_an_error_not_a_silent_success(self, ns):
        with pytest.raises(NotFound):
            orders.process_order(ns.ports, OrderPlaced("missing", "c"))

    def test_cancelled_while_charging_is_refunded(self, ns):
        pid, who = fake_product(ns), customer()
        oid = place(ns, who, pid).body["id"]
        order = ns.orders.get(oid)
        # the customer cancels between the consumer's read and its PAID write
        real_charge = ns.payments.charge

        def charge_then_cancel(key, amount, token):
            charge = real_charge(key, amount, token)
            orders.cancel_order(ns.ports, who, CancelOrder(order_id=oid))
            return charge

        ns.payments.charge = charge_then_cancel
        assert orders.process_order(ns.ports, OrderPlaced(order.id, "c")) == "lost-race"
        assert ns.orders.get(oid).status == model.CANCELLED
        assert ns.payments.refunds == [oid]
        assert ns.products.get(pid).stock == 10


class TestDeadLetters:
    """A dead letter flags its order only when it can be one: the order still at the step its
    event was for, and in that state at least as long as any retry budget (POLICY)."""

    POLICY = orders.DeadLetterPolicy(min_age_seconds=900)

    def dead_letter(self, ns, event):
        return orders.handle_dead_letter(ns.ports, self.POLICY, event, "dlq")

    def test_a_dead_letter_flags_an_order_in_its_state_longer_than_the_retry_budget(self, ns):
        oid = place(ns, customer(), fake_product(ns)).body["id"]
        ns.clock.advance(self.POLICY.min_age_seconds)
        assert self.dead_letter(ns, OrderPlaced(oid, "c")) == "flagged"
        assert ns.orders.get(oid).status == model.NEEDS_ATTENTION
        assert self.dead_letter(ns, OrderPlaced(oid, "c")) == "ignored"

    def test_a_dead_letter_sooner_than_any_retry_budget_is_a_replay_and_changes_nothing(self, ns):
        # GIVEN an order placed a minute ago (its OrderPlaced captured on the way)
        pid = fake_product(ns, stock=5)
        oid = place(ns, customer(), pid, 2).body["id"]
        ns.clock.advance(60)
        # WHEN the event is posted to HandleDeadLetters as a dead letter
        outcome = self.dead_letter(ns, OrderPlaced(oid, "c"))
        # THEN the order is left alone, the replay counted, and the order goes on to be paid
        assert outcome == "too-early"
        assert ns.orders.get(oid).status == model.PENDING
        assert ns.products.get(pid).stock == 3
        assert ns.metrics.counters["DeadLettersTooEarly"] == 1
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "paid"

    def test_the_age_is_the_orders_in_its_state_to_the_second(self, ns):
        oid = place(ns, customer(), fake_product(ns)).body["id"]
        ns.clock.advance(self.POLICY.min_age_seconds - 1)
        assert self.dead_letter(ns, OrderPlaced(oid, "c")) == "too-early"
        ns.clock.advance(1)
        assert self.dead_letter(ns, OrderPlaced(oid, "c")) == "flagged"

    def test_a_paid_order_is_judged_from_when_it_was_paid_not_placed(self, ns):
        # GIVEN an order placed long ago and paid just now
        oid = place(ns, customer(), fake_product(ns)).body["id"]
        ns.clock.advance(10 * self.POLICY.min_age_seconds)
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "paid"
        # WHEN its OrderPaid arrives as a dead letter THEN it is too early: FulfilOrder's
        # retries have not had time to run out
        assert self.dead_letter(ns, OrderPaid(oid, "c")) == "too-early"
        assert ns.orders.get(oid).status == model.PAID
        ns.clock.advance(self.POLICY.min_age_seconds)
        assert self.dead_letter(ns, OrderPaid(oid, "c")) == "flagged"

    def test_a_dead_letter_flags_only_an_order_still_at_its_step(self, ns):
        # GIVEN a paid order WHEN its (captured) OrderPlaced arrives as a dead letter
        oid = place(ns, customer(), fake_product(ns)).body["id"]
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "paid"
        ns.clock.advance(self.POLICY.min_age_seconds)
        # THEN nothing happens: that step is done
        assert self.dead_letter(ns, OrderPlaced(oid, "c")) == "ignored"
        assert ns.orders.get(oid).status == model.PAID

    def test_an_order_whose_payment_is_processing_is_left_to_the_reconciler(self, ns):
        # GIVEN an order whose payment the provider is still settling, hours after placing
        oid = place(ns, customer(), fake_product(ns)).body["id"]
        order = ns.orders.get(oid)
        ns.payments.charge = lambda key, amount, _token: Charge(
            f"pi_{key}", key, amount, PROCESSING
        )
        assert orders.process_order(ns.ports, OrderPlaced(oid, "c")) == "processing"
        ns.clock.advance(3 * 3600)
        # WHEN a dead letter of its (re-published) OrderPlaced arrives
        assert self.dead_letter(ns, OrderPlaced(oid, "c")) == "payment-processing"
        # THEN it stays PENDING: the reconciler looks the payment up until the abandon limit
        assert ns.orders.get(oid).status == model.PENDING == order.status
        assert ns.metrics.counters["DeadLettersPaymentProcessing"] == 1

    def test_a_real_dead_letter_left_alone_is_still_flagged_by_the_reconciler(self, ns):
        from tests.fakes import FakeQueueBacklog

        # GIVEN a dead letter that came sooner than the setting (retries shortened below it)
        oid = place(ns, customer(), fake_product(ns), token="tok_transient").body["id"]
        ns.clock.advance(60)
        assert self.dead_letter(ns, OrderPlaced(oid, "c")) == "too-early"
        ns.publisher.published.clear()
        # WHEN ReconcileOrders runs every minute over the empty queue for half an hour
        policy = orders.ReconcilePolicy(republish_after_seconds=120, max_republish=5)
        empty = FakeQueueBacklog({"OrderPlaced": 0, "OrderPaid": 0})
        for _ in range(30):
            ns.clock.advance(60)
            orders.reconcile_orders(ns.ports, policy, empty)
        # THEN it re-published the event, and flagged the order when nothing moved it
        assert [e.order_id for e in ns.publisher.published] == [oid] * policy.max_republish
        assert ns.orders.get(oid).status == model.NEEDS_ATTENTION

    def test_an_order_whose_time_cannot_be_read_is_left_to_the_reconciler(self, ns):
        oid = place(ns, customer(), fake_product(ns)).body["id"]
        ns.clock.advance(10 * self.POLICY.min_age_seconds)
        stored = ns.orders.get(oid)
        ns.orders.get = lambda _oid: replace(stored, updated_at="not a time")
        assert self.dead_letter(ns, OrderPlaced(oid, "c")) == "too-early"


class TestCancelAndRead:
    def test_only_owner_or_admin_sees_an_order(self, ns):
        from tests.support.builders import ADMIN

        pid, owner = fake_product(ns), customer()
        oid = place(ns, owner, pid).body["id"]
        assert orders.get_order(ns.orders, owner, oid).id == oid
        assert orders.get_order(ns.orders, ADMIN, oid).id == oid
        with pytest.raises(NotFound):
            orders.get_order(ns.orders, customer(), oid)

    def test_fulfilled_order_cannot_be_cancelled(self, ns):
        pid, who = fake_product(ns), customer()
        oid = place(ns, who, pid).body["id"]
        orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        orders.fulfil_order(ns.ports, OrderPaid(oid, "c"))
        with pytest.raises(Conflict):
            orders.cancel_order(ns.ports, who, CancelOrder(order_id=oid))

    def test_list_is_newest_first_and_paged(self, ns):
        pid, who = fake_product(ns, stock=100), customer()
        ids = []
        for _ in range(5):
            ids.append(place(ns, who, pid).body["id"])
            ns.clock.advance(1)
        first = orders.list_orders(ns.orders, who, 2, None)
        assert [o.id for o in first.items] == ids[::-1][:2]
        second = orders.list_orders(ns.orders, who, 2, first.next_cursor)
        assert [o.id for o in second.items] == ids[::-1][2:4]

    def test_customer_cannot_list_anothers_orders(self, ns):
        from funcmart.domain.errors import Forbidden

        with pytest.raises(Forbidden):
            orders.list_orders(ns.orders, customer(), 10, None, customer="someone-else")


class TestReconciler:
    def test_republishes_stale_pending_and_paid(self, ns):
        pid = fake_product(ns)
        pending = place(ns, customer(), pid).body["id"]
        paid = place(ns, customer(), pid).body["id"]
        orders.process_order(ns.ports, OrderPlaced(paid, "c"))
        ns.publisher.published.clear()
        ns.clock.advance(600)
        counts = orders.reconcile_orders(ns.ports, orders.ReconcilePolicy())
        assert counts["republished"] == 2
        types = sorted(e.type for e in ns.publisher.published)
        assert types == ["OrderPaid", "OrderPlaced"]
        assert pending in {e.order_id for e in ns.publisher.published}

    def test_a_republished_event_continues_the_orders_own_trace(self, ns):
        import dataclasses

        oid = place(ns, customer(), fake_product(ns)).body["id"]
        traced = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        ns.orders.orders[oid] = dataclasses.replace(ns.orders.orders[oid], trace_context=traced)
        ns.publisher.published.clear()
        ns.clock.advance(600)
        orders.reconcile_orders(ns.ports, orders.ReconcilePolicy())
        (event,) = ns.publisher.published
        assert event.order_id == oid
        assert event.trace_context == traced

    def test_fresh_orders_are_left_alone(self, ns):
        place(ns, customer(), fake_product(ns))
        ns.publisher.published.clear()
        assert orders.reconcile_orders(ns.ports, orders.ReconcilePolicy())["republished"] == 0

    def test_abandoned_pending_orders_release_stock(self, ns):
        pid = fake_product(ns, stock=3)
        oid = place(ns, customer(), pid, 2).body["id"]
        ns.clock.advance(2 * 86400)
        counts = orders.reconcile_orders(ns.ports, orders.ReconcilePolicy())
        assert counts["abandoned"] == 1
        assert ns.orders.get(oid).status == model.FAILED
        assert ns.products.get(pid).stock == 3

    def test_flags_after_max_republish_into_an_empty_queue(self, ns):
        from tests.fakes import FakeQueueBacklog

        oid = place(ns, customer(), fake_product(ns)).body["id"]
        policy = orders.ReconcilePolicy(republish_after_seconds=60, max_republish=2)
        empty = FakeQueueBacklog({"OrderPlaced": 0, "OrderPaid": 0})
        for _ in range(3):
            ns.clock.advance(120)
            orders.reconcile_orders(ns.ports, policy, empty)
        assert ns.orders.get(oid).status == model.NEEDS_ATTENTION

    def test_a_backlog_is_waited_out_not_flagged(self, ns):
        from tests.fakes import FakeQueueBacklog

        oid = place(ns, customer(), fake_product(ns)).body["id"]
        orders.process_order(ns.ports, OrderPlaced(oid, "c"))
        ns.publisher.published.clear()
        policy = orders.ReconcilePolicy(republish_after_seconds=60, max_republish=2)
        # GIVEN FulfilOrder is 30 minutes behind: its queue holds thousands of messages
        backlog = FakeQueueBacklog({"OrderPaid": 5000})
        for _ in range(30):
            ns.clock.advance(60)
            counts = orders.reconcile_orders(ns.ports, policy, backlog)
        # THEN the paid order waited its turn: not flagged, nothing piled onto the queue
        assert ns.orders.get(oid).status == model.PAID
        assert counts["backlogged"] == 1
        assert ns.publisher.published == []
        # AND when the backlog is gone, fulfilment moves it on
        assert orders.fulfil_order(ns.ports, OrderPaid(oid, "c")) == "fulfilled"

    def test_without_evidence_flags_only_after_the_time_limit(self, ns):
        from tests.fakes import FakeQueueBacklog

        oid = place(ns, customer(), fake_product(ns)).body["id"]
        policy = orders.ReconcilePolicy(
            republish_after_seconds=60, max_republish=2, flag_after_seconds=3600
        )
        unknown = FakeQueueBacklog()  # a broker: no queue to ask
        for _ in range(20):
            ns.clock.advance(120)
            orders.reconcile_orders(ns.ports, policy, unknown)
        assert ns.orders.get(oid).status == model.PENDING  # 40 minutes: still waiting
        for _ in range(15):
            ns.clock.advance(120)
            orders.reconcile_orders(ns.ports, policy, unknown)
        assert ns.orders.get(oid).status == model.NEEDS_ATTENTION
