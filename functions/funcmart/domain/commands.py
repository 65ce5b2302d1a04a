"""Commands: what a caller asks a use case to do, as plain data (imperative names).

A transport (an HTTP body, a queue message) is parsed into one of these; the service takes
it with the ports it works through and the principal asking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from funcmart.domain.catalog import ProductChanges, StockChange
from funcmart.domain.money import Money
from funcmart.domain.orders import RequestedLine


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


# ------------------------------------------------------------------------------ orders


@dataclass(frozen=True)
class PlaceOrder:
    """Order these lines, once per idempotency key."""

    idempotency_key: str | None
    lines: Sequence[RequestedLine]
    payment_token: str
    # The request as sent, to tell a retry from another request under the same key.
    request_body: dict[str, Any]
    correlation_id: str = ""


@dataclass(frozen=True)
class PlaceOrderFromCart:
    """Order what is in the caller's cart, once per idempotency key."""

    idempotency_key: str | None
    payment_token: str
    request_body: dict[str, Any]
    correlation_id: str = ""


@dataclass(frozen=True)
class CancelOrder:
    """Cancel an order: stock back, a captured charge refunded."""

    order_id: str


# -------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class ListOrdersByState:
    """Orders waiting in one state, the longest waiting first."""

    state: str
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class RetryOrder:
    """Send an order that needs attention back to the step that failed."""

    order_id: str
    reason: str
    correlation_id: str = ""


@dataclass(frozen=True)
class CancelStuckOrder:
    """Cancel an order that needs attention: stock back, the charge refunded if captured."""

    order_id: str
    reason: str


@dataclass(frozen=True)
class ResolveOrder:
    """Close an order that needs attention as fulfilled (handled outside the pipeline)."""

    order_id: str
    reason: str


@dataclass(frozen=True)
class SetCartItem:
    product_id: str
    quantity: int  # 0 removes the line
