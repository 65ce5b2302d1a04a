"""Order use cases: place, read, cancel, and the queue-driven pipeline that pays, fulfils,
dead-letters and reconciles orders."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from funcmart.domain import orders as model
from funcmart.domain.catalog import Product
from funcmart.domain.commands import CancelOrder, PlaceOrder, PlaceOrderFromCart
from funcmart.domain.errors import (
    Conflict,
    DependencyUnavailable,
    DomainError,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    OutOfStock,
    TransientFailure,
    VersionConflict,
)
from funcmart.domain.identity import Principal
from funcmart.domain.orders import (
    Charge,
    IdempotencyRecord,
    Notification,
    Order,
    OrderPaid,
    OrderPlaced,
    PaymentDeclined,
    PaymentMisconfigured,
    RequestedLine,
    Shipment,
)
from funcmart.domain.retries import DEAD_LETTER_MIN_AGE_SECONDS
from funcmart.ports import (
    CartStore,
    Clock,
    IdGenerator,
    Metrics,
    OrderRepository,
    Page,
    PaymentGateway,
    ProductCache,
    Publisher,
    QueueBacklog,
)

log = logging.getLogger(__name__)
PLACE_ATTEMPTS = 5


@dataclass(frozen=True)
class OrderPorts:
    orders: OrderRepository
    payments: PaymentGateway
    publisher: Publisher
    cache: ProductCache
    clock: Clock
    ids: IdGenerator
    metrics: Metrics
    idempotency_ttl_seconds: int = 86400
    # The deployment's payment provider: the simulator's tokens work with "simulator" only.
    payment_provider: str = model.SIMULATOR_PROVIDER


@dataclass(frozen=True)
class Placed:
    """The order as placed (its stored view), and whether this was a replay of a key seen
    before; the transport decides how to answer."""

    body: dict[str, Any]
    replayed: bool


def place_order(p: OrderPorts, principal: Principal, cmd: PlaceOrder) -> Placed:
    """Reserve stock and record a PENDING order exactly once per idempotency key.

    The key is not read first: the transaction's condition on it finds a retry, and only a
    request about to be refused (out of stock, unknown product) asks whether it is a retry
    of one that succeeded, whose answer it then replays.
    """
    key = _check_key(cmd.idempotency_key)
    fingerprint = model.fingerprint(principal.subject, cmd.request_body)
    return _place(
        p, principal, key, fingerprint, list(cmd.lines), cmd.payment_token, cmd.correlation_id
    )


def place_order_from_cart(
    p: OrderPorts, carts: CartStore, principal: Principal, cmd: PlaceOrderFromCart
) -> Placed:
    """Order what is in the caller's cart, then take the ordered lines out of it.

    A retry of a request that succeeded finds the cart empty (it was cleared), or Redis
    out: the key is looked up then, and the first answer replayed, not a 409 or a 503.
    """
    key = _check_key(cmd.idempotency_key)
    fingerprint = model.fingerprint(principal.subject, cmd.request_body)
    try:
        cart = carts.get(principal.subject)
    except DependencyUnavailable as out:
        return _replay_or_raise(p, principal, key, fingerprint, out)
    if cart.empty:
        empty = Conflict("the cart is empty; put something in it first")
        return _replay_or_raise(p, principal, key, fingerprint, empty)
    placed = _place(
        p, principal, key, fingerprint, cart.requested(), cmd.payment_token, cmd.correlation_id
    )
    if not placed.replayed:
        _clear_ordered(p, carts, principal.subject, cart.quantities)
    return placed


def _replay_or_raise(
    p: OrderPorts, principal: Principal, key: str, fingerprint: str, refusal: DomainError
) -> Placed:
    """The answer given earlier under this key, if there is one (this request is a retry of
    it); else the refusal. Asked only on the way to refusing, so an order that goes through
    never reads its key."""
    earlier = p.orders.get_idempotency(principal.subject, key)
    if earlier is None:
        raise refusal
    return _replay(earlier, fingerprint)


def is_replay(orders: OrderRepository, principal: Principal, idempotency_key: str) -> bool:
    """Whether a request under this key would only replay an answer already given."""
    if not 0 < len(idempotency_key) <= 128:
        return False
    return orders.get_idempotency(principal.subject, idempotency_key) is not None


def _clear_ordered(p: OrderPorts, carts: CartStore, customer: str, ordered: dict[str, int]) -> None:
    try:
        carts.remove_ordered(customer, ordered)
    except DependencyUnavailable:
        # The order is committed and must be reported as placed; the lines stay in the cart
        # (the customer sees them and can remove them).
        p.metrics.incr("CartClearFailures")
        log.warning("ordered lines stay in the cart: Redis is unavailable")


def _place(
    p: OrderPorts,
    principal: Principal,
    key: str,
    fingerprint: str,
    lines: list[RequestedLine],
    payment_token: str,
    correlation_id: str,
) -> Placed:
    try:
        return _place_new(p, principal, key, fingerprint, lines, payment_token, correlation_id)
    except (InvalidRequest, NotFound, OutOfStock) as refused:
        # Refused now; but a retry of an order placed while it could be gets its answer.
        return _replay_or_raise(p, principal, key, fingerprint, refused)


def _place_new(
    p: OrderPorts,
    principal: Principal,
    key: str,
    fingerprint: str,
    lines: list[RequestedLine],
    payment_token: str,
    correlation_id: str,
) -> Placed:
    requested = model.merge_lines(lines)
    model.require_token_for(p.payment_provider, payment_token)
    for attempt in range(PLACE_ATTEMPTS):
        # The first reading may be a little old (half the cost): the transaction's conditions
        # check stock, status and version, and after a conflict the products are read fresh.
        order, versions = _price(
            p, principal, requested, payment_token, correlation_id, consistent=attempt > 0
        )
        record = IdempotencyRecord(
            customer=principal.subject,
            key=key,
            fingerprint=fingerprint,
            status_code=202,
            response=order.to_dict(),
            expires_at=int(p.clock.epoch()) + p.idempotency_ttl_seconds,
        )
        try:
            stored = p.orders.place(order, versions, record)
        except VersionConflict:
            continue  # a product changed between our read and the write: price it again
        if stored.response.get("id") != order.id:
            return _replay(stored, fingerprint)  # an earlier or concurrent request won
        p.cache.invalidate(*(line.product_id for line in order.lines))
        p.metrics.incr("OrdersPlaced")
        publish_or_leave_for_reconciler(p, OrderPlaced(order.id, correlation_id))
        return Placed(stored.response, replayed=False)
    raise DependencyUnavailable("the catalog kept changing; try again", retry_after=1)


def _check_key(key: str | None) -> str:
    if not key:
        raise InvalidRequest("the Idempotency-Key header is required", field="Idempotency-Key")
    if len(key) > 128 or not key.isprintable() or not key.strip():
        raise InvalidRequest(
            "Idempotency-Key must be 1-128 printable characters", field="Idempotency-Key"
        )
    return key


def _replay(record: IdempotencyRecord, fingerprint: str) -> Placed:
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different request; use a new key"
        )
    return Placed(record.response, replayed=True)


def _price(
    p: OrderPorts,
    principal: Principal,
    requested: list[RequestedLine],
    payment_token: str,
    correlation_id: str,
    *,
    consistent: bool,
) -> tuple[Order, dict[str, int]]:
    ids = [r.product_id for r in requested]
    products = p.orders.get_many_products(ids, consistent=consistent)
    if not consistent and not _orderable(requested, products):
        # An older copy may miss a product just added or stock just put back: never refuse
        # on it.
        products = p.orders.get_many_products(ids, consistent=True)
    missing = [r.product_id for r in requested if r.product_id not in products]
    missing += [
        r.product_id
        for r in requested
        if r.product_id in products and not products[r.product_id].active
    ]
    if missing:
        raise NotFound(f"unknown products: {', '.join(missing)}", productIds=missing)
    short = [
        {
            "productId": r.product_id,
            "requested": r.quantity,
            "available": products[r.product_id].stock,
        }
        for r in requested
        if products[r.product_id].stock < r.quantity
    ]
    if short:
        raise OutOfStock("not enough stock for some lines", lines=short)
    lines, total = model.price_lines(requested, products)
    now = p.clock.now()
    order = Order(
        id=p.ids.new_id(),
        customer=principal.subject,
        lines=lines,
        total=total,
        status=model.PENDING,
        payment_token=payment_token,
        created_at=now,
        updated_at=now,
        correlation_id=correlation_id,
    )
    return order, {r.product_id: products[r.product_id].version for r in requested}


def _orderable(requested: list[RequestedLine], products: dict[str, Product]) -> bool:
    return all(
        (found := products.get(r.product_id)) is not None
        and found.active
        and found.stock >= r.quantity
        for r in requested
    )


def publish_or_leave_for_reconciler(p: OrderPorts, event: model.Event) -> None:
    try:
        p.publisher.publish(event)
    except DependencyUnavailable as exc:
        # The order is committed; ReconcileOrders re-publishes orders left open too long.
        p.metrics.incr("PublishFailures")
        log.warning(
            "publish failed; the reconciler will retry",
            extra={"event": event.type, "orderId": event.order_id, "error": str(exc)[:300]},
        )


def get_order(orders: OrderRepository, principal: Principal, order_id: str) -> Order:
    """The order, for its owner or an admin; others learn nothing of its existence."""
    model.require_plausible_id(order_id)
    order = orders.get(order_id)
    if order is None or not principal.may_see(order.customer):
        raise NotFound(f"order {order_id} does not exist")
    return order


def list_orders(
    orders: OrderRepository,
    principal: Principal,
    limit: int,
    cursor: str | None,
    customer: str | None = None,
) -> Page[Order]:
    """Newest first: the caller's own orders, or (admin) any customer's."""
    limit = max(1, min(limit, 100))
    if customer is not None and customer != principal.subject:
        principal.require_admin()
        return orders.list_for_customer(customer, limit, cursor)
    return orders.list_for_customer(principal.subject, limit, cursor)


def cancel_order(p: OrderPorts, principal: Principal, cmd: CancelOrder) -> Order:
    """Cancel a PENDING, PAID or waiting order: stock goes back, a captured charge is
    refunded."""
    order_id = cmd.order_id
    order = get_order(p.orders, principal, order_id)
    for _ in range(3):
        if order.status == model.CANCELLED:
            finish_refund(p, order)  # a refund left pending by an earlier attempt
            return order
        cancelled = order.transition(model.CANCELLED, p.clock.now(), reason="cancelled")
        if p.orders.transition(
            order, cancelled, release_stock=order.releases_stock_to(model.CANCELLED)
        ):
            p.cache.invalidate(*(line.product_id for line in order.lines))
            p.metrics.incr("OrdersCancelled")
            finish_refund(p, cancelled)
            return cancelled
        order = get_order(p.orders, principal, order_id)  # it moved on; look again
    raise Conflict(f"order {order_id} keeps changing; try again")


def finish_refund(p: OrderPorts, order: Order) -> None:
    """Refund what the payment ledger captured for a cancelled order, and record it on the
    order: the ledger, not the order, knows of a charge that raced a flag or a cancel."""
    charge = p.payments.lookup(order.id) or p.orders.get_charge(order.id)
    if charge is None:
        return
    if charge.processing:
        # Not taken yet: its intent is cancelled (or refunded, if it succeeded meanwhile).
        _settle_decided(p, order, charge)
        return
    if charge.captured:
        charge = p.payments.refund(charge)
        p.metrics.incr("OrdersRefunded")
    recorded = p.orders.get_charge(order.id)
    if recorded is None or recorded.captured or recorded.processing:
        p.orders.record_charge(order.id, replace(charge, status=model.REFUNDED), p.clock.now())


# ------------------------------------------------------------------ queue consumers


def process_order(p: OrderPorts, event: OrderPlaced, *, redelivered: bool = False) -> str:
    """Charge a PENDING order: PAID (and OrderPaid published) or FAILED with stock back.

    Free of side effects under redelivery: the charge is idempotent on the order id, every
    transition is conditional, and an order already PAID or past it publishes nothing again.
    Except where the message comes back after a delivery that never answered (`redelivered`:
    received before; nothing this function does after the payment fails a record, so the
    consumer stopped or timed out there, before its batch's events were published): an order
    found PAID then gets its OrderPaid published (FulfilOrder takes a second one as a no-op).
    Any other lost OrderPaid is ReconcileOrders' to re-publish.
    Raises TransientFailure / DependencyUnavailable to have the message retried.
    """
    order = p.orders.get(event.order_id)
    if order is None:
        raise NotFound(f"order {event.order_id} does not exist")
    if order.status != model.PENDING:
        return _past_pending(p, order, event, redelivered)
    charge = _charge(p, order)
    if isinstance(charge, str):
        return charge  # declined or flagged
    if charge.processing:
        # Neither paid nor declined: the order waits (PENDING, stock held) and is looked up
        # again when the reconciler re-publishes it; past the abandon limit it fails.
        p.orders.record_charge(order.id, charge, p.clock.now())
        p.metrics.incr("PaymentsProcessing")
        return "processing"
    paid = order.transition(model.PAID, p.clock.now())
    if not p.orders.transition(order, paid, charge=charge):
        # Flagged, cancelled or failed while we charged: the ledger must not disagree.
        current = p.orders.get(order.id)
        if current is not None:
            _settle_raced_charge(p, current, charge)
        return "lost-race"
    p.metrics.incr("OrdersPaid")
    publish_or_leave_for_reconciler(p, OrderPaid(order.id, event.correlation_id))
    return "paid"


def _charge(p: OrderPorts, order: Order) -> Charge | str:
    """The order's charge, or what became of the order when the provider refused it."""
    started = time.perf_counter()
    try:
        return p.payments.charge(order.id, order.total, order.payment_token)
    except PaymentDeclined as declined:
        failed = order.transition(model.FAILED, p.clock.now(), reason=declined.reason)
        if p.orders.transition(order, failed, release_stock=True):
            p.cache.invalidate(*(line.product_id for line in order.lines))
            p.metrics.incr("OrdersFailed")
        return "declined"
    except PaymentMisconfigured as wrong:
        # Not the card and not a blip: retrying would fail the same way until a person
        # fixes the provider's configuration. The order waits for them.
        log.error("payment provider refused the request", extra={"error": wrong.reason})
        p.metrics.incr("PaymentMisconfigured")
        flagged = order.transition(
            model.NEEDS_ATTENTION, p.clock.now(), reason=f"payment provider: {wrong.reason}"
        )
        return "flagged" if p.orders.transition(order, flagged) else "lost-race"
    finally:
        p.metrics.observe_ms("PaymentLatency", (time.perf_counter() - started) * 1000)


def _past_pending(p: OrderPorts, order: Order, event: OrderPlaced, redelivered: bool) -> str:
    """What a delivery of OrderPlaced does for an order no longer PENDING (see process_order)."""
    if order.status == model.PAID and redelivered:
        publish_or_leave_for_reconciler(p, OrderPaid(order.id, event.correlation_id))
        return "republished"
    if order.status in (model.PAID, model.FULFILLED):
        p.metrics.incr("RedeliveriesSkipped")
        return "already-paid"
    if order.status in (model.CANCELLED, model.FAILED):
        _refund_stray_charge(p, order)
    return "skipped"


def _settle_raced_charge(p: OrderPorts, order: Order, charge: Charge) -> None:
    """A charge captured for an order that moved on meanwhile: recorded on an order that
    waits for an operator (who then retries, cancels or resolves with it in view), refunded
    for one that was cancelled or failed."""
    if order.status in (model.CANCELLED, model.FAILED):
        _refund_stray_charge(p, order, charge)
    elif order.status == model.NEEDS_ATTENTION and p.orders.get_charge(order.id) is None:
        p.orders.record_charge(order.id, charge, p.clock.now())
        p.metrics.incr("RacedChargesRecorded")


def _refund_stray_charge(p: OrderPorts, order: Order, charge: Charge | None = None) -> None:
    """Refund a charge captured for an order that was cancelled or failed, and record the
    refund on the order. The charge is passed when in hand: a lookup may lag (Stripe)."""
    charge = charge or p.payments.lookup(order.id) or p.orders.get_charge(order.id)
    if charge is not None and (charge.captured or charge.processing):
        # A processing payment is cancelled; one that cannot be cancelled yet raises
        # TransientFailure, and the message comes back until it settles either way.
        refunded = p.payments.refund(charge)
        p.orders.record_charge(order.id, refunded, p.clock.now())
        if refunded.status == model.REFUNDED:
            p.metrics.incr("OrdersRefunded")


def fulfil_order(p: OrderPorts, event: OrderPaid) -> str:
    """PAID to FULFILLED with a shipment and a notification record; a no-op otherwise."""
    order = p.orders.get(event.order_id)
    if order is None:
        raise NotFound(f"order {event.order_id} does not exist")
    if order.status != model.PAID:
        return "skipped"
    now = p.clock.now()
    fulfilled = order.transition(model.FULFILLED, now)
    shipment = Shipment(order.id, "funcmart-post", f"FM{order.id[:12].upper()}", now)
    note = Notification(
        order.id,
        order.customer,
        "order-shipped",
        f"Your order {order.id} is on its way: tracking {shipment.tracking_number}",
        now,
    )
    if p.orders.transition(order, fulfilled, shipment=shipment, notification=note):
        p.metrics.incr("OrdersFulfilled")
        return "fulfilled"
    return "skipped"


# The state an order waits in for each event's step: a dead letter flags only an order
# still at the step its event was for.
_STEP_OF = {"OrderPlaced": model.PENDING, "OrderPaid": model.PAID}


@dataclass(frozen=True)
class DeadLetterPolicy:
    """When HandleDeadLetters believes a dead letter.

    A message that exhausted its retries arrives no sooner than its transport's retry budget
    after its event was published, and every order event is published once its order is in
    the state the event is for. A dead letter of an order in its state for less than
    `min_age_seconds` is therefore not one: it is a captured event posted again (on Knative any
    pod can reach HandleDeadLetters), and the order is left alone. The setting must not exceed
    the earliest dead letter of the deployed transports (funcmart.domain.retries); were a real
    dead letter ever left alone, ReconcileOrders still re-publishes, and in time flags, an
    order that stays in its state.
    """

    min_age_seconds: int = DEAD_LETTER_MIN_AGE_SECONDS


def handle_dead_letter(
    p: OrderPorts, policy: DeadLetterPolicy, event: model.Event, source: str
) -> str:
    """An order whose message exhausted its retries needs a person: NEEDS_ATTENTION.

    Only for the step the event was for: an OrderPlaced dead letter flags a PENDING order,
    never a PAID one (a replayed event is about a step the order may have left). Not for an
    order in that state for less than the policy's minimum (a replay, see DeadLetterPolicy),
    nor for a PENDING order whose payment the provider is still settling (ReconcileOrders looks
    it up again until the abandon limit)."""
    p.metrics.incr("OrdersDeadLettered")
    order = p.orders.get(event.order_id)
    if order is None or order.status != _STEP_OF.get(event.type):
        return "ignored"
    in_state = order.seconds_in_state(p.clock.epoch())
    if in_state is None or in_state < policy.min_age_seconds:
        p.metrics.incr("DeadLettersTooEarly")
        log.warning(
            "too early to be a dead letter: the order is left alone",
            extra={
                "orderId": order.id,
                "status": order.status,
                "event": event.type,
                "queue": source,
                "secondsInState": None if in_state is None else int(in_state),
                "minAgeSeconds": policy.min_age_seconds,
            },
        )
        return "too-early"
    if _payment_processing(p, order):
        p.metrics.incr("DeadLettersPaymentProcessing")
        log.warning(
            "dead letter of an order whose payment is processing: the reconciler follows it",
            extra={"orderId": order.id, "event": event.type, "queue": source},
        )
        return "payment-processing"
    flagged = order.transition(
        model.NEEDS_ATTENTION, p.clock.now(), reason=f"{event.type} dead-lettered from {source}"
    )
    return "flagged" if p.orders.transition(order, flagged) else "ignored"


# Named in full so that every metric name is a literal where it is counted.
RECONCILE_METRICS = {
    "republished": "ReconciledRepublished",
    "abandoned": "ReconciledAbandoned",
    "flagged": "ReconciledFlagged",
    "backlogged": "ReconciledBacklogged",
}


@dataclass(frozen=True)
class ReconcilePolicy:
    republish_after_seconds: int = 120
    abandon_after_seconds: int = 86400
    max_republish: int = 5
    batch: int = 500
    # Where the transport cannot tell a backlog (a broker), an order is flagged only after
    # it has been in its state this long: longer than any retry budget.
    flag_after_seconds: int = 3600


class _Backlogs:
    """The queues' backlogs, asked once per run and only when an order needs the answer."""

    def __init__(self, backlog: QueueBacklog | None) -> None:
        self._backlog = backlog
        self._known: dict[str, int | None] = {}

    def of(self, event_type: str) -> int | None:
        if event_type not in self._known:
            self._known[event_type] = (
                self._backlog.waiting(event_type) if self._backlog is not None else None
            )
        return self._known[event_type]


def reconcile_orders(
    p: OrderPorts, policy: ReconcilePolicy, backlog: QueueBacklog | None = None
) -> dict[str, int]:
    """Re-publish events that were lost; release stock of abandoned orders; flag on evidence.

    An order open too long is either behind a backlog (its event waits in the queue, or is
    being retried) or its event was lost. The queue tells them apart: while the step's queue
    holds messages (waiting, delayed or in flight) the order waits its turn and nothing is
    published or flagged. With the queue empty its event is re-published; an order re-published
    `max_republish` times into an empty queue that still has not moved is flagged
    NEEDS_ATTENTION. Where the transport cannot say (a broker), the order is flagged only
    after `flag_after_seconds` in its state.
    """
    now_epoch = p.clock.epoch()
    cutoff = _iso(now_epoch - policy.republish_after_seconds)
    abandon_before = _iso(now_epoch - policy.abandon_after_seconds)
    flag_before = _iso(now_epoch - policy.flag_after_seconds)
    backlogs = _Backlogs(backlog)
    counts = dict.fromkeys(RECONCILE_METRICS, 0)
    for order in p.orders.open_orders(cutoff, policy.batch):
        now = p.clock.now()
        if order.status == model.PENDING and order.created_at < abandon_before:
            failed = order.transition(model.FAILED, now, reason="abandoned")
            if p.orders.transition(order, failed, release_stock=True):
                p.cache.invalidate(*(line.product_id for line in order.lines))
                counts["abandoned"] += 1
                _settle_decided(p, failed)
            continue
        event: model.Event = (
            OrderPlaced(order.id, order.correlation_id, order.trace_context)
            if order.status == model.PENDING
            else OrderPaid(order.id, order.correlation_id, order.trace_context)
        )
        waiting = backlogs.of(event.type)
        if waiting:
            counts["backlogged"] += 1
            continue
        count = p.orders.record_republish(order, now)
        if count is None:
            continue
        if count > policy.max_republish and not _payment_processing(p, order):
            if waiting == 0 or order.updated_at < flag_before:
                reason = "not processed: its event was re-published and still nothing moved it"
                flagged = order.transition(model.NEEDS_ATTENTION, now, reason=reason)
                counts["flagged"] += int(p.orders.transition(order, flagged))
            continue
        publish_or_leave_for_reconciler(p, event)
        counts["republished"] += 1
    for name, n in counts.items():
        if n:
            p.metrics.incr(RECONCILE_METRICS[name], n)
    return counts


def _payment_processing(p: OrderPorts, order: Order) -> bool:
    """Whether the order waits on a payment the provider is still settling: it is looked up
    again, not flagged, until the abandon limit."""
    if order.status != model.PENDING:
        return False
    charge = p.orders.get_charge(order.id)
    return charge is not None and charge.processing


def _settle_decided(p: OrderPorts, order: Order, charge: Charge | None = None) -> None:
    """The payment of an order decided FAILED or CANCELLED, if one was still processing:
    cancelled, or refunded if it was captured. One the provider cannot cancel yet gets its
    OrderPlaced published again: ProcessOrder, finding the order decided, refunds a capture
    that lands later (the message retried while the payment still processes)."""
    charge = charge or p.orders.get_charge(order.id)
    if charge is None or not (charge.processing or charge.captured):
        return
    try:
        _refund_stray_charge(p, order, charge)
    except (TransientFailure, DependencyUnavailable):
        p.metrics.incr("PaymentsUnsettled")
        log.warning("abandoned order's payment not settled yet", extra={"orderId": order.id})
        publish_or_leave_for_reconciler(p, OrderPlaced(order.id, order.correlation_id))


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
