"""The OrderRepository contract: the same cases against the fake and DynamoDB Local.

DynamoDB is the truth: where the fake answered otherwise, the fake was changed.
Each case gets an empty table (or an empty fake), since the listings by state and the open
orders span every order a repository holds.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from funcmart.adapters.dynamodb.catalog import DynamoProductRepository
from funcmart.adapters.dynamodb.orders import DynamoOrderRepository
from funcmart.adapters.dynamodb.table import bind
from funcmart.domain.catalog import Product, archive
from funcmart.domain.errors import InvalidRequest, OutOfStock, VersionConflict
from funcmart.domain.orders import (
    CANCEL,
    CANCELLED,
    FAILED,
    FULFILLED,
    NEEDS_ATTENTION,
    PAID,
    PENDING,
    REFUNDED,
    RETRY,
    Charge,
    IdempotencyRecord,
    Notification,
    Order,
    OrderLine,
    Shipment,
)
from funcmart.ports import OrderRepository, ProductRepository
from tests.fakes import FakeOrderRepository, FakeProductRepository
from tests.support.factories import a_product, eur

REGION = "us-east-1"
T0 = "2026-11-26T18:00:00.000Z"


def at(minute: int, second: int = 0) -> str:
    """A time on the test's day, minutes after 18:00."""
    return f"2026-11-26T{18 + minute // 60:02d}:{minute % 60:02d}:{second:02d}.000Z"


@dataclass
class Store:
    """An order repository and the product repository whose stock it reserves."""

    orders: OrderRepository
    products: ProductRepository

    def add_product(self, **fields: object) -> Product:
        product = a_product(**fields)
        self.products.add(product)
        return product

    def stock(self, product_id: str) -> int:
        stored = self.products.get(product_id)
        assert stored is not None
        return stored.stock

    def place(
        self,
        product: Product,
        quantity: int = 1,
        *,
        customer: str = "c-1",
        created_at: str = T0,
        key: str | None = None,
    ) -> Order:
        """A PENDING order for `quantity` of `product`, placed under a fresh key."""
        order = an_order(customer, [(product, quantity)], created_at=created_at)
        self.orders.place(order, {product.id: product.version}, a_record(order, key=key))
        return order


@pytest.fixture(params=["fake", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "fake":
        products = FakeProductRepository()
        return Store(FakeOrderRepository(products), products)
    make_table: Callable[[], str] = request.getfixturevalue("make_table")
    endpoint: str = request.getfixturevalue("dynamodb_endpoint")
    tables = bind(make_table(), REGION, endpoint)
    return Store(DynamoOrderRepository(tables), DynamoProductRepository(tables))


def new_id() -> str:
    return uuid.uuid4().hex


def an_order(
    customer: str,
    lines: list[tuple[Product, int]],
    *,
    created_at: str = T0,
    status: str = PENDING,
) -> Order:
    order_lines = tuple(OrderLine(p.id, p.name, p.price, q) for p, q in lines)
    total = eur(sum(line.subtotal.amount for line in order_lines))
    return Order(
        id=new_id(),
        customer=customer,
        lines=order_lines,
        total=total,
        status=status,
        payment_token="tok_ok",
        created_at=created_at,
        updated_at=created_at,
        correlation_id=f"corr-{new_id()[:8]}",
    )


def a_record(order: Order, key: str | None = None) -> IdempotencyRecord:
    return IdempotencyRecord(
        customer=order.customer,
        key=key or f"key-{new_id()[:8]}",
        fingerprint=f"fp-{order.id}",
        status_code=201,
        response={"id": order.id, "status": order.status},
        expires_at=1_900_000_000,
    )


def a_charge(order: Order) -> Charge:
    return Charge(f"ch_{order.id}", order.id, order.total)


def stored(store: Store, order_id: str) -> Order:
    found = store.orders.get(order_id)
    assert found is not None
    return found


def all_pages(list_page: Callable[[str | None], object]) -> tuple[list[Order], int]:
    """Every order of a listing, following cursors; and how many pages it took."""
    seen: list[Order] = []
    cursor: str | None = None
    for pages in range(1, 100):
        page = list_page(cursor)
        items = list(page.items)  # type: ignore[attr-defined]
        seen.extend(items)
        cursor = page.next_cursor  # type: ignore[attr-defined]
        if cursor is None:
            return seen, pages
        assert items, "a cursor must never lead to an empty page"
    raise AssertionError("the listing did not end within 100 pages")


class TestOrderRepository:
    # ------------------------------------------------------------------------ place
    def test_placing_reserves_stock_and_stores_the_order_and_the_record(self, store: Store) -> None:
        # GIVEN two products
        kettle = store.add_product(stock=5, price=eur(1000))
        mug = store.add_product(stock=3, price=eur(500))
        order = an_order("c-1", [(kettle, 2), (mug, 3)], created_at=at(5))
        record = a_record(order)
        # WHEN an order for both is placed
        returned = store.orders.place(
            order, {kettle.id: kettle.version, mug.id: mug.version}, record
        )
        # THEN the record comes back, the order and the record are stored, stock is reserved
        assert returned == record
        assert store.orders.get(order.id) == order
        assert store.orders.get_idempotency("c-1", record.key) == record
        # placing changes nothing of a product but its stock (not its version, nor when it
        # was last changed: that is the catalog's)
        assert store.products.get(kettle.id) == replace(kettle, stock=3)
        assert store.products.get(mug.id) == replace(mug, stock=0)

    def test_the_same_key_returns_the_first_record_and_reserves_nothing_more(
        self, store: Store
    ) -> None:
        # GIVEN an order placed under a key
        product = store.add_product(stock=5)
        first = store.place(product, 2, key="key-once")
        first_record = store.orders.get_idempotency("c-1", "key-once")
        # WHEN another order is placed under the same key
        second = an_order("c-1", [(product, 1)])
        returned = store.orders.place(
            second, {product.id: product.version}, a_record(second, key="key-once")
        )
        # THEN the first record answers, and the second order never existed
        assert returned == first_record
        assert returned.response["id"] == first.id
        assert store.orders.get(second.id) is None
        assert store.stock(product.id) == 3

    def test_the_same_key_answers_even_when_stock_has_run_out(self, store: Store) -> None:
        product = store.add_product(stock=2)
        first = store.place(product, 2, key="key-retry")
        retry = an_order("c-1", [(product, 2)])
        returned = store.orders.place(
            retry, {product.id: product.version}, a_record(retry, key="key-retry")
        )
        assert returned.response["id"] == first.id
        assert store.stock(product.id) == 0

    def test_a_key_belongs_to_its_customer(self, store: Store) -> None:
        product = store.add_product(stock=5)
        mine = store.place(product, 1, customer="c-1", key="key-shared")
        theirs = store.place(product, 1, customer="c-2", key="key-shared")
        assert stored(store, mine.id).customer == "c-1"
        assert stored(store, theirs.id).customer == "c-2"
        assert store.stock(product.id) == 3
        record = store.orders.get_idempotency("c-2", "key-shared")
        assert record is not None
        assert record.response["id"] == theirs.id

    @pytest.mark.parametrize(
        ("one", "other"),
        [
            (("c#1", "k"), ("c", "1#k")),
            (("c%231", "k"), ("c#1", "k")),
            (("c", "%23k"), ("c", "#k")),
        ],
    )
    def test_keys_joining_separators_never_collide(
        self, store: Store, one: tuple[str, str], other: tuple[str, str]
    ) -> None:
        # GIVEN two customers whose id and key, joined with the separator, read the same
        product = store.add_product(stock=5)
        first = store.place(product, 1, customer=one[0], key=one[1])
        # WHEN the other customer orders under their key
        second = store.place(product, 1, customer=other[0], key=other[1])
        # THEN each gets an order of their own, and each key answers with its own
        assert first.id != second.id
        assert stored(store, second.id).customer == other[0]
        assert store.stock(product.id) == 3
        for (customer, key), order in ((one, first), (other, second)):
            record = store.orders.get_idempotency(customer, key)
            assert record is not None
            assert record.response["id"] == order.id

    def test_short_lines_are_named_and_nothing_is_written(self, store: Store) -> None:
        # GIVEN one product with enough stock, one with too little, one archived
        plenty = store.add_product(stock=10)
        scarce = store.add_product(stock=1)
        gone = store.add_product(stock=10)
        store.products.save(archive(gone, at(1)), expected_version=1)
        order = an_order("c-1", [(plenty, 2), (scarce, 2), (gone, 1)])
        versions = {plenty.id: 1, scarce.id: 1, gone.id: 1}
        record = a_record(order)
        # WHEN it is ordered
        with pytest.raises(OutOfStock) as err:
            store.orders.place(order, versions, record)
        # THEN the short lines are named with what is available, and nothing changed
        assert sorted(err.value.extra["lines"], key=lambda line: line["requested"]) == [
            {"productId": gone.id, "requested": 1, "available": 0},
            {"productId": scarce.id, "requested": 2, "available": 1},
        ]
        assert (store.stock(plenty.id), store.stock(scarce.id)) == (10, 1)
        assert store.orders.get(order.id) is None
        assert store.orders.get_idempotency("c-1", record.key) is None

    def test_an_unknown_product_is_a_short_line(self, store: Store) -> None:
        ghost = a_product()  # never added
        order = an_order("c-1", [(ghost, 1)])
        with pytest.raises(OutOfStock) as err:
            store.orders.place(order, {ghost.id: 1}, a_record(order))
        assert err.value.extra["lines"] == [{"productId": ghost.id, "requested": 1, "available": 0}]
        assert store.orders.get(order.id) is None

    def test_a_product_changed_since_it_was_read_is_a_version_conflict(self, store: Store) -> None:
        # GIVEN prices read at version 1, then the product changes (version 2)
        product = store.add_product(stock=5)
        store.products.save(replace(product, name="Renamed", version=2), expected_version=1)
        order = an_order("c-1", [(product, 1)])
        record = a_record(order)
        # WHEN the order is placed at version 1
        with pytest.raises(VersionConflict):
            store.orders.place(order, {product.id: 1}, record)
        # THEN nothing is written
        assert store.stock(product.id) == 5
        assert store.orders.get(order.id) is None
        assert store.orders.get_idempotency("c-1", record.key) is None

    def test_concurrent_orders_never_oversell(self, store: Store) -> None:
        # GIVEN 10 in stock
        product = store.add_product(stock=10)
        store.products.get(product.id)  # the client exists before the threads share it
        outcomes: list[str] = []
        start = threading.Barrier(20, timeout=30)

        def buy() -> None:
            start.wait()
            try:
                store.place(product, 1)
                outcomes.append("ok")
            except OutOfStock:
                outcomes.append("out")
            except VersionConflict:  # cannot happen: nothing changes the product's version
                outcomes.append("conflict")

        # WHEN 20 buyers order one each at the same moment
        threads = [threading.Thread(target=buy) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        # THEN exactly 10 orders are placed and the stock ends at zero
        assert sorted(outcomes) == ["ok"] * 10 + ["out"] * 10
        assert store.stock(product.id) == 0
        assert len(store.orders.list_for_customer("c-1", 100, None).items) == 10

    def test_concurrent_requests_under_one_key_place_one_order(self, store: Store) -> None:
        # GIVEN 10 in stock
        product = store.add_product(stock=10)
        store.products.get(product.id)
        returned: list[IdempotencyRecord] = []
        start = threading.Barrier(8, timeout=30)

        def request() -> None:
            start.wait()
            order = an_order("c-1", [(product, 1)])
            returned.append(
                store.orders.place(
                    order, {product.id: product.version}, a_record(order, key="key-race")
                )
            )

        # WHEN 8 requests under one key race
        threads = [threading.Thread(target=request) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        # THEN all get the one stored record, and one unit is reserved for its one order
        assert len(returned) == 8
        assert all(r == returned[0] for r in returned)
        assert store.orders.get_idempotency("c-1", "key-race") == returned[0]
        assert [o.id for o in store.orders.list_for_customer("c-1", 100, None).items] == [
            returned[0].response["id"]
        ]
        assert store.stock(product.id) == 9

    # ------------------------------------------------------------------------ reads
    def test_unknown_ids_read_as_none(self, store: Store) -> None:
        assert store.orders.get("o-never-placed") is None
        assert store.orders.get_idempotency("c-1", "key-never-used") is None
        assert store.orders.get_charge("o-never-placed") is None

    def test_products_are_got_by_id_and_missing_ids_are_absent(self, store: Store) -> None:
        one = store.add_product(stock=3)
        two = store.add_product(stock=4)
        got = store.orders.get_many_products([one.id, "p-missing", two.id, one.id])
        assert got == {one.id: one, two.id: two}
        assert store.orders.get_many_products([]) == {}

    # ------------------------------------------------------------------- transition
    def test_a_transition_writes_the_new_state_and_its_records(self, store: Store) -> None:
        product = store.add_product(stock=5)
        order = store.place(product, 2)
        paid = order.transition(PAID, at(1))
        charge = a_charge(order)
        assert store.orders.transition(order, paid, charge=charge)
        assert store.orders.get(order.id) == paid
        assert store.orders.get_charge(order.id) == charge
        fulfilled = paid.transition(FULFILLED, at(2))
        shipment = Shipment(order.id, "DHL", "TRACK-1", at(2))
        note = Notification(order.id, "c-1", "shipped", "on its way", at(2))
        assert store.orders.transition(paid, fulfilled, shipment=shipment, notification=note)
        assert store.orders.get(order.id) == fulfilled
        assert store.stock(product.id) == 3  # a fulfilled order keeps its stock

    def test_a_transition_from_a_state_the_order_has_left_writes_nothing(
        self, store: Store
    ) -> None:
        # GIVEN an order already PAID
        product = store.add_product(stock=5)
        order = store.place(product, 2)
        paid = order.transition(PAID, at(1))
        assert store.orders.transition(order, paid, charge=a_charge(order))
        # WHEN a late consumer, still seeing it PENDING, fails it with the stock released
        failed = order.transition(FAILED, at(2), reason="card declined")
        refunded = replace(a_charge(order), status=REFUNDED)
        moved = store.orders.transition(order, failed, release_stock=True, charge=refunded)
        # THEN nothing changes: not the order, not the stock, not the payment record
        assert moved is False
        assert store.orders.get(order.id) == paid
        assert store.stock(product.id) == 3
        assert store.orders.get_charge(order.id) == a_charge(order)

    def test_a_transition_of_an_unknown_order_is_false(self, store: Store) -> None:
        product = store.add_product(stock=5)
        ghost = an_order("c-1", [(product, 1)])
        assert not store.orders.transition(ghost, ghost.transition(PAID, at(1)))
        assert store.orders.get(ghost.id) is None
        assert store.orders.get_charge(ghost.id) is None

    def test_a_transition_can_release_the_reserved_stock(self, store: Store) -> None:
        product = store.add_product(stock=5)
        order = store.place(product, 2)
        assert store.stock(product.id) == 3
        failed = order.transition(FAILED, at(1), reason="card declined")
        assert store.orders.transition(order, failed, release_stock=True)
        assert store.orders.get(order.id) == failed
        assert store.products.get(product.id) == product  # stock back, nothing else touched

    def test_racing_transitions_from_one_state_let_exactly_one_win(self, store: Store) -> None:
        # GIVEN a PENDING order
        product = store.add_product(stock=5)
        order = store.place(product, 1)
        wins: list[str] = []
        start = threading.Barrier(6, timeout=30)

        def move(to: str) -> None:
            start.wait()
            new = order.transition(to, at(1), reason=None if to == PAID else to)
            if store.orders.transition(order, new, release_stock=to != PAID):
                wins.append(to)

        # WHEN six consumers move it at once, to PAID, FAILED or CANCELLED
        targets = [PAID, FAILED, CANCELLED] * 2
        threads = [threading.Thread(target=move, args=(to,)) for to in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        # THEN exactly one wins; the stock is released at most once
        assert len(wins) == 1
        assert stored(store, order.id).status == wins[0]
        assert store.stock(product.id) == (4 if wins[0] == PAID else 5)

    # ---------------------------------------------------- needs attention, operators
    def test_flagging_and_an_operator_retry_round_trip(self, store: Store) -> None:
        # GIVEN an order flagged while PAID
        product = store.add_product(stock=5)
        order = store.place(product, 1)
        paid = order.transition(PAID, at(1))
        store.orders.transition(order, paid, charge=a_charge(order))
        flagged = paid.transition(NEEDS_ATTENTION, at(2), reason="shipping failed 5 times")
        assert store.orders.transition(paid, flagged)
        assert store.orders.get(order.id) == flagged
        assert (flagged.flagged_from, flagged.failure_reason) == (PAID, "shipping failed 5 times")
        # WHEN an operator retries it
        retried = flagged.operate(RETRY, PAID, "admin-1", at(3), "carrier is back")
        assert store.orders.transition(flagged, retried)
        # THEN it is PAID again, its failure reason gone, the action recorded
        again = stored(store, order.id)
        assert again == retried
        assert again.failure_reason is None
        assert [(a.action, a.actor, a.to) for a in again.actions] == [(RETRY, "admin-1", PAID)]

    def test_operator_actions_accumulate(self, store: Store) -> None:
        product = store.add_product(stock=5)
        order = store.place(product, 2)
        flagged = order.transition(NEEDS_ATTENTION, at(1), reason="payment unknown")
        store.orders.transition(order, flagged)
        retried = flagged.operate(RETRY, PENDING, "admin-1", at(2), "provider is back")
        store.orders.transition(flagged, retried)
        flagged_again = retried.transition(NEEDS_ATTENTION, at(3), reason="still unknown")
        store.orders.transition(retried, flagged_again)
        cancelled = flagged_again.operate(CANCEL, CANCELLED, "admin-2", at(4), "customer asked")
        assert store.orders.transition(flagged_again, cancelled, release_stock=True)
        final = stored(store, order.id)
        assert final == cancelled
        assert [(a.action, a.actor, a.at, a.reason, a.to) for a in final.actions] == [
            (RETRY, "admin-1", at(2), "provider is back", PENDING),
            (CANCEL, "admin-2", at(4), "customer asked", CANCELLED),
        ]
        assert store.stock(product.id) == 5

    # ----------------------------------------------------------------- the ledger
    def test_marking_refunded_changes_the_payment_record(self, store: Store) -> None:
        product = store.add_product(stock=5)
        order = store.place(product, 1)
        store.orders.transition(order, order.transition(PAID, at(1)), charge=a_charge(order))
        store.orders.mark_refunded(order.id, at(2))
        assert store.orders.get_charge(order.id) == replace(a_charge(order), status=REFUNDED)

    def test_marking_refunded_without_a_payment_record_writes_none(self, store: Store) -> None:
        product = store.add_product(stock=5)
        order = store.place(product, 1)
        store.orders.mark_refunded(order.id, at(1))
        assert store.orders.get_charge(order.id) is None
        store.orders.mark_refunded("o-never-placed", at(1))
        assert store.orders.get_charge("o-never-placed") is None

    def test_recording_a_charge_writes_the_ledger_whatever_the_state(self, store: Store) -> None:
        # GIVEN a cancelled order whose payment the ledger has, though the order never saw it
        product = store.add_product(stock=5)
        order = store.place(product, 1)
        cancelled = order.transition(CANCELLED, at(1), reason="customer asked")
        store.orders.transition(order, cancelled, release_stock=True)
        # WHEN the charge is recorded, then its refund
        store.orders.record_charge(order.id, a_charge(order), at(2))
        assert store.orders.get_charge(order.id) == a_charge(order)
        refunded = replace(a_charge(order), status=REFUNDED)
        store.orders.record_charge(order.id, refunded, at(3))
        # THEN the payment record is the ledger's; the order is untouched
        assert store.orders.get_charge(order.id) == refunded
        assert store.orders.get(order.id) == cancelled

    # --------------------------------------------------------- list for a customer
    def test_a_customers_orders_list_newest_first_across_pages(self, store: Store) -> None:
        # GIVEN 7 orders of one customer at different times, and another customer's
        product = store.add_product(stock=100)
        mine = [store.place(product, 1, customer="c-1", created_at=at(m)) for m in range(7)]
        store.place(product, 1, customer="c-2", created_at=at(3, 30))
        # WHEN they are listed 3 at a time
        seen, pages = all_pages(lambda c: store.orders.list_for_customer("c-1", 3, c))
        # THEN 3 pages hold all seven, newest first, and only the customer's
        assert pages == 3
        assert [o.id for o in seen] == [o.id for o in reversed(mine)]

    def test_a_listed_order_is_the_order_as_stored_with_every_field(self, store: Store) -> None:
        # GIVEN an order of two lines that was paid, flagged, retried by an operator and failed
        kettle, mug = store.add_product(stock=5), store.add_product(stock=5)
        order = an_order("c-1", [(kettle, 2), (mug, 1)])
        store.orders.place(order, {kettle.id: 1, mug.id: 1}, a_record(order))
        paid = order.transition(PAID, at(1))
        store.orders.transition(order, paid, charge=a_charge(order))
        flagged = paid.transition(NEEDS_ATTENTION, at(2), reason="shipping failed")
        store.orders.transition(paid, flagged)
        retried = flagged.operate(RETRY, PAID, "admin-1", at(3), "carrier is back")
        store.orders.transition(flagged, retried)
        # WHEN the customer's orders are listed, THEN it is listed as it is stored
        listed = store.orders.list_for_customer("c-1", 10, None).items
        assert list(listed) == [stored(store, order.id)] == [retried]

    def test_an_exactly_full_last_page_of_a_customer_has_no_cursor(self, store: Store) -> None:
        product = store.add_product(stock=100)
        for m in range(4):
            store.place(product, 1, created_at=at(m))
        first = store.orders.list_for_customer("c-1", 2, None)
        second = store.orders.list_for_customer("c-1", 2, first.next_cursor)
        assert len(first.items) == len(second.items) == 2
        assert second.next_cursor is None

    def test_a_customer_without_orders_has_one_empty_page(self, store: Store) -> None:
        page = store.orders.list_for_customer("c-nobody", 5, None)
        assert (list(page.items), page.next_cursor) == ([], None)

    def test_a_customers_cursor_is_refused_for_another_customer(self, store: Store) -> None:
        product = store.add_product(stock=100)
        for m in range(3):
            store.place(product, 1, customer="c-1", created_at=at(m))
            store.place(product, 1, customer="c-2", created_at=at(m))
        cursor = store.orders.list_for_customer("c-1", 1, None).next_cursor
        assert cursor is not None
        with pytest.raises(InvalidRequest):
            store.orders.list_for_customer("c-2", 1, cursor)

    @pytest.mark.parametrize("cursor", ["garbage", "1", "!!!!", "é"])
    def test_a_customer_cursor_this_api_did_not_issue_is_refused(
        self, store: Store, cursor: str
    ) -> None:
        product = store.add_product(stock=10)
        store.place(product, 1)
        with pytest.raises(InvalidRequest):
            store.orders.list_for_customer("c-1", 10, cursor)

    # ------------------------------------------------------------- list by state
    def test_orders_in_a_state_list_oldest_change_first_across_pages(self, store: Store) -> None:
        # GIVEN 9 PENDING and 6 PAID orders of several customers, interleaved in time
        product = store.add_product(stock=100)
        pending, paid = [], []
        for m in range(15):
            order = store.place(product, 1, customer=f"c-{m % 4}", created_at=at(m))
            if m % 5 in (1, 3):
                moved = order.transition(PAID, at(20 + m))
                store.orders.transition(order, moved)
                paid.append(moved)
            else:
                pending.append(order)
        # WHEN each state is listed 4 at a time
        seen_pending, pending_pages = all_pages(lambda c: store.orders.list_by_state(PENDING, 4, c))
        seen_paid, paid_pages = all_pages(lambda c: store.orders.list_by_state(PAID, 4, c))
        # THEN each holds its orders once, by the time of their last change
        assert [o.id for o in seen_pending] == [o.id for o in pending]
        assert [o.id for o in seen_paid] == [o.id for o in paid]
        assert (pending_pages, paid_pages) == (3, 2)
        assert all(o.status == PENDING for o in seen_pending)

    def test_orders_that_need_attention_list_by_when_they_were_flagged(self, store: Store) -> None:
        product = store.add_product(stock=100)
        orders = [store.place(product, 1, created_at=at(m)) for m in range(3)]
        flagged = []
        for minute, order in zip([30, 10, 20], orders, strict=True):
            moved = order.transition(NEEDS_ATTENTION, at(minute), reason="stuck")
            store.orders.transition(order, moved)
            flagged.append(moved)
        listed = store.orders.list_by_state(NEEDS_ATTENTION, 10, None)
        assert list(listed.items) == [flagged[1], flagged[2], flagged[0]]
        assert listed.next_cursor is None
        assert list(store.orders.list_by_state(PENDING, 10, None).items) == []

    @pytest.mark.parametrize("state", [FULFILLED, FAILED, CANCELLED, "NOT_A_STATE"])
    def test_states_without_an_index_list_nothing(self, store: Store, state: str) -> None:
        product = store.add_product(stock=10)
        order = store.place(product, 1)
        if state in (FAILED, CANCELLED):
            store.orders.transition(order, order.transition(state, at(1), reason="x"))
        page = store.orders.list_by_state(state, 10, None)
        assert (list(page.items), page.next_cursor) == ([], None)

    def test_a_state_cursor_is_refused_for_another_state(self, store: Store) -> None:
        product = store.add_product(stock=10)
        for m in range(3):
            store.place(product, 1, created_at=at(m))
        cursor = store.orders.list_by_state(PENDING, 1, None).next_cursor
        assert cursor is not None
        with pytest.raises(InvalidRequest):
            store.orders.list_by_state(PAID, 1, cursor)
        with pytest.raises(InvalidRequest):
            store.orders.list_by_state(PENDING, 1, "garbage")

    def test_an_order_leaving_a_waiting_state_leaves_its_listing(self, store: Store) -> None:
        product = store.add_product(stock=10)
        order = store.place(product, 1)
        paid = order.transition(PAID, at(1))
        store.orders.transition(order, paid)
        assert [o.id for o in store.orders.list_by_state(PAID, 10, None).items] == [order.id]
        store.orders.transition(paid, paid.transition(FULFILLED, at(2)))
        assert list(store.orders.list_by_state(PAID, 10, None).items) == []
        assert list(store.orders.list_by_state(PENDING, 10, None).items) == []

    # ---------------------------------------------------- open orders, republishing
    def test_open_orders_are_those_unchanged_since_the_cutoff_oldest_first(
        self, store: Store
    ) -> None:
        # GIVEN orders placed at minutes 0..5: two PAID later, one FAILED, one flagged
        product = store.add_product(stock=100)
        orders = [store.place(product, 1, created_at=at(m)) for m in range(6)]
        store.orders.transition(orders[1], orders[1].transition(PAID, at(8)))
        store.orders.transition(orders[2], orders[2].transition(PAID, at(30)))
        store.orders.transition(orders[3], orders[3].transition(FAILED, at(6), reason="no"))
        store.orders.transition(
            orders[4], orders[4].transition(NEEDS_ATTENTION, at(7), reason="stuck")
        )
        # WHEN open orders unchanged since minute 10 are asked for
        found = store.orders.open_orders(at(10), 10)
        # THEN the PENDING and PAID ones last changed before it come, oldest change first
        assert [o.id for o in found] == [orders[0].id, orders[5].id, orders[1].id]
        assert [o.id for o in store.orders.open_orders(at(10), 2)] == [
            orders[0].id,
            orders[5].id,
        ]
        assert store.orders.open_orders(at(0), 10) == []

    def test_a_republish_is_counted_and_resets_the_wait(self, store: Store) -> None:
        # GIVEN an order PENDING since minute 0
        product = store.add_product(stock=10)
        order = store.place(product, 1)
        assert [o.id for o in store.orders.open_orders(at(5), 10)] == [order.id]
        # WHEN it is republished at minute 5, then at minute 20
        assert store.orders.record_republish(order, at(5)) == 1
        # THEN it is not open-and-waiting at minute 5 any more, but is again after 20
        assert store.orders.open_orders(at(5), 10) == []
        assert store.orders.record_republish(order, at(20)) == 2
        assert [o.id for o in store.orders.open_orders(at(21), 10)] == [order.id]
        assert store.orders.get(order.id) == order  # the order itself did not change

    def test_a_republished_order_still_sorts_by_its_last_change(self, store: Store) -> None:
        # GIVEN A placed at minute 0 and republished at 5, and B placed at 2
        product = store.add_product(stock=10)
        a = store.place(product, 1, created_at=at(0))
        b = store.place(product, 1, created_at=at(2))
        store.orders.record_republish(a, at(5))
        # THEN both are open before minute 10, A first: its last change is older
        assert [o.id for o in store.orders.open_orders(at(10), 10)] == [a.id, b.id]
        # and the listing by state orders by the time it was last touched (republished)
        assert [o.id for o in store.orders.list_by_state(PENDING, 10, None).items] == [
            b.id,
            a.id,
        ]

    def test_a_republish_of_an_order_that_moved_on_counts_nothing(self, store: Store) -> None:
        product = store.add_product(stock=10)
        order = store.place(product, 1)
        store.orders.transition(order, order.transition(PAID, at(1)))
        assert store.orders.record_republish(order, at(2)) is None
        ghost = an_order("c-1", [(product, 1)])
        assert store.orders.record_republish(ghost, at(2)) is None
        assert store.orders.get(ghost.id) is None

    def test_an_order_back_in_the_pipeline_counts_republishes_afresh(self, store: Store) -> None:
        product = store.add_product(stock=10)
        order = store.place(product, 1)
        assert store.orders.record_republish(order, at(1)) == 1
        assert store.orders.record_republish(order, at(2)) == 2
        flagged = order.transition(NEEDS_ATTENTION, at(3), reason="republished too often")
        store.orders.transition(order, flagged)
        retried = flagged.operate(RETRY, PENDING, "admin-1", at(5), "try again")
        store.orders.transition(flagged, retried)
        assert store.orders.record_republish(retried, at(6)) == 1
