"""The ProductRepository contract: the same cases against the fake and DynamoDB Local."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import replace

import pytest

from funcmart.adapters.dynamodb.catalog import DynamoProductRepository
from funcmart.adapters.dynamodb.table import Tables, bind
from funcmart.domain.catalog import (
    MAX_STOCK,
    Product,
    ProductChanges,
    StockChange,
    apply_changes,
    archive,
)
from funcmart.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    OutOfStock,
    VersionConflict,
)
from funcmart.ports import ProductRepository
from tests.fakes import FakeProductRepository
from tests.support.factories import a_product, eur, random_category

LATER = "2026-11-26T19:00:00.000Z"
REGION = "us-east-1"
MakeRepository = Callable[[], ProductRepository]


@pytest.fixture(scope="module")
def shared_tables(make_table: Callable[[], str], dynamodb_endpoint: str) -> Tables:
    """One table for the cases that keep to their own ids and categories."""
    return bind(make_table(), REGION, dynamodb_endpoint)


@pytest.fixture(params=["fake", "dynamodb"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def products(backend: str, request: pytest.FixtureRequest) -> ProductRepository:
    if backend == "fake":
        return FakeProductRepository()
    return DynamoProductRepository(request.getfixturevalue("shared_tables"))


@pytest.fixture
def empty_products(backend: str, request: pytest.FixtureRequest) -> ProductRepository:
    """A repository with nothing in it, for cases that list the whole catalog."""
    if backend == "fake":
        return FakeProductRepository()
    make_table = request.getfixturevalue("make_table")
    endpoint = request.getfixturevalue("dynamodb_endpoint")
    return DynamoProductRepository(bind(make_table(), REGION, endpoint))


def add(products: ProductRepository, **fields: object) -> Product:
    product = a_product(**fields)
    products.add(product)
    return product


def list_all(
    products: ProductRepository, category: str | None, limit: int
) -> tuple[list[Product], int]:
    """Every product of a listing, following cursors; and how many pages it took."""
    seen: list[Product] = []
    cursor: str | None = None
    for pages in range(1, 100):
        page = products.list(category, limit, cursor)
        assert len(page.items) <= limit
        seen.extend(page.items)
        if page.next_cursor is None:
            return seen, pages
        assert page.items, "a cursor must never lead to an empty page"
        cursor = page.next_cursor
    raise AssertionError("the listing did not end within 100 pages")


class TestProductRepository:
    # ------------------------------------------------------------------ add and get
    def test_a_product_added_is_got_back_equal(self, products: ProductRepository) -> None:
        product = add(products, name="Kettle", description="Boils", price=eur(1234), stock=5)
        assert products.get(product.id) == product

    def test_an_unknown_id_gets_none(self, products: ProductRepository) -> None:
        assert products.get("p-never-added") is None

    def test_adding_an_existing_id_is_a_conflict(self, products: ProductRepository) -> None:
        product = add(products, name="First")
        with pytest.raises(Conflict):
            products.add(replace(product, name="Second"))
        stored = products.get(product.id)
        assert stored is not None
        assert stored.name == "First"

    # ------------------------------------------------------------------------- save
    def test_save_at_the_expected_version_writes_catalog_fields(
        self, products: ProductRepository
    ) -> None:
        # GIVEN a product at version 1 with 5 in stock
        product = add(products, stock=5)
        new_category = random_category()
        # WHEN version 2 is saved from a copy that carries a different stock
        changed = apply_changes(
            product,
            ProductChanges(name="Renamed", category=new_category, price=eur(1)),
            LATER,
        )
        products.save(replace(changed, stock=999), expected_version=1)
        # THEN the catalog fields change and stock does not (stock has its own writes)
        stored = products.get(product.id)
        assert stored == replace(changed, stock=5)
        assert [p.id for p in products.list(new_category, 10, None).items] == [product.id]
        assert products.list(product.category, 10, None).items == []

    def test_save_at_a_stale_version_is_a_version_conflict(
        self, products: ProductRepository
    ) -> None:
        product = add(products)
        first = apply_changes(product, ProductChanges(name="First"), LATER)
        products.save(first, expected_version=1)
        second = apply_changes(product, ProductChanges(name="Second"), LATER)
        with pytest.raises(VersionConflict):
            products.save(second, expected_version=1)
        assert products.get(product.id) == first

    def test_save_of_an_unknown_product_is_a_version_conflict(
        self, products: ProductRepository
    ) -> None:
        ghost = a_product()
        with pytest.raises(VersionConflict):
            products.save(ghost, expected_version=1)
        assert products.get(ghost.id) is None

    def test_an_archived_product_leaves_its_listings(self, products: ProductRepository) -> None:
        category = random_category()
        kept = add(products, category=category, name="Kept")
        gone = add(products, category=category, name="Gone")
        products.save(archive(gone, LATER), expected_version=1)
        assert [p.id for p in products.list(category, 10, None).items] == [kept.id]
        stored = products.get(gone.id)
        assert stored is not None
        assert not stored.active

    # ----------------------------------------------------------------- change_stock
    def test_stock_can_be_set_to_a_level(self, products: ProductRepository) -> None:
        product = add(products, stock=5)
        changed = products.change_stock(product.id, StockChange(set_to=42), LATER)
        assert (changed.stock, changed.updated_at, changed.version) == (42, LATER, 1)
        assert products.get(product.id) == changed

    def test_stock_can_be_adjusted(self, products: ProductRepository) -> None:
        product = add(products, stock=5)
        assert products.change_stock(product.id, StockChange(adjust_by=3), LATER).stock == 8
        assert products.change_stock(product.id, StockChange(adjust_by=-8), LATER).stock == 0
        stored = products.get(product.id)
        assert stored is not None
        assert stored.stock == 0

    def test_stock_never_goes_below_zero(self, products: ProductRepository) -> None:
        product = add(products, stock=2)
        with pytest.raises(OutOfStock) as err:
            products.change_stock(product.id, StockChange(adjust_by=-3), LATER)
        assert err.value.extra == {"available": 2}
        stored = products.get(product.id)
        assert stored is not None
        assert stored.stock == 2

    def test_stock_never_goes_above_the_maximum(self, products: ProductRepository) -> None:
        # GIVEN one short of the most stock a product may hold
        product = add(products, stock=MAX_STOCK - 1)
        # WHEN two more are added
        with pytest.raises(InvalidRequest) as err:
            products.change_stock(product.id, StockChange(adjust_by=2), LATER)
        # THEN nothing changes; one more is still fine
        assert err.value.extra == {"field": "adjust"}
        stored = products.get(product.id)
        assert stored is not None
        assert stored.stock == MAX_STOCK - 1
        assert products.change_stock(product.id, StockChange(adjust_by=1), LATER).stock == (
            MAX_STOCK
        )

    @pytest.mark.parametrize(
        "change", [StockChange(set_to=1), StockChange(adjust_by=1), StockChange(adjust_by=-1)]
    )
    def test_stock_of_an_unknown_product_is_not_found(
        self, products: ProductRepository, change: StockChange
    ) -> None:
        with pytest.raises(NotFound):
            products.change_stock("p-never-added", change, LATER)
        assert products.get("p-never-added") is None

    @pytest.mark.parametrize("change", [StockChange(set_to=1), StockChange(adjust_by=-1)])
    def test_stock_of_an_archived_product_is_not_found(
        self, products: ProductRepository, change: StockChange
    ) -> None:
        product = add(products, stock=5)
        products.save(archive(product, LATER), expected_version=1)
        with pytest.raises(NotFound):
            products.change_stock(product.id, change, LATER)

    def test_concurrent_decrements_never_oversell(self, products: ProductRepository) -> None:
        # GIVEN 10 in stock
        product = add(products, stock=10)
        products.get(product.id)  # the client exists before the threads share it
        outcomes: list[str] = []
        start = threading.Barrier(20, timeout=30)

        def take_one() -> None:
            start.wait()
            try:
                products.change_stock(product.id, StockChange(adjust_by=-1), LATER)
                outcomes.append("ok")
            except OutOfStock:
                outcomes.append("out")

        # WHEN 20 buyers take one each at the same moment
        threads = [threading.Thread(target=take_one) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        # THEN exactly 10 succeed and the stock ends at zero
        assert sorted(outcomes) == ["ok"] * 10 + ["out"] * 10
        stored = products.get(product.id)
        assert stored is not None
        assert stored.stock == 0

    # ------------------------------------------------------------------------- list
    def test_a_category_lists_by_name_ignoring_case(self, products: ProductRepository) -> None:
        category = random_category()
        names = ["lamp", "Lamp shade", "Lamp-post", "armchair", "Zebra rug", "Äpfel", "10 mugs"]
        for name in names:
            add(products, category=category, name=name)
        add(products, category=random_category(), name="another category")
        listed = [p.name for p in products.list(category, 100, None).items]
        assert listed == sorted(names, key=lambda n: f"{n.casefold()}#")
        assert sorted(listed) == sorted(names)

    def test_a_category_pages_through_every_product_once(self, products: ProductRepository) -> None:
        # GIVEN 7 products in a category (two with the same name) and others elsewhere
        category = random_category()
        names = ["Bowl", "cup", "Dish", "Jug", "Mug", "Mug", "plate"]
        added = {add(products, category=category, name=n).id for n in names}
        add(products, category=random_category(), name="Elsewhere")
        # WHEN it is listed 3 at a time
        seen, pages = list_all(products, category, 3)
        # THEN three pages hold every product exactly once, in name order
        assert pages == 3
        assert [p.id for p in seen if p.id in added] == [p.id for p in seen]
        assert len(seen) == len({p.id for p in seen}) == 7
        assert {p.id for p in seen} == added
        assert [p.name.casefold() for p in seen] == sorted(n.casefold() for n in names)

    def test_an_exactly_full_last_page_has_no_cursor(self, products: ProductRepository) -> None:
        category = random_category()
        for name in ["a", "b", "c", "d"]:
            add(products, category=category, name=name)
        first = products.list(category, 2, None)
        second = products.list(category, 2, first.next_cursor)
        assert [p.name for p in first.items + list(second.items)] == ["a", "b", "c", "d"]
        assert second.next_cursor is None

    def test_an_empty_category_is_one_empty_page(self, products: ProductRepository) -> None:
        page = products.list(random_category(), 5, None)
        assert (list(page.items), page.next_cursor) == ([], None)

    def test_the_whole_catalog_pages_across_categories(
        self, empty_products: ProductRepository
    ) -> None:
        # GIVEN 8 products in 3 categories, one archived
        products = empty_products
        categories = [random_category() for _ in range(3)]
        added = [add(products, category=categories[i % 3], name=f"Product {i}") for i in range(8)]
        products.save(archive(added[0], LATER), expected_version=1)
        # WHEN the catalog is listed 2 at a time
        seen, pages = list_all(products, None, 2)
        # THEN 4 pages hold the 7 active products once each, by name
        assert pages == 4
        assert [p.id for p in seen] == [p.id for p in added[1:]]

    def test_a_cursor_from_another_category_is_refused(self, products: ProductRepository) -> None:
        one, other = random_category(), random_category()
        for name in ["a", "b", "c"]:
            add(products, category=one, name=name)
            add(products, category=other, name=name)
        cursor = products.list(one, 1, None).next_cursor
        assert cursor is not None
        with pytest.raises(InvalidRequest):
            products.list(other, 1, cursor)
        with pytest.raises(InvalidRequest):
            products.list(None, 1, cursor)

    def test_a_catalog_cursor_is_refused_for_a_category(
        self, empty_products: ProductRepository
    ) -> None:
        category = random_category()
        for name in ["a", "b"]:
            add(empty_products, category=category, name=name)
        cursor = empty_products.list(None, 1, None).next_cursor
        assert cursor is not None
        with pytest.raises(InvalidRequest):
            empty_products.list(category, 1, cursor)

    @pytest.mark.parametrize(
        "cursor",
        [
            "garbage",
            "!!!!",
            "é",
            base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
            base64.urlsafe_b64encode(b"[1, 2]").decode(),
            base64.urlsafe_b64encode(json.dumps({"pk": "PRODUCT#x"}).encode()).decode(),
        ],
    )
    def test_a_cursor_this_api_did_not_issue_is_refused(
        self, products: ProductRepository, cursor: str
    ) -> None:
        category = random_category()
        add(products, category=category)
        with pytest.raises(InvalidRequest):
            products.list(category, 10, cursor)
        with pytest.raises(InvalidRequest):
            products.list(None, 10, cursor)
