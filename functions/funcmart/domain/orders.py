"""Orders: lines priced from the catalog, a total, and a state machine.

    PENDING ──paid──> PAID ──fulfilled──> FULFILLED <──resolve──┐
       │  └─declined/abandoned─> FAILED      │                   │
       ├──cancelled──> CANCELLED <──(refund)─┘ (from PAID)       │
       │                   ^                                     │
       │                   └──cancel (stock back, refund)──┐     │
       └──dead-lettered──> NEEDS_ATTENTION <── PAID        │     │
                               ├───────────────────────────┘     │
                               ├──────────────────────────────────┘
                               └──retry──> PENDING, or PAID when the charge was captured

NEEDS_ATTENTION is a waiting room: an operator retries, cancels or resolves the order, and
each of those actions is recorded on it (who, when, why). Every transition is written
conditionally on the state it leaves, so a redelivered or duplicated message, or two
operators acting at once, can never apply one twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
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
    NEEDS_ATTENTION: frozenset({PENDING, PAID, CANCELLED, FULFILLED}),
}
# Leaving these states gives the reserved stock back.
RELEASES_STOCK = {
    (PENDING, FAILED),
    (PENDING, CANCELLED),
    (PAID, CANCELLED),
    (NEEDS_ATTENTION, CANCELLED),
}

# What an operator may do to an order that needs attention.
RETRY = "retry"
CANCEL = "cancel"
RESOLVE = "resolve"
OPERATOR_ACTIONS = (RETRY, CANCEL, RESOLVE)
MAX_REASON_LENGTH = 500
CAPTURED = "CAPTURED"
REFUNDED = "REFUNDED"
# Neither taken nor refused yet: the provider settles the payment later (Stripe's
# `processing`). The order stays PENDING and the payment is looked up again.
PROCESSING = "PROCESSING"
# A payment that never took money: cancelled while processing, or failed after it.
VOIDED = "VOIDED"

# What a customer reads as `failureReason`: one fixed sentence per state. The reason
# recorded on the order (an operator's note, a payment provider's message, where a dead
# letter came from) is for operators only (`to_operations_dict`).
PUBLIC_REASONS = {
    FAILED: "The payment for this order did not go through; anything charged is refunded.",
    CANCELLED: "This order was cancelled; anything charged for it is refunded.",
    NEEDS_ATTENTION: "This order is delayed; we are looking into it.",
}

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
class OperatorAction:
    """One thing an operator did to an order: who, when, what and why."""

    action: str
    actor: str
    at: str
    reason: str
    # The state the action moved the order to.
    to: str

    def to_dict(self) -> dict[str, str]:
        return {
            "action": self.action,
            "actor": self.actor,
            "at": self.at,
            "reason": self.reason,
            "to": self.to,
        }


def require_reason(reason: str) -> str:
    """An operator's reason, trimmed; InvalidRequest when empty or too long."""
    text = reason.strip()
    if not text or len(text) > MAX_REASON_LENGTH or not text.isprintable():
        raise InvalidRequest(
            f"a reason of 1-{MAX_REASON_LENGTH} printable characters is required", field="reason"
        )
    return text


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
    # The state the order was in when it was flagged NEEDS_ATTENTION (the step that failed).
    flagged_from: str | None = None
    actions: tuple[OperatorAction, ...] = ()
    # The W3C traceparent of the request that placed it, where tracing is on: a re-published
    # event continues the order's trace. Opaque text to the domain.
    trace_context: str = ""

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
        public = PUBLIC_REASONS.get(self.status)
        if public:
            out["failureReason"] = public
        return out

    def to_operations_dict(self) -> dict[str, Any]:
        """What operators see: the order, why it stopped in their words or the provider's,
        the step that failed and what was done about it."""
        out = self.to_dict()
        out.pop("failureReason", None)
        if self.failure_reason:
            out["failureReason"] = self.failure_reason
        if self.flagged_from:
            out["flaggedFrom"] = self.flagged_from
        out["operatorActions"] = [a.to_dict() for a in self.actions]
        return out

    def transition(self, to: str, now: str, reason: str | None = None) -> Order:
        """This order in state `to`; Conflict if the state machine does not allow it."""
        if to not in TRANSITIONS[self.status]:
            raise Conflict(f"order {self.id} is {self.status}; it cannot become {to}")
        flagged_from = self.status if to == NEEDS_ATTENTION else self.flagged_from
        return replace(
            self, status=to, updated_at=now, failure_reason=reason, flagged_from=flagged_from
        )

    def seconds_in_state(self, now_epoch: float) -> float | None:
        """How long the order has been in its state at `now_epoch`: `updated_at` is written by
        every transition and by nothing else. None when it cannot be read."""
        try:
            since = datetime.fromisoformat(self.updated_at.replace("Z", "+00:00"))
        except ValueError:
            return None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return now_epoch - since.timestamp()

    def operate(self, action: str, to: str, actor: str, now: str, reason: str) -> Order:
        """An operator's way out of NEEDS_ATTENTION, recorded on the order.

        Conflict unless the order needs attention: an operator acts on a waiting order only,
        never on one the pipeline is still moving (or has finished).
        """
        if self.status != NEEDS_ATTENTION:
            raise Conflict(
                f"order {self.id} is {self.status}; only an order that needs attention "
                f"can be given an operator's {action}"
            )
        moved = self.transition(to, now, reason=None if to in OPEN_STATES else reason)
        done = OperatorAction(action, actor, now, require_reason(reason), to)
        return replace(moved, actions=(*self.actions, done))

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
    status: str = CAPTURED  # or REFUNDED, PROCESSING, VOIDED

    @property
    def captured(self) -> bool:
        return self.status == CAPTURED

    @property
    def processing(self) -> bool:
        return self.status == PROCESSING


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
    # Set only on a re-published event: the order's own trace, to continue (Order.trace_context).
    trace_context: str = field(default="", compare=False)
    type: str = field(default="OrderPlaced", init=False)


@dataclass(frozen=True)
class OrderPaid:
    order_id: str
    correlation_id: str
    trace_context: str = field(default="", compare=False)
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


class PaymentMisconfigured(Exception):
    """The payment provider refused us, not the card: a wrong key, missing permissions, a
    request it cannot accept. Retrying cannot help; a person must fix the configuration."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# The payment simulator's tokens (adapters/payments.py): each forces an outcome. Accepted
# only where the deployment runs the simulator.
SIMULATOR_PROVIDER = "simulator"
SIMULATOR_TOKEN_PREFIXES = ("tok_ok", "tok_decline", "tok_transient", "tok_flaky", "tok_slow")


def require_token_for(provider: str, token: str) -> str:
    """InvalidRequest for a simulator token sent to a deployment that takes real payments."""
    if provider != SIMULATOR_PROVIDER and token.startswith(SIMULATOR_TOKEN_PREFIXES):
        raise InvalidRequest(
            "this payment token only works with the payment simulator, which this "
            "deployment does not use",
            field="paymentToken",
        )
    return token
