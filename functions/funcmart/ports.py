"""Ports: what the services need from the outside world, as protocols.

Adapters implement them against one technology each (pynamodb, redis, sqs, the payment
simulator); `tests.fakes` implements them in memory for unit tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from funcmart.domain.cart import Cart
from funcmart.domain.catalog import Product, StockChange
from funcmart.domain.money import Money
from funcmart.domain.orders import (
    Charge,
    Event,
    IdempotencyRecord,
    Notification,
    Order,
    Shipment,
)
from funcmart.domain.ratelimit import RateDecision, RatePolicy

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


class ProductRepository(Protocol):
    def get(self, product_id: str) -> Product | None: ...

    def add(self, product: Product) -> None:
        """Store a new product; Conflict if the id exists."""

    def save(self, product: Product, expected_version: int) -> Product:
        """Write catalog fields (not stock) if the stored version is `expected_version`;
        returns the product as stored (with its current stock)."""

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


# ------------------------------------------------------------------------------ orders


class CatalogPorts(Protocol):
    """What the catalog's write use cases work through (the composition root has them)."""

    @property
    def products(self) -> ProductRepository: ...

    @property
    def cache(self) -> ProductCache: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def ids(self) -> IdGenerator: ...


class CartPorts(Protocol):
    """What the cart's use cases work through (the composition root has them)."""

    @property
    def carts(self) -> CartStore: ...

    @property
    def products(self) -> ProductRepository: ...

    @property
    def cache(self) -> ProductCache: ...


class OrderRepository(Protocol):
    def get(self, order_id: str) -> Order | None: ...

    def get_many_products(
        self, product_ids: Sequence[str], *, consistent: bool = True
    ) -> dict[str, Product]:
        """Products by id; missing ids are absent. `consistent=False` may answer a slightly
        older copy (at half the cost): fine where a conditional write checks it anyway."""

    def place(
        self, order: Order, product_versions: dict[str, int], record: IdempotencyRecord
    ) -> IdempotencyRecord:
        """In one transaction: reserve stock for every line (conditional on stock, status and
        the version the prices were read at), store the order and the idempotency record.

        Returns the stored record: `record`, or the one an earlier request under the same key
        stored. Raises OutOfStock naming the short lines, or VersionConflict when a product
        changed since it was read (the caller re-reads and tries again).
        """

    def get_idempotency(self, customer: str, key: str) -> IdempotencyRecord | None: ...

    def transition(
        self,
        current: Order,
        new: Order,
        *,
        release_stock: bool = False,
        charge: Charge | None = None,
        shipment: Shipment | None = None,
        notification: Notification | None = None,
    ) -> bool:
        """Write `new` if the stored order is still in `current.status`, with the stock
        release and records given, all or nothing. False if the state had moved."""

    def get_charge(self, order_id: str) -> Charge | None:
        """The payment recorded on the order (captured or refunded), if any."""

    def mark_refunded(self, order_id: str, now: str) -> None: ...

    def record_charge(self, order_id: str, charge: Charge, now: str) -> None:
        """Write the order's payment record as the ledger has it (captured or refunded),
        whatever state the order is in: the order then agrees with the ledger."""

    def list_by_state(self, state: str, limit: int, cursor: str | None) -> Page[Order]:
        """Orders in a waiting state (NEEDS_ATTENTION, PENDING or PAID), oldest change first:
        a key query on an index, never a scan."""

    def list_for_customer(self, customer: str, limit: int, cursor: str | None) -> Page[Order]: ...

    def open_orders(self, updated_before: str, limit: int) -> list[Order]:
        """PENDING and PAID orders last changed before `updated_before`, oldest first."""

    def record_republish(self, order: Order, now: str) -> int | None:
        """Count one more republish of an open order: the new count, or None if the order
        left its state meanwhile."""


class PaymentGateway(Protocol):
    def charge(self, idempotency_key: str, amount: Money, token: str) -> Charge:
        """Capture `amount`; the same key always yields the same charge, never a second one.
        Raises PaymentDeclined (final) or TransientFailure (retry later)."""

    def lookup(self, idempotency_key: str) -> Charge | None: ...

    def refund(self, charge: Charge) -> Charge:
        """Refund a captured charge, once, however often called; the charge as refunded.
        Raises TransientFailure (retry later) or PaymentMisconfigured."""


@dataclass(frozen=True)
class Redrive:
    """One dead-letter queue sent back to its source: the move task started (SQS), or the
    messages moved one by one (where the endpoint has no move task)."""

    dead_letter_queue: str
    source_queue: str
    task: str | None = None
    moved: int | None = None


class DeadLetterRedrive(Protocol):
    def redrive(self) -> list[Redrive]:
        """Move every message of each dead-letter queue back to its source queue, once."""


class QueueBacklog(Protocol):
    def waiting(self, event_type: str) -> int | None:
        """Messages of this event type waiting, delayed or in flight in its queue; None when
        the transport cannot say (a broker)."""


class Publisher(Protocol):
    def publish(self, event: Event) -> None:
        """Deliver an event to its queue or broker; DependencyUnavailable on failure."""


class Metrics(Protocol):
    def incr(self, name: str, value: float = 1) -> None: ...

    def observe_ms(self, name: str, milliseconds: float) -> None: ...

    def flush(self) -> None:
        """Send what was recorded during this invocation, where the backend needs it."""


# -------------------------------------------------------------------------- carts


class CartStore(Protocol):
    """Carts by customer. Every write renews the cart's time to live."""

    def get(self, customer: str) -> Cart: ...

    def set_quantity(self, customer: str, product_id: str, quantity: int, max_lines: int) -> bool:
        """Set one line (0 removes it). False, and nothing written, when the cart already
        holds `max_lines` other products."""

    def remove(self, customer: str, product_id: str) -> None: ...

    def clear(self, customer: str) -> None: ...

    def remove_ordered(self, customer: str, ordered: dict[str, int]) -> None:
        """Remove the lines that still hold exactly the ordered quantity, so a line changed
        while the order was being placed stays in the cart."""


# ---------------------------------------------------------------------- rate limits


class RateLimiter(Protocol):
    def hit(
        self, key: str, policy: RatePolicy, cached_products: Sequence[str] = ()
    ) -> RateDecision:
        """Count one request against `key` atomically; DependencyUnavailable when the store
        cannot be reached (the HTTP platform then lets the request through).

        `cached_products` names the products whose cache entries the request is about to read:
        a limiter that shares its store with the product cache reads them in the same round
        trip, and the cache answers from that read for the rest of the request."""


class AsyncRateLimiter(Protocol):
    async def hit(
        self, key: str, policy: RatePolicy, cached_products: Sequence[str] = ()
    ) -> RateDecision:
        """RateLimiter.hit for an event loop: the same count, the same read-ahead."""


# ------------------------------------------------------------------------- health


class HealthProbe(Protocol):
    def __call__(self) -> bool:
        """True when the dependency answers, within a short timeout."""
