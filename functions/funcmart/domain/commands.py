"""Commands: what a caller asks a use case to do, as plain data (imperative names).

A transport (an HTTP body, a queue message) is parsed into one of these; the service takes
it with the ports it works through and the principal asking.
"""

from __future__ import annotations

from dataclasses import dataclass

from funcmart.domain.catalog import ProductChanges, StockChange
from funcmart.domain.money import Money


@dataclass(frozen=True)
class CreateProduct:
    name: str
    description: str
    category: str
    price: Money
    stock: int


@dataclass(frozen=True)
class UpdateProduct:
    product_id: str
    expected_version: int
    changes: ProductChanges


@dataclass(frozen=True)
class ArchiveProduct:
    product_id: str


@dataclass(frozen=True)
class SetStock:
    product_id: str
    change: StockChange
