"""In-memory implementations of every port, for unit tests and contract tests."""

from __future__ import annotations

import bisect
import copy
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from funcmart.adapters import cursors
from funcmart.domain.cart import Cart
from funcmart.domain.catalog import MAX_STOCK, Product, StockChange
from funcmart.domain.errors import (
    Conflict,
    DependencyUnavailable,
    InvalidRequest,
    NotFound,
    OutOfStock,
    TransientFailure,
    VersionConflict,
)
from funcmart.domain.money import Money
from funcmart.domain.orders import (
    Charge,
    Event,
    IdempotencyRecord,
    Notification,
    Order,
    PaymentDeclined,
    Shipment,
)
from funcmart.domain.ratelimit import RateDecision, RatePolicy, gcra
from funcmart.ports import Page


class FakeProductRepository:
    def __init__(self) -> None:
        self._items: dict[str, Product] = {}
        self._lock = threading.Lock()

    def get(self, product_id: str) -> Product | None:
        return self._items.get(product_id)

    def add(self, product: Product) -> None:
        with self._lock:
            if product.id in self._items:
                raise Conflict(f"product {product.id} exists already")
            self._items[product.id] = product

    def save(self, product: Product, expected_version: int) -> Product:
        with self._lock:
            current = self._items.get(product.id)
            if current is None or current.version != expected_version:
                raise VersionConflict(
                    f"product {product.id} changed since version {expected_version}"
                )
            stored = replace(product, stock=current.stock)
            self._items[product.id] = stored
            return stored

    def change_stock(self, product_id: str, change: StockChange, now: str) -> Product:
        with self._lock:
            current = self._items.get(product_id)
            if current is None or not current.active:
                raise NotFound(f"product {product_id} does not exist")
            if change.set_to is not None:
                stock = change.set_to
            else:
                stock = current.stock + (change.adjust_by or 0)
                if stock > MAX_STOCK:
                    raise InvalidRequest(
                        f"stock is {current.stock}; adjusting by {change.adjust_by} would "
                        f"exceed {MAX_STOCK}",
                        field="adjust",
                    )
                if stock < 0:
                    raise OutOfStock(
                        f"product {product_id} has {current.stock} in stock; cannot adjust by "
                        f"{change.adjust_by}",
                        available=current.stock,
                    )
            updated = replace(current, stock=stock, updated_at=now)
            self._items[product_id] = updated
            return updated

    def list(self, category: str | None, limit: int, cursor: str | None) -> Page[Product]:
        # Ordered and paged like the DynamoDB adapter: by "<casefolded name>#<id>", resuming
        # after the cursor's key, and refusing cursors of another listing.
        listing = f"CATEGORY#{category}" if category is not None else "CATALOG"
        active = sorted(
            (
                (_sort_key(p), p)
                for p in self._items.values()
                if p.active and (category is None or p.category == category)
            ),
            key=lambda kp: kp[0],
        )
        after = _decode_cursor(cursor, listing)
        start = bisect.bisect_right([k for k, _ in active], after) if after is not None else 0
        page = [p for _, p in active[start : start + limit]]
        more = start + limit < len(active)
        next_cursor = _encode_cursor(listing, _sort_key(page[-1])) if more and page else None
        return Page(items=page, next_cursor=next_cursor)


def _sort_key(p: Product) -> str:
    return f"{p.name.casefold()[:200]}#{p.id}"


def _encode_cursor(listing: str, after: str) -> str:
    return cursors.encode({"listing": listing, "after": after})


def _decode_cursor(cursor: str | None, listing: str) -> str | None:
    if not cursor:
        return None
    plain = cursors.decode(cursor, {"listing", "after"})
    if plain["listing"] != listing:
        raise InvalidRequest("cursor belongs to another listing", field="cursor")
    return plain["after"]


class FakeCache:
    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}
        self.available = True

    def get(self, product_id: str) -> dict[str, Any] | None:
        if not self.available:
            return None
        value = self.values.get(product_id)
        return copy.deepcopy(value) if value is not None else None

    def put(self, product_id: str, value: dict[str, Any]) -> None:
        """Fills an empty entry only, as the Redis cache does (a fill never overwrites)."""
        if self.available and product_id not in self.values:
            self.values[product_id] = copy.deepcopy(value)

    def invalidate(self, *product_ids: str) -> None:
        for p in product_ids:
            self.values.pop(p, None)


class FakeClock:
    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.t = start

    def now(self) -> str:
        from datetime import UTC, datetime

        return (
            datetime.fromtimestamp(self.t, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )

    def epoch(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeIds:
    def __init__(self, prefix: str = "id") -> None:
        self._n = 0
        self._prefix = prefix
        self._lock = threading.Lock()

    def new_id(self) -> str:
        with self._lock:
            self._n += 1
            return f"{self._prefix}{self._n:06d}"


class FakeOrderRepository:
    """Orders, idempotency records and payment records in memory, with the same
    conditional semantics as the DynamoDB adapter."""

    def __init__(self, products: FakeProductRepository) -> None:
        self.products = products
        self.orders: dict[str, Order] = {}
        self.records: dict[tuple[str, str], IdempotencyRecord] = {}
        self.charges: dict[str, Charge] = {}
        self.shipments: dict[str, Shipment] = {}
        self.notifications: dict[str, list[Notification]] = {}
        self.republished: dict[str, int] = {}
        self._open_since: dict[str, str] = {}
        self._lock = threading.RLock()
        # What a test wants an eventually consistent product read to answer (None: not yet
        # there), and what was read: consistent or not, and how often the keys were asked.
        self.stale: dict[str, Product | None] = {}
        self.product_reads: list[bool] = []
        self.idempotency_reads = 0

    def get(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    def get_many_products(
        self, product_ids: Sequence[str], *, consistent: bool = True
    ) -> dict[str, Product]:
        """`stale` stands in for an eventually consistent read that lags: what it holds
        answers a read that is not consistent."""
        self.product_reads.append(consistent)
        found = {p: prod for p in product_ids if (prod := self.products.get(p)) is not None}
        if not consistent:
            for pid in product_ids:
                if pid in self.stale:
                    old = self.stale[pid]
                    if old is None:
                        found.pop(pid, None)
                    else:
                        found[pid] = old
        return found

    def get_idempotency(self, customer: str, key: str) -> IdempotencyRecord | None:
        self.idempotency_reads += 1
        return self.records.get((customer, key))

    def place(
        self, order: Order, product_versions: dict[str, int], record: IdempotencyRecord
    ) -> IdempotencyRecord:
        with self._lock:
            existing = self.records.get((record.customer, record.key))
            if existing is not None:
                return existing
            short = []
            for line in order.lines:
                p = self.products.get(line.product_id)
                if p is None or not p.active or p.stock < line.quantity:
                    short.append(
                        {
                            "productId": line.product_id,
                            "requested": line.quantity,
                            "available": p.stock if p and p.active else 0,
                        }
                    )
                elif p.version != product_versions[line.product_id]:
                    raise VersionConflict("a product changed while the order was placed")
            if short:
                raise OutOfStock("not enough stock for some lines", lines=short)
            for line in order.lines:  # the stock alone: the product's updated_at is the catalog's
                p = self.products._items[line.product_id]
                self.products._items[p.id] = replace(p, stock=p.stock - line.quantity)
            self.orders[order.id] = order
            self._open_since[order.id] = order.updated_at
            self.records[(record.customer, record.key)] = record
            return record

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
        with self._lock:
            stored = self.orders.get(current.id)
            if stored is None or stored.status != current.status:
                return False
            self.orders[current.id] = new
            self._open_since[current.id] = new.updated_at
            if new.status in ("PENDING", "PAID") and current.status not in ("PENDING", "PAID"):
                self.republished.pop(current.id, None)  # back in the pipeline
            if release_stock:
                for line in current.lines:
                    p = self.products.get(line.product_id)
                    if p is not None:
                        self.products._items[p.id] = replace(p, stock=p.stock + line.quantity)
            if charge is not None:
                self.charges[current.id] = charge
            if shipment is not None:
                self.shipments[current.id] = shipment
            if notification is not None:
                self.notifications.setdefault(current.id, []).append(notification)
            return True

    def get_charge(self, order_id: str) -> Charge | None:
        return self.charges.get(order_id)

    def mark_refunded(self, order_id: str, _now: str) -> None:
        if order_id in self.charges:
            self.charges[order_id] = replace(self.charges[order_id], status="REFUNDED")

    def record_charge(self, order_id: str, charge: Charge, _now: str) -> None:
        self.charges[order_id] = charge

    def list_by_state(self, state: str, limit: int, cursor: str | None) -> Page[Order]:
        if state not in ("PENDING", "PAID", "NEEDS_ATTENTION"):
            return Page(items=[], next_cursor=None)
        after = cursors.decode(cursor, {"state", "after"}) if cursor else None
        if after is not None and after["state"] != state:
            raise InvalidRequest("cursor belongs to another listing", field="cursor")

        def key(o: Order) -> str:
            return f"{self._open_since[o.id]}#{o.id}"

        found = sorted((o for o in self.orders.values() if o.status == state), key=key)
        if after is not None:
            found = [o for o in found if key(o) > after["after"]]
        page, more = found[:limit], len(found) > limit
        next_cursor = cursors.encode({"state": state, "after": key(page[-1])}) if more else None
        return Page(items=page, next_cursor=next_cursor)

    def list_for_customer(self, customer: str, limit: int, cursor: str | None) -> Page[Order]:
        # Newest first, with cursors shaped like the DynamoDB adapter's (the index's key of
        # the last order given), refused for another customer or when not issued by us.
        listing = f"CUSTOMER#{customer}"

        def key(o: Order) -> str:
            return f"{o.created_at}#{o.id}"

        mine = sorted((o for o in self.orders.values() if o.customer == customer), key=key)[::-1]
        if cursor:
            after = cursors.decode(cursor, {"pk", "sk", "gsi2pk", "gsi2sk"})
            if after["gsi2pk"] != listing:
                raise InvalidRequest("cursor belongs to another listing", field="cursor")
            mine = [o for o in mine if key(o) < after["gsi2sk"]]
        page, more = mine[:limit], len(mine) > limit
        last = page[-1] if more else None
        next_cursor = (
            cursors.encode(
                {"pk": f"ORDER#{last.id}", "sk": "ORDER", "gsi2pk": listing, "gsi2sk": key(last)}
            )
            if last is not None
            else None
        )
        return Page(items=page, next_cursor=next_cursor)

    def open_orders(self, updated_before: str, limit: int) -> list[Order]:
        found = [
            o
            for o in self.orders.values()
            if o.status in ("PENDING", "PAID") and self._open_since[o.id] < updated_before
        ]
        # Chosen by the time of the last change or republish, ordered (as DynamoDB's) by the
        # order's own last change.
        return sorted(found, key=lambda o: o.updated_at)[:limit]

    def record_republish(self, order: Order, now: str) -> int | None:
        with self._lock:
            stored = self.orders.get(order.id)
            if stored is None or stored.status != order.status:
                return None
            self.republished[order.id] = self.republished.get(order.id, 0) + 1
            self._open_since[order.id] = now
            return self.republished[order.id]


class FakePaymentGateway:
    """Captures once per key; `declined`/`transient` tokens behave as the simulator's."""

    def __init__(self) -> None:
        self.captures: dict[str, Charge] = {}
        self.capture_calls = 0
        self.refunds: list[str] = []
        # An outage of the provider: every call fails as a network error would.
        self.down = False

    def charge(self, idempotency_key: str, amount: Money, token: str) -> Charge:
        if self.down:
            raise TransientFailure("payment provider unreachable")
        if idempotency_key in self.captures:
            return self.captures[idempotency_key]
        if token.startswith("tok_decline"):
            raise PaymentDeclined("card declined")
        if token.startswith("tok_transient"):
            raise TransientFailure("payment gateway timed out")
        self.capture_calls += 1
        charge = Charge(f"ch_{idempotency_key}", idempotency_key, amount)
        self.captures[idempotency_key] = charge
        return charge

    def lookup(self, idempotency_key: str) -> Charge | None:
        return self.captures.get(idempotency_key)

    def refund(self, charge: Charge) -> Charge:
        if self.down:
            raise TransientFailure("payment provider unreachable")
        key = charge.order_id
        captured = self.captures.get(key)
        if captured is not None and captured.status != "REFUNDED":
            self.captures[key] = replace(captured, status="REFUNDED")
            self.refunds.append(key)
        return replace(charge, status="REFUNDED")


class FakeQueueBacklog:
    """Messages waiting per event type, as a test sets them; None: the transport cannot say."""

    def __init__(self, waiting: dict[str, int | None] | None = None) -> None:
        self.counts: dict[str, int | None] = dict(waiting or {})
        self.asked = 0

    def waiting(self, event_type: str) -> int | None:
        self.asked += 1
        return self.counts.get(event_type)


class FakeMetrics:
    def __init__(self) -> None:
        self.counters: dict[str, float] = {}

    def incr(self, name: str, value: float = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + value

    def observe_ms(self, name: str, milliseconds: float) -> None:
        pass

    def flush(self) -> None:
        pass


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[Event] = []
        self.fail = False

    def publish(self, event: Event) -> None:
        if self.fail:
            raise DependencyUnavailable("publisher is down")
        self.published.append(event)


class FakeCartStore:
    """CartStore in memory; `available = False` behaves like a Redis outage."""

    def __init__(self) -> None:
        self.carts: dict[str, dict[str, int]] = {}
        self.available = True
        self.writes = 0

    def _up(self) -> None:
        if not self.available:
            raise DependencyUnavailable("Redis is unavailable", retry_after=5)

    def get(self, customer: str) -> Cart:
        self._up()
        return Cart(customer, dict(self.carts.get(customer, {})))

    def set_quantity(self, customer: str, product_id: str, quantity: int, max_lines: int) -> bool:
        self._up()
        cart = self.carts.setdefault(customer, {})
        if quantity == 0:
            cart.pop(product_id, None)
        elif product_id not in cart and len(cart) >= max_lines:
            return False
        else:
            cart[product_id] = quantity
        self.writes += 1
        return True

    def remove(self, customer: str, product_id: str) -> None:
        self._up()
        self.carts.get(customer, {}).pop(product_id, None)
        self.writes += 1

    def clear(self, customer: str) -> None:
        self._up()
        self.carts.pop(customer, None)

    def remove_ordered(self, customer: str, ordered: dict[str, int]) -> None:
        self._up()
        cart = self.carts.get(customer, {})
        for product_id, qty in ordered.items():
            if cart.get(product_id) == qty:
                del cart[product_id]


class FakeRateLimiter:
    """RateLimiter in memory on a clock you can move (`FakeClock`); the same GCRA."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.tats: dict[str, float] = {}
        self.available = True
        self.keys: list[str] = []
        self.read_ahead: list[tuple[str, ...]] = []  # the cached products each hit named

    def hit(
        self, key: str, policy: RatePolicy, cached_products: Sequence[str] = ()
    ) -> RateDecision:
        if not self.available:
            raise DependencyUnavailable("Redis is unavailable", retry_after=5)
        self.keys.append(key)
        self.read_ahead.append(tuple(cached_products))
        decision, tat = gcra(self.tats.get(key), self.clock.epoch() * 1000, policy)
        self.tats[key] = tat
        return decision
