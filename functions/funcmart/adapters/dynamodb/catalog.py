"""ProductRepository over the single table."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from funcmart.adapters.dynamodb.errors import is_conditional_failure, translate_errors
from funcmart.adapters.dynamodb.table import ProductItem, Tables, decode_cursor, encode_cursor
from funcmart.domain.catalog import ACTIVE, MAX_STOCK, Product, StockChange
from funcmart.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    OutOfStock,
    VersionConflict,
)
from funcmart.domain.money import Money
from funcmart.ports import Page

CATALOG = "CATALOG"


def product_key(product_id: str) -> tuple[str, str]:
    return f"PRODUCT#{product_id}", "PRODUCT"


def _sort_key(p: Product) -> str:
    return f"{p.name.casefold()[:200]}#{p.id}"


def _above_maximum(stock: int, change: StockChange) -> InvalidRequest:
    return InvalidRequest(
        f"stock is {stock}; adjusting by {change.adjust_by} would exceed {MAX_STOCK}",
        field="adjust",
    )


def to_product(item: ProductItem) -> Product:
    return Product(
        id=item.pk.removeprefix("PRODUCT#"),
        name=item.name,
        description=item.description,
        category=item.category,
        price=Money(int(item.price_amount), item.currency),
        stock=int(item.stock),
        status=item.status,
        version=int(item.version),
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


class DynamoProductRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def _item(self, p: Product) -> ProductItem:
        pk, sk = product_key(p.id)
        item: ProductItem = self._t.Product(
            pk,
            sk,
            name=p.name,
            description=p.description,
            category=p.category,
            price_amount=p.price.amount,
            currency=p.price.currency,
            stock=p.stock,
            status=p.status,
            version=p.version,
            created_at=p.created_at,
            updated_at=p.updated_at,
        )
        if p.status == ACTIVE:
            item.gsi1pk, item.gsi1sk = f"CATEGORY#{p.category}", _sort_key(p)
            item.gsi2pk, item.gsi2sk = CATALOG, _sort_key(p)
        return item

    @translate_errors
    def get(self, product_id: str) -> Product | None:
        try:
            return to_product(self._t.Product.get(*product_key(product_id), consistent_read=True))
        except DoesNotExist:
            return None

    @translate_errors
    def add(self, product: Product) -> None:
        model = self._t.Product
        try:
            self._item(product).save(condition=model.pk.does_not_exist())
        except PutError as exc:
            if is_conditional_failure(exc):
                raise Conflict(f"product {product.id} exists already") from exc
            raise

    @translate_errors
    def save(self, product: Product, expected_version: int) -> Product:
        model = self._t.Product
        item = self._item(product)
        actions: list[Any] = [
            model.name.set(product.name),
            model.description.set(product.description),
            model.category.set(product.category),
            model.price_amount.set(product.price.amount),
            model.currency.set(product.price.currency),
            model.status.set(product.status),
            model.version.set(product.version),
            model.updated_at.set(product.updated_at),
        ]
        for attr in ("gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"):
            value = getattr(item, attr)
            field = getattr(model, attr)
            actions.append(field.set(value) if value is not None else field.remove())
        try:
            item.update(
                actions=actions,
                condition=model.pk.exists() & (model.version == expected_version),
                add_version_condition=False,
            )
        except UpdateError as exc:
            if is_conditional_failure(exc):
                raise VersionConflict(
                    f"product {product.id} changed since version {expected_version}"
                ) from exc
            raise
        return to_product(item)  # as stored, with the stock of this moment

    @translate_errors
    def change_stock(self, product_id: str, change: StockChange, now: str) -> Product:
        model = self._t.Product
        item = model(*product_key(product_id))
        condition = model.pk.exists() & (model.status == ACTIVE)
        if change.set_to is not None:
            action = model.stock.set(change.set_to)
        else:
            delta = change.adjust_by or 0
            action = model.stock.set(model.stock + delta)
            if delta < 0:
                condition &= model.stock >= -delta
            elif delta > 0:
                condition &= model.stock <= MAX_STOCK - delta
        try:
            item.update(
                actions=[action, model.updated_at.set(now)],
                condition=condition,
                add_version_condition=False,
            )
        except UpdateError as exc:
            if not is_conditional_failure(exc):
                raise
            current = self.get(product_id)
            if current is None or not current.active:
                raise NotFound(f"product {product_id} does not exist") from exc
            if (change.adjust_by or 0) > 0:
                raise _above_maximum(current.stock, change) from exc
            raise OutOfStock(
                f"product {product_id} has {current.stock} in stock; cannot adjust by "
                f"{change.adjust_by}",
                available=current.stock,
            ) from exc
        return to_product(item)

    @translate_errors
    def list(self, category: str | None, limit: int, cursor: str | None) -> Page[Product]:
        model = self._t.Product
        if category is not None:
            index, hash_key = "gsi1", f"CATEGORY#{category}"
            keys = {"pk", "sk", "gsi1pk", "gsi1sk"}
        else:
            index, hash_key = "gsi2", CATALOG
            keys = {"pk", "sk", "gsi2pk", "gsi2sk"}
        start = decode_cursor(cursor, keys)
        if start is not None and start[f"{index}pk"]["S"] != hash_key:
            raise InvalidRequest("cursor belongs to another listing", field="cursor")
        # One item more than asked tells whether another page exists, so the last page
        # never hands out a cursor to an empty one.
        found = list(
            model.query(hash_key, index_name=index, limit=limit + 1, last_evaluated_key=start)
        )
        page, more = found[:limit], len(found) > limit
        last = page[-1] if more else None
        next_key = {k: {"S": getattr(last, k)} for k in keys} if last is not None else None
        return Page(items=[to_product(i) for i in page], next_cursor=encode_cursor(next_key))
