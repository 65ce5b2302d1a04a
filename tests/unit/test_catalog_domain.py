"""Catalog rules: what a valid product is and how it may change. No I/O."""

from __future__ import annotations

import pytest

from funcmart.domain.catalog import (
    ACTIVE,
    ARCHIVED,
    MAX_STOCK,
    Product,
    ProductChanges,
    StockChange,
    apply_changes,
    archive,
    require_plausible_id,
)
from funcmart.domain.errors import Conflict, InvalidRequest, NotFound
from funcmart.domain.money import Money
from tests.support.factories import NOW, a_product, eur

LATER = "2026-11-26T19:00:00.000Z"
MAX_PRICE = 10_000_000_000


class TestNewProduct:
    def test_a_new_product_is_active_at_version_one(self) -> None:
        # GIVEN valid fields WHEN the product is made
        product = a_product(name="  Kettle  ", stock=3)
        # THEN it is active, at version 1, stamped with the time, its name trimmed
        assert product.status == ACTIVE
        assert product.active
        assert product.version == 1
        assert product.created_at == product.updated_at == NOW
        assert product.name == "Kettle"
        assert product.stock == 3

    @pytest.mark.parametrize("name", ["", "   ", "x" * 201])
    def test_a_name_must_be_1_to_200_characters(self, name: str) -> None:
        with pytest.raises(InvalidRequest) as err:
            a_product(name=name)
        assert err.value.extra["field"] == "name"

    def test_a_name_of_200_characters_is_fine(self) -> None:
        assert a_product(name="x" * 200).name == "x" * 200

    @pytest.mark.parametrize("category", ["books", "a", "home-garden", "4k-tv", "x" * 50])
    def test_valid_categories(self, category: str) -> None:
        assert a_product(category=category).category == category

    @pytest.mark.parametrize(
        "category", ["", "Books", "-books", "books!", "home garden", "bücher", "x" * 51]
    )
    def test_a_category_is_lowercase_letters_digits_and_dashes(self, category: str) -> None:
        with pytest.raises(InvalidRequest) as err:
            a_product(category=category)
        assert err.value.extra["field"] == "category"

    @pytest.mark.parametrize("amount", [0, 1, MAX_PRICE])
    def test_prices_from_zero_to_the_maximum(self, amount: int) -> None:
        assert a_product(price=eur(amount)).price.amount == amount

    @pytest.mark.parametrize("amount", [-1, MAX_PRICE + 1])
    def test_prices_outside_the_range_are_refused(self, amount: int) -> None:
        with pytest.raises(InvalidRequest):
            a_product(price=eur(amount))

    @pytest.mark.parametrize(
        ("amount", "currency"), [(1.5, "EUR"), (True, "EUR"), (100, "eur"), (100, "EURO")]
    )
    def test_money_is_integer_minor_units_and_an_iso_code(
        self, amount: object, currency: str
    ) -> None:
        with pytest.raises(InvalidRequest):
            Money(amount, currency)  # type: ignore[arg-type]

    @pytest.mark.parametrize("stock", [-1, MAX_STOCK + 1])
    def test_stock_outside_the_range_is_refused(self, stock: int) -> None:
        with pytest.raises(InvalidRequest) as err:
            a_product(stock=stock)
        assert err.value.extra["field"] == "stock"

    def test_the_dict_form_round_trips(self) -> None:
        product = a_product()
        assert Product.from_dict(product.to_dict()) == product


class TestChanges:
    def test_changes_apply_and_bump_the_version(self) -> None:
        # GIVEN a product at version 1
        product = a_product(name="Kettle", description="old")
        # WHEN its price and name change
        changed = apply_changes(product, ProductChanges(name=" Kettle 2 ", price=eur(1999)), LATER)
        # THEN those fields change, the rest stays, and the version moves on
        assert changed.name == "Kettle 2"
        assert changed.price == eur(1999)
        assert changed.description == "old"
        assert changed.category == product.category
        assert changed.stock == product.stock
        assert changed.version == 2
        assert (changed.created_at, changed.updated_at) == (NOW, LATER)

    def test_nothing_to_change_is_refused(self) -> None:
        with pytest.raises(InvalidRequest):
            apply_changes(a_product(), ProductChanges(), LATER)

    @pytest.mark.parametrize(
        "changes",
        [
            ProductChanges(name=" "),
            ProductChanges(category="Not Valid"),
            ProductChanges(price=eur(-5)),
        ],
    )
    def test_changes_follow_the_same_rules_as_new_products(self, changes: ProductChanges) -> None:
        with pytest.raises(InvalidRequest):
            apply_changes(a_product(), changes, LATER)

    def test_an_archived_product_cannot_change(self) -> None:
        archived = archive(a_product(), LATER)
        with pytest.raises(Conflict):
            apply_changes(archived, ProductChanges(name="New"), LATER)


class TestArchive:
    def test_archiving_marks_the_product_and_bumps_the_version(self) -> None:
        archived = archive(a_product(), LATER)
        assert archived.status == ARCHIVED
        assert not archived.active
        assert archived.version == 2
        assert archived.updated_at == LATER

    def test_an_archived_product_is_gone(self) -> None:
        archived = archive(a_product(), LATER)
        with pytest.raises(NotFound):
            archive(archived, LATER)


class TestStockChange:
    @pytest.mark.parametrize("kwargs", [{}, {"set_to": 1, "adjust_by": 1}])
    def test_exactly_one_of_set_or_adjust(self, kwargs: dict[str, int]) -> None:
        with pytest.raises(InvalidRequest):
            StockChange(**kwargs)

    @pytest.mark.parametrize("level", [-1, MAX_STOCK + 1])
    def test_an_absolute_level_is_a_valid_stock(self, level: int) -> None:
        with pytest.raises(InvalidRequest):
            StockChange(set_to=level)

    @pytest.mark.parametrize("delta", [-MAX_STOCK - 1, MAX_STOCK + 1])
    def test_an_adjustment_is_bounded(self, delta: int) -> None:
        with pytest.raises(InvalidRequest):
            StockChange(adjust_by=delta)

    @pytest.mark.parametrize("delta", [-MAX_STOCK, -1, 0, 1, MAX_STOCK])
    def test_adjustments_within_the_bounds(self, delta: int) -> None:
        assert StockChange(adjust_by=delta).adjust_by == delta


class TestProductIds:
    @pytest.mark.parametrize("product_id", ["a", "3f8e2b7c9a1d4e5fb6c7d8e9f0a1b2c3", "x" * 128])
    def test_ids_we_could_have_issued_pass(self, product_id: str) -> None:
        assert require_plausible_id(product_id) == product_id

    @pytest.mark.parametrize("product_id", ["", "x" * 129, "x" * 3000])
    def test_other_ids_name_no_product(self, product_id: str) -> None:
        with pytest.raises(NotFound):
            require_plausible_id(product_id)
