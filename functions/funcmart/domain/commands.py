"""Commands: what a caller asks the order use cases to do, one dataclass per use case.

A handler parses its event into one of these and hands it to one service function; the
service answers in domain terms and the handler chooses the status code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from funcmart.domain.identity import Principal
from funcmart.domain.orders import RequestedLine


@dataclass(frozen=True)
class RetryOrder:
    """Send an order that needs attention back to the step that failed."""

    order_id: str
    operator: Principal
    reason: str
    correlation_id: str = ""


@dataclass(frozen=True)
class CancelStuckOrder:
    """Cancel an order that needs attention: stock back, the charge refunded if captured."""

    order_id: str
    operator: Principal
    reason: str


@dataclass(frozen=True)
class ResolveOrder:
    """Close an order that needs attention as fulfilled (handled outside the pipeline)."""

    order_id: str
    operator: Principal
    reason: str


@dataclass(frozen=True)
class ListOrdersByState:
    """Orders in one state, oldest change first (the longest waiting at the top)."""

    operator: Principal
    state: str
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class PlaceOrder:
    """Order these lines, once per idempotency key."""

    customer: Principal
    idempotency_key: str | None
    lines: Sequence[RequestedLine]
    payment_token: str
    # The request as sent, to tell a retry from another request under the same key.
    request_body: dict[str, Any]
    correlation_id: str = ""


@dataclass(frozen=True)
class PlaceOrderFromCart:
    """Order what is in the customer's cart, once per idempotency key."""

    customer: Principal
    idempotency_key: str | None
    payment_token: str
    request_body: dict[str, Any]
    correlation_id: str = ""


@dataclass(frozen=True)
class CancelOrder:
    """The customer (or an admin) cancels an order: stock back, a captured charge refunded."""

    customer: Principal
    order_id: str
