"""Ports: what the services need from the outside world, as protocols.

Adapters implement them against one technology each (pynamodb, redis, sqs, the payment
simulator); `adapters.memory` implements them in memory for unit tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from funcmart.domain.catalog import Product, StockChange

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


class ProductRepository(Protocol):
    def get(self, product_id: str) -> Product | None: ...

    def add(self, product: Product) -> None:
        """Store a new product; Conflict if the id exists."""

    def save(self, product: Product, expected_version: int) -> None:
        """Write catalog fields (not stock) if the stored version is `expected_version`."""

    def change_stock(self, product_id: str, change: StockChange, now: str) -> Product:
        """Apply a stock change atomically, keeping stock within 0..MAX_STOCK.

        NotFound (missing or archived), OutOfStock (below zero) or InvalidRequest (above).
        """

    def list(self, category: str | None, limit: int, cursor: str | None) -> Page[Product]:
        """Active products by name, one page; the cursor is opaque to callers."""


class ProductCache(Protocol):
    def get(self, product_id: str) -> dict[str, Any] | None: ...

    def put(self, product_id: str, value: dict[str, Any]) -> None: ...

    def invalidate(self, *product_ids: str) -> None: ...


class Clock(Protocol):
    def now(self) -> str:
        """UTC ISO-8601 with milliseconds, e.g. 2026-11-26T18:00:00.000Z."""

    def epoch(self) -> float: ...


class IdGenerator(Protocol):
    def new_id(self) -> str: ...
