"""PlaceOrder from the cart: the cart's lines are ordered, then taken out; retries replay."""

from __future__ import annotations

import pytest

from funcmart.domain.commands import ArchiveProduct, CancelOrder, PlaceOrderFromCart
from funcmart.domain.errors import Conflict, DependencyUnavailable, OutOfStock
from funcmart.services import orders
from tests.fakes import FakeCartStore
from tests.support.builders import customer, fake_order_ports, fake_product, random_id

BODY = {"fromCart": True, "paymentToken": "tok_ok"}


@pytest.fixture
def ns():
    ns = fake_order_ports()
    ns.carts = FakeCartStore()
    return ns


def checkout(ns, who, key):
    return orders.place_order_from_cart(
        ns.ports,
        ns.carts,
        who,
        PlaceOrderFromCart(
            idempotency_key=key, payment_token="tok_ok", request_body=BODY, correlation_id="corr"
        ),
    )


def test_the_carts_lines_are_ordered_and_then_leave_the_cart(ns):
    me, a, b = customer(), fake_product(ns, amount=100), fake_product(ns, amount=250)
    ns.carts.set_quantity(me.subject, a, 2, 50)
    ns.carts.set_quantity(me.subject, b, 1, 50)
    placed = checkout(ns, me, random_id())
    assert not placed.replayed
    assert placed.body["total"] == {"amount": 450, "currency": "EUR"}
    assert ns.carts.get(me.subject).empty


def test_a_retry_after_success_replays_although_the_cart_is_now_empty(ns):
    me, pid = customer(), fake_product(ns)
    ns.carts.set_quantity(me.subject, pid, 1, 50)
    key = random_id()
    first = checkout(ns, me, key)
    again = checkout(ns, me, key)
    assert again.replayed
    assert again.body == first.body
    assert ns.products.get(pid).stock == 9


def test_a_retry_replays_even_while_redis_is_out(ns):
    me, pid = customer(), fake_product(ns)
    ns.carts.set_quantity(me.subject, pid, 1, 50)
    key = random_id()
    first = checkout(ns, me, key)
    ns.carts.available = False
    assert checkout(ns, me, key).body == first.body


def test_an_empty_cart_is_a_conflict_and_orders_nothing(ns):
    with pytest.raises(Conflict):
        checkout(ns, customer(), random_id())
    assert ns.publisher.published == []


def test_the_cart_stays_when_the_order_fails(ns):
    me, pid = customer(), fake_product(ns, stock=1)
    ns.carts.set_quantity(me.subject, pid, 2, 50)
    with pytest.raises(OutOfStock):
        checkout(ns, me, random_id())
    assert ns.carts.get(me.subject).quantities == {pid: 2}


def test_a_line_changed_meanwhile_stays_in_the_cart(ns):
    me, pid = customer(), fake_product(ns)
    ns.carts.set_quantity(me.subject, pid, 1, 50)
    original = ns.carts.remove_ordered

    def change_then_remove(customer_id, ordered):
        ns.carts.set_quantity(customer_id, pid, 4, 50)  # another tab, mid-order
        original(customer_id, ordered)

    ns.carts.remove_ordered = change_then_remove
    checkout(ns, me, random_id())
    assert ns.carts.get(me.subject).quantities == {pid: 4}


def test_redis_out_after_the_order_committed_still_reports_it_placed(ns):
    me, pid = customer(), fake_product(ns)
    ns.carts.set_quantity(me.subject, pid, 1, 50)

    def down(*_):
        raise DependencyUnavailable("Redis is unavailable")

    ns.carts.remove_ordered = down
    placed = checkout(ns, me, random_id())
    assert not placed.replayed
    assert ns.metrics.counters["CartClearFailures"] == 1


def test_redis_out_before_the_order_is_dependency_unavailable(ns):
    ns.carts.available = False
    with pytest.raises(DependencyUnavailable):
        checkout(ns, customer(), random_id())


def test_an_archived_product_in_the_cart_refuses_the_order(ns):
    from funcmart.domain.errors import NotFound
    from funcmart.services import catalog
    from tests.support.builders import ADMIN

    me, pid = customer(), fake_product(ns)
    ns.carts.set_quantity(me.subject, pid, 1, 50)
    catalog.archive_product(ns, ADMIN, ArchiveProduct(pid))
    with pytest.raises(NotFound):
        checkout(ns, me, random_id())
    assert ns.carts.get(me.subject).quantities == {pid: 1}


def test_an_order_id_too_long_to_be_a_key_is_not_found(ns):
    from funcmart.domain.errors import NotFound

    with pytest.raises(NotFound):
        orders.get_order(ns.orders, customer(), "x" * 3000)
    with pytest.raises(NotFound):
        orders.cancel_order(ns.ports, customer(), CancelOrder(order_id="x" * 3000))


def test_a_checkout_that_goes_through_never_reads_its_key(ns):
    me, pid = customer(), fake_product(ns)
    ns.carts.set_quantity(me.subject, pid, 1, 50)
    checkout(ns, me, random_id())
    assert ns.orders.idempotency_reads == 0


def test_a_retry_whose_lines_stayed_in_the_cart_replays_and_orders_nothing_more(ns):
    # GIVEN a checkout whose line is back in the cart (as if Redis was out when it was
    # cleared)
    me, pid = customer(), fake_product(ns)
    ns.carts.set_quantity(me.subject, pid, 1, 50)
    key = random_id()
    first = checkout(ns, me, key)
    ns.carts.set_quantity(me.subject, pid, 1, 50)
    # WHEN it is retried, THEN the first answer comes back and nothing more is reserved
    again = checkout(ns, me, key)
    assert (again.replayed, again.body) == (True, first.body)
    assert ns.products.get(pid).stock == 9
    assert ns.carts.get(me.subject).quantities == {pid: 1}
