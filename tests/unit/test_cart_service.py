"""Cart use cases over in-memory fakes: lines, prices from the catalog, limits, outages."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from funcmart.domain.cart import MAX_LINES
from funcmart.domain.commands import ArchiveProduct, CreateProduct, SetCartItem, UpdateProduct
from funcmart.domain.errors import Conflict, DependencyUnavailable, InvalidRequest, NotFound
from funcmart.domain.money import Money
from funcmart.services import cart, catalog
from tests.fakes import FakeCache, FakeCartStore, FakeClock, FakeProductRepository
from tests.support.builders import ADMIN, FakeIdsOnce, customer


class World:
    def __init__(self) -> None:
        self.carts = FakeCartStore()
        self.products = FakeProductRepository()
        self.cache = FakeCache()
        self.clock = FakeClock()

    def product(self, amount: int = 1000, currency: str = "EUR", name: str = "Dune") -> str:
        return catalog.create_product(
            SimpleNamespace(products=self.products, clock=self.clock, ids=FakeIdsOnce()),
            ADMIN,
            CreateProduct(
                name=name, description="", category="books", price=Money(amount, currency), stock=5
            ),
        ).id

    def put(self, who, pid, qty):  # type: ignore[no-untyped-def]
        return cart.set_item(self, who, SetCartItem(pid, qty))

    def view(self, who):  # type: ignore[no-untyped-def]
        return cart.view_cart(self, who).to_dict()


@pytest.fixture
def w() -> World:
    return World()


class TestPutCartItem:
    def test_given_an_empty_cart_when_a_product_is_put_then_it_is_priced_from_the_catalog(self, w):
        pid, me = w.product(amount=1250, name="Dune"), customer()
        view = w.put(me, pid, 2).to_dict()
        assert view["lines"] == [
            {
                "productId": pid,
                "quantity": 2,
                "available": True,
                "name": "Dune",
                "unitPrice": {"amount": 1250, "currency": "EUR"},
                "subtotal": {"amount": 2500, "currency": "EUR"},
            }
        ]
        assert view["total"] == {"amount": 2500, "currency": "EUR"}
        assert view["itemCount"] == 2

    def test_put_sets_the_quantity_rather_than_adding(self, w):
        pid, me = w.product(), customer()
        w.put(me, pid, 2)
        assert w.put(me, pid, 5).to_dict()["lines"][0]["quantity"] == 5

    def test_quantity_zero_removes_the_line(self, w):
        pid, me = w.product(), customer()
        w.put(me, pid, 2)
        assert w.put(me, pid, 0).to_dict() == {"lines": [], "itemCount": 0, "total": None}

    def test_quantity_zero_removes_even_an_archived_product(self, w):
        pid, me = w.product(), customer()
        w.put(me, pid, 1)
        catalog.archive_product(w, ADMIN, ArchiveProduct(pid))
        assert w.put(me, pid, 0).lines == ()

    @pytest.mark.parametrize("qty", [-1, 1001])
    def test_quantity_out_of_range_is_invalid(self, w, qty):
        with pytest.raises(InvalidRequest):
            w.put(customer(), w.product(), qty)

    def test_an_unknown_product_is_not_found(self, w):
        with pytest.raises(NotFound):
            w.put(customer(), "no-such-product", 1)

    def test_an_archived_product_cannot_be_put(self, w):
        pid = w.product()
        catalog.archive_product(w, ADMIN, ArchiveProduct(pid))
        with pytest.raises(NotFound):
            w.put(customer(), pid, 1)

    def test_a_cart_holds_at_most_one_orders_worth_of_products(self, w):
        me = customer()
        for _ in range(MAX_LINES):
            w.put(me, w.product(), 1)
        with pytest.raises(Conflict):
            w.put(me, w.product(), 1)

    def test_a_full_cart_still_accepts_a_new_quantity_for_a_line_it_has(self, w):
        me, first = customer(), w.product()
        w.put(me, first, 1)
        for _ in range(MAX_LINES - 1):
            w.put(me, w.product(), 1)
        assert any(line.quantity == 3 for line in w.put(me, first, 3).lines)

    def test_carts_are_per_customer(self, w):
        pid, a, b = w.product(), customer(), customer()
        w.put(a, pid, 1)
        assert w.view(b)["lines"] == []


class TestGetCart:
    def test_prices_follow_the_catalog(self, w):
        pid, me = w.product(amount=1000), customer()
        w.put(me, pid, 1)
        product = w.products.get(pid)
        from funcmart.domain.catalog import ProductChanges

        catalog.update_product(
            w, ADMIN, UpdateProduct(pid, product.version, ProductChanges(price=Money(800, "EUR")))
        )
        assert w.view(me)["total"] == {"amount": 800, "currency": "EUR"}

    def test_an_archived_line_is_shown_unavailable_and_left_out_of_the_total(self, w):
        me, kept, gone = customer(), w.product(amount=100), w.product(amount=900)
        w.put(me, kept, 1)
        w.put(me, gone, 1)
        catalog.archive_product(w, ADMIN, ArchiveProduct(gone))
        view = w.view(me)
        by_id = {line["productId"]: line for line in view["lines"]}
        assert by_id[gone]["available"] is False
        assert by_id[gone]["unitPrice"] is None
        assert view["total"] == {"amount": 100, "currency": "EUR"}

    def test_mixed_currencies_have_no_total(self, w):
        me = customer()
        w.put(me, w.product(currency="EUR"), 1)
        w.put(me, w.product(currency="USD"), 1)
        assert w.view(me)["total"] is None

    def test_redis_out_is_dependency_unavailable(self, w):
        w.carts.available = False
        with pytest.raises(DependencyUnavailable):
            w.view(customer())


class TestRemoveAndClear:
    def test_remove_takes_one_line_out_and_is_idempotent(self, w):
        me, a, b = customer(), w.product(), w.product()
        w.put(me, a, 1)
        w.put(me, b, 1)
        cart.remove_item(w.carts, me, a)
        cart.remove_item(w.carts, me, a)
        assert [line["productId"] for line in w.view(me)["lines"]] == [b]

    def test_clear_empties_the_cart(self, w):
        me = customer()
        w.put(me, w.product(), 1)
        cart.clear_cart(w.carts, me)
        assert w.view(me)["lines"] == []
