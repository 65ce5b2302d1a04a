"""Catalog use cases against the in-memory fakes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from funcmart.domain.catalog import ARCHIVED, Product, ProductChanges, StockChange, apply_changes
from funcmart.domain.errors import Forbidden, InvalidRequest, NotFound, OutOfStock, VersionConflict
from funcmart.domain.identity import Principal
from funcmart.services import catalog
from tests.fakes import FakeCache, FakeClock, FakeIds, FakeProductRepository
from tests.support.factories import ADMIN, CUSTOMER, a_product, eur, random_category


@dataclass
class World:
    products: FakeProductRepository = field(default_factory=FakeProductRepository)
    cache: FakeCache = field(default_factory=FakeCache)
    clock: FakeClock = field(default_factory=FakeClock)
    ids: FakeIds = field(default_factory=FakeIds)

    def given_a_product(self, **fields: object) -> Product:
        product = a_product(**fields)
        self.products.add(product)
        return product


@pytest.fixture
def world() -> World:
    return World()


class TestCreateProduct:
    def test_an_admin_adds_a_product(self, world: World) -> None:
        product = catalog.create_product(
            world.products,
            world.clock,
            world.ids,
            ADMIN,
            name="Teapot",
            description="",
            category="kitchen",
            price=eur(1500),
            stock=4,
        )
        assert product.id == "id000001"
        assert product.created_at == world.clock.now()
        assert world.products.get(product.id) == product

    def test_a_customer_may_not(self, world: World) -> None:
        with pytest.raises(Forbidden):
            catalog.create_product(
                world.products,
                world.clock,
                world.ids,
                CUSTOMER,
                name="Teapot",
                description="",
                category="kitchen",
                price=eur(1500),
                stock=4,
            )
        assert world.products.list(None, 10, None).items == []

    def test_invalid_fields_store_nothing(self, world: World) -> None:
        with pytest.raises(InvalidRequest):
            catalog.create_product(
                world.products,
                world.clock,
                world.ids,
                ADMIN,
                name="Teapot",
                description="",
                category="Kitchen",
                price=eur(1500),
                stock=4,
            )
        assert world.products.list(None, 10, None).items == []


class TestGetProduct:
    def test_a_miss_reads_the_repository_and_fills_the_cache(self, world: World) -> None:
        # GIVEN a product that is not cached
        product = world.given_a_product()
        # WHEN it is read twice
        first, first_hit = catalog.get_product(world.products, world.cache, product.id)
        second, second_hit = catalog.get_product(world.products, world.cache, product.id)
        # THEN the first read misses and fills the cache, the second hits
        assert (first, first_hit) == (product, False)
        assert (second, second_hit) == (product, True)
        assert world.cache.values[product.id] == product.to_dict()

    def test_a_hit_does_not_touch_the_repository(self, world: World) -> None:
        product = world.given_a_product(name="Cached name")
        catalog.get_product(world.products, world.cache, product.id)
        world.products.save(apply_changes(product, ProductChanges(name="Fresh"), "t"), 1)
        served, hit = catalog.get_product(world.products, world.cache, product.id)
        assert hit
        assert served.name == "Cached name"

    @pytest.mark.parametrize(
        "spoil",
        [
            lambda entry: entry.clear(),
            lambda entry: entry.pop("category"),
            lambda entry: entry.update(price="free"),
            lambda entry: entry.update(stock="many"),
            lambda entry: entry.update(price={"amount": 100, "currency": "euro"}),
        ],
        ids=["empty", "missing-field", "price-string", "stock-string", "bad-currency"],
    )
    def test_an_unusable_cache_entry_is_read_through(
        self, world: World, spoil: Callable[[dict[str, object]], None]
    ) -> None:
        # GIVEN a cache entry in a shape this code cannot read (e.g. from another release)
        product = world.given_a_product()
        entry = product.to_dict()
        spoil(entry)
        world.cache.values[product.id] = entry
        # WHEN the product is read
        served, hit = catalog.get_product(world.products, world.cache, product.id)
        # THEN it comes from the repository and replaces the entry
        assert (served, hit) == (product, False)
        assert world.cache.values[product.id] == product.to_dict()

    def test_unknown_products_are_not_found(self, world: World) -> None:
        with pytest.raises(NotFound):
            catalog.get_product(world.products, world.cache, "nope")
        assert world.cache.values == {}

    def test_when_the_cache_is_down_the_repository_answers(self, world: World) -> None:
        product = world.given_a_product()
        world.cache.available = False
        for _ in range(2):
            served, hit = catalog.get_product(world.products, world.cache, product.id)
            assert (served, hit) == (product, False)

    @pytest.mark.parametrize("principal", [None, CUSTOMER])
    def test_archived_products_are_hidden_from_customers(
        self, world: World, principal: Principal | None
    ) -> None:
        product = world.given_a_product()
        catalog.archive_product(world.products, world.cache, world.clock, ADMIN, product.id)
        for _ in range(2):  # once from the repository, once from the cache
            with pytest.raises(NotFound):
                catalog.get_product(world.products, world.cache, product.id, principal)

    def test_admins_still_see_archived_products(self, world: World) -> None:
        product = world.given_a_product()
        catalog.archive_product(world.products, world.cache, world.clock, ADMIN, product.id)
        served, _ = catalog.get_product(world.products, world.cache, product.id, ADMIN)
        assert served.status == ARCHIVED


class TestUpdateProduct:
    def test_an_update_at_the_current_version_applies(self, world: World) -> None:
        # GIVEN a cached product at version 1
        product = world.given_a_product(stock=7)
        catalog.get_product(world.products, world.cache, product.id)
        # WHEN an admin changes its price, naming version 1
        updated = catalog.update_product(
            world.products,
            world.cache,
            world.clock,
            ADMIN,
            product.id,
            1,
            ProductChanges(price=eur(100)),
        )
        # THEN it is stored at version 2, stock untouched, and the cache entry is gone
        assert updated.version == 2
        stored = world.products.get(product.id)
        assert stored is not None
        assert (stored.price, stored.version, stored.stock) == (eur(100), 2, 7)
        assert product.id not in world.cache.values

    def test_a_stale_version_is_a_conflict(self, world: World) -> None:
        # GIVEN two admins who both read version 1
        product = world.given_a_product()
        change = ProductChanges(name="First")
        catalog.update_product(
            world.products, world.cache, world.clock, ADMIN, product.id, 1, change
        )
        # WHEN the second writes, still naming version 1
        with pytest.raises(VersionConflict) as err:
            catalog.update_product(
                world.products,
                world.cache,
                world.clock,
                ADMIN,
                product.id,
                1,
                ProductChanges(name="Second"),
            )
        # THEN it is told the current version and the first write stands
        assert err.value.extra == {"currentVersion": 2}
        stored = world.products.get(product.id)
        assert stored is not None
        assert stored.name == "First"

    def test_a_write_between_read_and_save_is_a_conflict(self, world: World) -> None:
        product = world.given_a_product()
        # another writer commits version 2 first
        world.products.save(apply_changes(product, ProductChanges(name="Other"), "t"), 1)
        with pytest.raises(VersionConflict):
            world.products.save(apply_changes(product, ProductChanges(name="Mine"), "t"), 1)

    def test_unknown_products_are_not_found(self, world: World) -> None:
        with pytest.raises(NotFound):
            catalog.update_product(
                world.products,
                world.cache,
                world.clock,
                ADMIN,
                "nope",
                1,
                ProductChanges(name="x"),
            )

    def test_customers_may_not_update(self, world: World) -> None:
        product = world.given_a_product()
        with pytest.raises(Forbidden):
            catalog.update_product(
                world.products,
                world.cache,
                world.clock,
                CUSTOMER,
                product.id,
                1,
                ProductChanges(name="x"),
            )


class TestArchiveProduct:
    def test_an_archived_product_leaves_the_catalog(self, world: World) -> None:
        category = random_category()
        product = world.given_a_product(category=category)
        catalog.get_product(world.products, world.cache, product.id)
        archived = catalog.archive_product(
            world.products, world.cache, world.clock, ADMIN, product.id
        )
        assert archived.status == ARCHIVED
        assert archived.version == 2
        assert product.id not in world.cache.values
        assert catalog.list_products(world.products, category, 10, None).items == []
        with pytest.raises(NotFound):
            catalog.get_product(world.products, world.cache, product.id)

    def test_archiving_twice_is_not_found(self, world: World) -> None:
        product = world.given_a_product()
        catalog.archive_product(world.products, world.cache, world.clock, ADMIN, product.id)
        with pytest.raises(NotFound):
            catalog.archive_product(world.products, world.cache, world.clock, ADMIN, product.id)

    def test_customers_may_not_archive(self, world: World) -> None:
        product = world.given_a_product()
        with pytest.raises(Forbidden):
            catalog.archive_product(world.products, world.cache, world.clock, CUSTOMER, product.id)


class TestSetStock:
    def set_stock(self, world: World, product_id: str, change: StockChange) -> Product:
        return catalog.set_stock(
            world.products, world.cache, world.clock, ADMIN, product_id, change
        )

    def test_absolute_and_relative_changes(self, world: World) -> None:
        product = world.given_a_product(stock=10)
        assert self.set_stock(world, product.id, StockChange(set_to=25)).stock == 25
        assert self.set_stock(world, product.id, StockChange(adjust_by=-5)).stock == 20
        assert self.set_stock(world, product.id, StockChange(adjust_by=3)).stock == 23

    def test_stock_never_goes_below_zero(self, world: World) -> None:
        # GIVEN 2 in stock
        product = world.given_a_product(stock=2)
        # WHEN 3 are taken
        with pytest.raises(OutOfStock) as err:
            self.set_stock(world, product.id, StockChange(adjust_by=-3))
        # THEN nothing changes and the caller learns what is available
        assert err.value.extra == {"available": 2}
        stored = world.products.get(product.id)
        assert stored is not None
        assert stored.stock == 2
        assert self.set_stock(world, product.id, StockChange(adjust_by=-2)).stock == 0

    def test_stock_changes_invalidate_the_cache(self, world: World) -> None:
        product = world.given_a_product(stock=10)
        catalog.get_product(world.products, world.cache, product.id)
        self.set_stock(world, product.id, StockChange(set_to=1))
        served, hit = catalog.get_product(world.products, world.cache, product.id)
        assert (served.stock, hit) == (1, False)

    def test_stock_changes_keep_the_version(self, world: World) -> None:
        product = world.given_a_product()
        self.set_stock(world, product.id, StockChange(set_to=1))
        # so that an admin's catalog edit does not conflict with stock movements
        catalog.update_product(
            world.products,
            world.cache,
            world.clock,
            ADMIN,
            product.id,
            1,
            ProductChanges(name="Renamed"),
        )

    @pytest.mark.parametrize("archived", [False, True])
    def test_unknown_or_archived_products_are_not_found(self, world: World, archived: bool) -> None:
        product_id = "nope"
        if archived:
            product_id = world.given_a_product().id
            catalog.archive_product(world.products, world.cache, world.clock, ADMIN, product_id)
        with pytest.raises(NotFound):
            self.set_stock(world, product_id, StockChange(set_to=1))

    def test_customers_may_not_set_stock(self, world: World) -> None:
        product = world.given_a_product()
        with pytest.raises(Forbidden):
            catalog.set_stock(
                world.products,
                world.cache,
                world.clock,
                CUSTOMER,
                product.id,
                StockChange(set_to=1),
            )


class TestListProducts:
    def test_an_invalid_category_is_refused(self, world: World) -> None:
        with pytest.raises(InvalidRequest):
            catalog.list_products(world.products, "Not Valid", 10, None)

    @pytest.mark.parametrize(("asked", "served"), [(0, 1), (-5, 1), (3, 3), (1000, 100)])
    def test_the_page_size_is_clamped(self, world: World, asked: int, served: int) -> None:
        category = random_category()
        for i in range(101):
            world.given_a_product(category=category, name=f"item {i:03d}")
        page = catalog.list_products(world.products, category, asked, None)
        assert len(page.items) == served
