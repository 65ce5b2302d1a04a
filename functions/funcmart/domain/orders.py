"""Orders: lines priced from the catalog, a total, and a state machine.

    PENDING ──paid──> PAID ──fulfilled──> FULFILLED
       │  └─declined/abandoned─> FAILED      │
       ├──cancelled──> CANCELLED <──(refund)─┘ (from PAID only)
       └──dead-lettered──> NEEDS_ATTENTION <── PAID

Every transition is written conditionally on the state it leaves, so a redelivered or
duplicated message can never apply it twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from funcmart.domain.catalog import Product
from funcmart.domain.errors import Conflict, InvalidRequest, NotFound
from funcmart.domain.money import Money

PENDING = "PENDING"
PAID = "PAID"
FULFILLED = "FULFILLED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
NEEDS_ATTENTION = "NEEDS_ATTENTION"
STATES = (PENDING, PAID, FULFILLED, FAILED, CANCELLED, NEEDS_ATTENTION)
OPEN_STATES = frozenset({PENDING, PAID})

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({PAID, FAILED, CANCELLED, NEEDS_ATTENTION}),
    PAID: frozenset({FULFILLED, CANCELLED, NEEDS_ATTENTION}),
    FULFILLED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
    NEEDS_ATTENTION: frozenset(),
}
# Leaving these states gives the reserved stock back.
RELEASES_STOCK = {(PENDING, FAILED), (PENDING, CANCELLED), (PAID, CANCELLED)}

MAX_LINES = 50
MAX_QUANTITY = 1000
# Ids we issue are 32 hex digits; anything much longer cannot be a table key (2 KB at most).
MAX_ORDER_ID_LENGTH = 128


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    name: str
    unit_price: Money
    quantity: int

    @property
    def subtotal(self) -> Money:
        return self.unit_price.times(self.quantity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "productId": self.product_id,
            "name": self.name,
            "unitPrice": self.unit_price.to_dict(),
            "quantity": self.quantity,
            "subtotal": self.subtotal.to_dict(),
        }


@dataclass(frozen=True)
class Order:
    id: str
    customer: str
    lines: tuple[OrderLine, ...]
    total: Money
    status: str
    payment_token: str
    created_at: str
    updated_at: str
    correlation_id: str = ""
    failure_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "customer": self.customer,
            "status": self.status,
            "lines": [line.to_dict() for line in self.lines],
            "total": self.total.to_dict(),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if self.failure_reason:
            out["failureReason"] = self.failure_reason
        return out

    def transition(self, to: str, now: str, reason: str | None = None) -> Order:
        """This order in state `to`; Conflict if the state machine does not allow it."""
        if to not in TRANSITIONS[self.status]:
            raise Conflict(f"order {self.id} is {self.status}; it cannot become {to}")
        return replace(self, status=to, updated_at=now, failure_reason=reason)

    def releases_stock_to(self, to: str) -> bool:
        return (self.status, to) in RELEASES_STOCK


def require_plausible_id(order_id: str) -> str:
    """NotFound for an id no order can have, before any store is asked about it."""
    if not 0 < len(order_id) <= MAX_ORDER_ID_LENGTH:
        raise NotFound(f"order {order_id[:MAX_ORDER_ID_LENGTH]}... does not exist")
    return order_id


@dataclass(frozen=True)
class RequestedLine:
    product_id: str
    quantity: int


def merge_lines(lines: list[RequestedLine]) -> list[RequestedLine]:
    """One line per product (a transaction may touch an item once), quantities summed."""
    if not lines:
        raise InvalidRequest("an order needs at least one line", field="lines")
    merged: dict[str, int] = {}
    for line in lines:
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise InvalidRequest(f"quantity must be 1-{MAX_QUANTITY}", field="quantity")
        merged[line.product_id] = merged.get(line.product_id, 0) + line.quantity
    if len(merged) > MAX_LINES:
        raise InvalidRequest(f"an order has at most {MAX_LINES} distinct products")
    if any(q > MAX_QUANTITY for q in merged.values()):
        raise InvalidRequest(f"quantity must be 1-{MAX_QUANTITY} per product", field="quantity")
    return [RequestedLine(p, q) for p, q in merged.items()]


def price_lines(
    requested: list[RequestedLine], products: dict[str, Product]
) -> tuple[tuple[OrderLine, ...], Money]:
    """Order lines with prices copied from the catalog, and their total."""
    lines = []
    for r in requested:
        p = products[r.product_id]
        lines.append(OrderLine(p.id, p.name, p.price, r.quantity))
    currencies = {line.unit_price.currency for line in lines}
    if len(currencies) != 1:
        raise InvalidRequest("all products of one order must share a currency")
    total = Money(0, lines[0].unit_price.currency)
    for line in lines:
        total = total + line.subtotal
    return tuple(lines), total


def fingerprint(customer: str, body: dict[str, Any]) -> str:
    """A stable hash of a request, to tell a retry from a different request under one key."""
    canonical = json.dumps({"customer": customer, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class IdempotencyRecord:
    customer: str
    key: str
    fingerprint: str
    status_code: int
    response: dict[str, Any]
    expires_at: int


@dataclass(frozen=True)
class Charge:
    id: str
    order_id: str
    amount: Money
    status: str = "CAPTURED"  # or REFUNDED


@dataclass(frozen=True)
class Shipment:
    order_id: str
    carrier: str
    tracking_number: str
    created_at: str


@dataclass(frozen=True)
class Notification:
    order_id: str
    customer: str
    kind: str
    message: str
    created_at: str


# ------------------------------------------------------------------------- events


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    correlation_id: str
    type: str = field(default="OrderPlaced", init=False)


@dataclass(frozen=True)
class OrderPaid:
    order_id: str
    correlation_id: str
    type: str = field(default="OrderPaid", init=False)


Event = OrderPlaced | OrderPaid


def event_to_dict(event: Event) -> dict[str, str]:
    return {"type": event.type, "orderId": event.order_id, "correlationId": event.correlation_id}


def event_from_dict(data: Any) -> Event:
    """Parse a message body; InvalidRequest for anything that is not one of our events."""
    if not isinstance(data, dict) or not isinstance(data.get("orderId"), str):
        raise InvalidRequest("message is not an order event")
    cid = data.get("correlationId") if isinstance(data.get("correlationId"), str) else ""
    kind = data.get("type")
    if kind == "OrderPlaced":
        return OrderPlaced(data["orderId"], str(cid))
    if kind == "OrderPaid":
        return OrderPaid(data["orderId"], str(cid))
    raise InvalidRequest(f"unknown event type {kind!r}")


class PaymentDeclined(Exception):
    """The payment gateway refused the charge for good (not worth retrying)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
