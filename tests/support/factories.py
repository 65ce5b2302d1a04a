"""Random ids and small builders, so tests that share a table or a Redis never collide."""

from __future__ import annotations

import uuid
from typing import Any

from funcmart.domain.catalog import Product, new_product
from funcmart.domain.identity import Principal
from funcmart.domain.money import Money

NOW = "2026-11-26T18:00:00.000Z"
ADMIN = Principal(subject="admin-1", groups=frozenset({"admin"}))
CUSTOMER = Principal(subject="customer-1")


def random_suffix() -> str:
    return uuid.uuid4().hex[:8]


def random_product_id(name: str = "") -> str:
    return f"p-{name}-{random_suffix()}" if name else f"p-{random_suffix()}"


def random_category(name: str = "cat") -> str:
    return f"{name}-{random_suffix()}"


def eur(amount: int) -> Money:
    return Money(amount, "EUR")


def a_product(**fields: Any) -> Product:
    """A valid, active product at version 1; any field can be given."""
    values: dict[str, Any] = {
        "product_id": random_product_id(),
        "name": "Kettle",
        "description": "Boils water.",
        "category": random_category(),
        "price": eur(2999),
        "stock": 10,
        "now": NOW,
    }
    values.update(fields)
    return new_product(**values)
