"""Operations use cases: no order is a dead end.

An order that needs attention waits for an operator, who lists the waiting orders and
retries, cancels or resolves each one. Every way out is a conditional transition (two
operators, or an operator and the pipeline, can never both apply one), and every one is
recorded on the order: who, when, why.
"""

from __future__ import annotations

import logging

from funcmart.domain import orders as model
from funcmart.domain.commands import CancelStuckOrder, ListOrdersByState, ResolveOrder, RetryOrder
from funcmart.domain.errors import Conflict, InvalidRequest, NotFound
from funcmart.domain.identity import Principal
from funcmart.domain.orders import Charge, Order, OrderPaid, OrderPlaced
from funcmart.ports import DeadLetterRedrive, OrderRepository, Page, Redrive
from funcmart.services.orders import (
    OrderPorts,
    finish_refund,
    publish_or_leave_for_reconciler,
)

log = logging.getLogger(__name__)

# The states an operator lists: those an order waits in. Terminal states are history, read
# per customer (ListOrders), not worked through.
LISTABLE_STATES = (model.NEEDS_ATTENTION, model.PENDING, model.PAID)


def list_orders_by_state(
    orders: OrderRepository, who: Principal, cmd: ListOrdersByState
) -> Page[Order]:
    """Orders in one waiting state, the longest waiting first."""
    who.require_admin()
    if cmd.state not in LISTABLE_STATES:
        raise InvalidRequest(f"state must be one of {', '.join(LISTABLE_STATES)}", field="state")
    return orders.list_by_state(cmd.state, max(1, min(cmd.limit, 100)), cmd.cursor)


def _waiting(p: OrderPorts, order_id: str) -> Order:
    model.require_plausible_id(order_id)
    order = p.orders.get(order_id)
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    return order


def _captured(p: OrderPorts, order: Order) -> Charge | None:
    """The captured charge of an order, as the payment ledger knows it (the ledger also
    knows of a charge that raced the flag and never reached the order)."""
    charge = p.payments.lookup(order.id)
    return charge if charge is not None and charge.captured else None


def retry_order(p: OrderPorts, who: Principal, cmd: RetryOrder) -> Order:
    """Back to the step that failed, its event published again: PAID (towards fulfilment)
    when the charge was captured, else PENDING (towards payment)."""
    who.require_admin()
    order = _waiting(p, cmd.order_id)
    _refuse_refunded(p, order)
    charge = _captured(p, order)
    to = model.PAID if charge is not None else model.PENDING
    moved = order.operate(model.RETRY, to, who.subject, p.clock.now(), cmd.reason)
    recorded = charge if charge is not None and p.orders.get_charge(order.id) is None else None
    if not p.orders.transition(order, moved, charge=recorded):
        raise Conflict(f"order {order.id} changed meanwhile; look at it again")
    p.metrics.incr("OperatorRetries")
    cid = cmd.correlation_id or order.correlation_id
    event: model.Event = (
        OrderPaid(order.id, cid) if to == model.PAID else OrderPlaced(order.id, cid)
    )
    publish_or_leave_for_reconciler(p, event)
    _log_action(moved)
    return moved


def _refuse_refunded(p: OrderPorts, order: Order) -> None:
    """Conflict for an order whose charge was refunded: charging it again under its order id
    would only replay the first (refunded) payment, so it would ship unpaid. It can be
    cancelled; the customer orders again to pay again."""
    for charge in (p.payments.lookup(order.id), p.orders.get_charge(order.id)):
        if charge is not None and charge.status == model.REFUNDED:
            raise Conflict(
                f"order {order.id} was refunded; it cannot be retried. Cancel it, and the "
                "customer orders again to pay again"
            )


def cancel_stuck_order(p: OrderPorts, who: Principal, cmd: CancelStuckOrder) -> Order:
    """Cancelled: the reserved stock back, a captured charge refunded (exactly once).

    Asked again for an order this already cancelled, it finishes a refund an earlier attempt
    left undone (the provider was down) and answers the order as it is."""
    who.require_admin()
    order = _waiting(p, cmd.order_id)
    if order.status == model.CANCELLED and any(a.action == model.CANCEL for a in order.actions):
        finish_refund(p, order)
        return order
    cancelled = order.operate(model.CANCEL, model.CANCELLED, who.subject, p.clock.now(), cmd.reason)
    if not p.orders.transition(order, cancelled, release_stock=True):
        raise Conflict(f"order {order.id} changed meanwhile; look at it again")
    p.cache.invalidate(*(line.product_id for line in order.lines))
    p.metrics.incr("OperatorCancels")
    _log_action(cancelled)
    finish_refund(p, cancelled)
    return cancelled


def resolve_order(p: OrderPorts, who: Principal, cmd: ResolveOrder) -> Order:
    """FULFILLED with the operator's note, for an order handled outside the pipeline. It
    needs a captured charge: an order closed as fulfilled is one that was paid for."""
    who.require_admin()
    order = _waiting(p, cmd.order_id)
    charge = _captured(p, order)
    if order.status == model.NEEDS_ATTENTION and charge is None:
        raise Conflict(
            f"order {order.id} has no captured payment: retry it to charge it, or cancel it"
        )
    resolved = order.operate(model.RESOLVE, model.FULFILLED, who.subject, p.clock.now(), cmd.reason)
    recorded = charge if p.orders.get_charge(order.id) is None else None
    if not p.orders.transition(order, resolved, charge=recorded):
        raise Conflict(f"order {order.id} changed meanwhile; look at it again")
    p.metrics.incr("OperatorResolves")
    _log_action(resolved)
    return resolved


def _log_action(order: Order) -> None:
    done = order.actions[-1]
    log.warning(
        "operator action on an order",
        extra={"orderId": order.id, **done.to_dict()},
    )


def redrive_dead_letters(redrive: DeadLetterRedrive, operator: Principal) -> list[Redrive]:
    """Every dead-letter queue moved back to its source queue."""
    operator.require_admin()
    moved = redrive.redrive()
    log.warning(
        "dead letters redriven",
        extra={"operator": operator.subject, "queues": [r.dead_letter_queue for r in moved]},
    )
    return moved
