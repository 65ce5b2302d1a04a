"""The catalog: products, their prices, stock and lifecycle."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from funcmart.domain.errors import Conflict, InvalidRequest, NotFound
from funcmart.domain.money import Money

ACTIVE = "ACTIVE"
ARCHIVED = "ARCHIVED"
# A name holds something besides spaces, tabs and line breaks (the same rule in the OpenAPI
# document, in a character class every regex dialect reads alike).
NAME_PATTERN = r"[^ \t\n\r\f\v]"
CATEGORY_PATTERN = r"^[a-z0-9][a-z0-9-]{0,49}$"
_CATEGORY = re.compile(CATEGORY_PATTERN)
MAX_STOCK = 1_000_000_000
# Ids we issue are 32 hex digits; anything much longer cannot be a table key (2 KB at most).
MAX_PRODUCT_ID_LENGTH = 128


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    description: str
    category: str
    price: Money
    stock: int
    status: str = ACTIVE
    version: int = 1
    created_at: str = ""
    updated_at: str = ""

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "price": self.price.to_dict(),
            "stock": self.stock,
            "status": self.status,
            "version": self.version,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Product:
        return cls(
            id=d["id"],
            name=d["name"],
            description=d.get("description", ""),
            category=d["category"],
            price=Money(int(d["price"]["amount"]), d["price"]["currency"]),
            stock=int(d["stock"]),
            status=d.get("status", ACTIVE),
            version=int(d.get("version", 1)),
            created_at=d.get("createdAt", ""),
            updated_at=d.get("updatedAt", ""),
        )


def require_plausible_id(product_id: str) -> str:
    """NotFound for an id no product can have, before any store is asked about it."""
    if not 0 < len(product_id) <= MAX_PRODUCT_ID_LENGTH:
        raise NotFound(f"product {product_id[:MAX_PRODUCT_ID_LENGTH]}... does not exist")
    return product_id


def validate_category(category: str) -> str:
    if not _CATEGORY.match(category):
        raise InvalidRequest(
            "category must be 1-50 lowercase letters, digits or dashes", field="category"
        )
    return category


def new_product(
    product_id: str,
    name: str,
    description: str,
    category: str,
    price: Money,
    stock: int,
    now: str,
) -> Product:
    """A new, active product at version 1, after checking every rule."""
    _check_name(name)
    validate_category(category)
    _check_price(price)
    _check_stock(stock)
    return Product(
        id=product_id,
        name=name.strip(),
        description=description,
        category=category,
        price=price,
        stock=stock,
        created_at=now,
        updated_at=now,
    )


@dataclass(frozen=True)
class ProductChanges:
    """The fields an UpdateProduct may change; None leaves a field as it is."""

    name: str | None = None
    description: str | None = None
    category: str | None = None
    price: Money | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.name, self.description, self.category, self.price))


def apply_changes(product: Product, changes: ProductChanges, now: str) -> Product:
    """The product after `changes`, one version later. Archived products are read-only."""
    if not product.active:
        raise Conflict("an archived product cannot be changed")
    if changes.is_empty():
        raise InvalidRequest("nothing to change")
    if changes.name is not None:
        _check_name(changes.name)
    if changes.category is not None:
        validate_category(changes.category)
    if changes.price is not None:
        _check_price(changes.price)
    return replace(
        product,
        name=changes.name.strip() if changes.name is not None else product.name,
        description=changes.description if changes.description is not None else product.description,
        category=changes.category if changes.category is not None else product.category,
        price=changes.price if changes.price is not None else product.price,
        version=product.version + 1,
        updated_at=now,
    )


def archive(product: Product, now: str) -> Product:
    if not product.active:
        raise NotFound(f"product {product.id} does not exist")
    return replace(product, status=ARCHIVED, version=product.version + 1, updated_at=now)


@dataclass(frozen=True)
class StockChange:
    """Either an absolute level (`set_to`) or a relative adjustment (`adjust_by`)."""

    set_to: int | None = None
    adjust_by: int | None = None

    def __post_init__(self) -> None:
        if (self.set_to is None) == (self.adjust_by is None):
            raise InvalidRequest("give exactly one of 'set' or 'adjust'")
        if self.set_to is not None:
            _check_stock(self.set_to)
        if self.adjust_by is not None and abs(self.adjust_by) > MAX_STOCK:
            raise InvalidRequest(f"adjust must be within ±{MAX_STOCK}")


def _check_name(name: str) -> None:
    if not re.search(NAME_PATTERN, name) or len(name) > 200:
        raise InvalidRequest("name must be 1-200 characters", field="name")


def _check_price(price: Money) -> None:
    if price.amount < 0 or price.amount > 100_000_000_00:
        raise InvalidRequest("price must be between 0 and 10,000,000,000 minor units")


def _check_stock(stock: int) -> None:
    if stock < 0 or stock > MAX_STOCK:
        raise InvalidRequest(f"stock must be between 0 and {MAX_STOCK}", field="stock")
