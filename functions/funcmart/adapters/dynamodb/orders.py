"""OrderRepository over the single table: every state change one conditional write (a
transaction only where stock moves with it)."""

from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from funcmart.adapters import cursors, tracing
from funcmart.adapters.dynamodb.catalog import product_key, to_product
from funcmart.adapters.dynamodb.errors import is_conditional_failure, translate_errors
from funcmart.adapters.dynamodb.table import (
    ActionAttribute,
    IdempotencyItem,
    LineAttribute,
    NotificationAttribute,
    OrderItem,
    PaymentAttribute,
    PaymentItem,
    ShipmentAttribute,
    Tables,
    decode_cursor,
    encode_cursor,
    key_part,
)
from funcmart.domain.catalog import ACTIVE, Product
from funcmart.domain.errors import (
    DependencyUnavailable,
    InvalidRequest,
    OutOfStock,
    VersionConflict,
)
from funcmart.domain.money import Money
from funcmart.domain.orders import (
    NEEDS_ATTENTION,
    OPEN_STATES,
    REFUNDED,
    Charge,
    IdempotencyRecord,
    Notification,
    OperatorAction,
    Order,
    OrderLine,
    Shipment,
)
from funcmart.ports import Page

OPEN_SHARDS = 8  # spreads the open-orders index over partitions; the reconciler reads all
TX_ATTEMPTS = 8
# Orders waiting for an operator, in gsi1 by the time they were flagged. Few by nature (a
# flagged order is an incident), so one partition.
ATTENTION_PARTITION = "ORDERS#ATTENTION"


def order_key(order_id: str) -> tuple[str, str]:
    return f"ORDER#{order_id}", "ORDER"


def open_shard(order_id: str) -> str:
    return f"ORDERS#OPEN#{zlib.crc32(order_id.encode()) % OPEN_SHARDS}"


def index_partitions(state: str) -> list[str]:
    """The gsi1 partitions that hold orders in `state` (none for terminal states)."""
    if state == NEEDS_ATTENTION:
        return [ATTENTION_PARTITION]
    if state in OPEN_STATES:
        return [f"ORDERS#OPEN#{shard}" for shard in range(OPEN_SHARDS)]
    return []


def index_partition(order: Order) -> str | None:
    if order.status == NEEDS_ATTENTION:
        return ATTENTION_PARTITION
    if order.status in OPEN_STATES:
        return open_shard(order.id)
    return None


def _reasons(exc: TransactWriteError) -> list[str | None]:
    return [r.code if r is not None else None for r in (exc.cancellation_reasons or [])]


def run_transaction(tables: Tables, build: Callable[[TransactWrite], None]) -> None:
    """Commit a transaction, retrying (with jitter) while another transaction holds an item.

    Conditional failures are left to the caller, as TransactWriteError.
    """
    for attempt in range(TX_ATTEMPTS):
        try:
            with TransactWrite(connection=tables.connection) as tx:
                build(tx)
            return
        except TransactWriteError as exc:
            if "TransactionConflict" not in _reasons(exc):
                raise
        time.sleep(min(0.5, 0.01 * 2**attempt) * random.random())
    raise DependencyUnavailable("the table is busy; try again", retry_after=1)


def to_order(item: OrderItem) -> Order:
    return Order(
        id=item.pk.removeprefix("ORDER#"),
        customer=item.customer,
        lines=tuple(
            OrderLine(
                product_id=line.product_id,
                name=line.name,
                unit_price=Money(int(line.unit_amount), line.currency),
                quantity=int(line.quantity),
            )
            for line in item.lines
        ),
        total=Money(int(item.total_amount), item.currency),
        status=item.status,
        payment_token=item.payment_token,
        created_at=item.created_at,
        updated_at=item.updated_at,
        correlation_id=item.correlation_id or "",
        trace_context=item.trace_context or "",
        failure_reason=item.failure_reason,
        flagged_from=item.flagged_from,
        actions=tuple(
            OperatorAction(a.action, a.actor, a.at, a.reason, a.to)
            for a in (item.operator_actions or [])
        ),
    )


# What a listing of orders reads: the order's own fields and the index key for the cursor.
LISTED = (
    "pk",
    "sk",
    "gsi2pk",
    "gsi2sk",
    "customer",
    "status",
    "lines",
    "total_amount",
    "currency",
    "payment_token",
    "correlation_id",
    "trace_context",
    "created_at",
    "updated_at",
    "failure_reason",
    "flagged_from",
    "operator_actions",
)


def order_from_raw(raw: dict[str, Any]) -> Order:
    """`to_order` for an item as DynamoDB answers it (attribute values typed S, N, L, M)."""

    def text(name: str) -> str | None:
        value = raw.get(name)
        return None if value is None or "NULL" in value else str(value["S"])

    def fields(value: dict[str, Any]) -> dict[str, Any]:
        return {k: next(iter(v.values())) for k, v in value["M"].items()}

    lines = [fields(line) for line in raw["lines"]["L"]]
    actions = [fields(a) for a in (raw.get("operator_actions") or {}).get("L", [])]
    return Order(
        id=raw["pk"]["S"].removeprefix("ORDER#"),
        customer=raw["customer"]["S"],
        lines=tuple(
            OrderLine(
                product_id=line["product_id"],
                name=line["name"],
                unit_price=Money(int(line["unit_amount"]), line["currency"]),
                quantity=int(line["quantity"]),
            )
            for line in lines
        ),
        total=Money(int(raw["total_amount"]["N"]), raw["currency"]["S"]),
        status=raw["status"]["S"],
        payment_token=raw["payment_token"]["S"],
        created_at=raw["created_at"]["S"],
        updated_at=raw["updated_at"]["S"],
        correlation_id=text("correlation_id") or "",
        trace_context=text("trace_context") or "",
        failure_reason=text("failure_reason"),
        flagged_from=text("flagged_from"),
        actions=tuple(
            OperatorAction(a["action"], a["actor"], a["at"], a["reason"], a["to"]) for a in actions
        ),
    )


def _action_attributes(order: Order) -> list[ActionAttribute]:
    return [
        ActionAttribute(action=a.action, actor=a.actor, at=a.at, reason=a.reason, to=a.to)
        for a in order.actions
    ]


def _to_record(customer: str, key: str, item: IdempotencyItem) -> IdempotencyRecord:
    return IdempotencyRecord(
        customer=customer,
        key=key,
        fingerprint=item.fingerprint,
        status_code=int(item.status_code),
        response=json.loads(item.response),
        expires_at=int(item.expires_at or 0),
    )


def _payment(charge: Charge, now: str) -> PaymentAttribute:
    return PaymentAttribute(
        charge_id=charge.id,
        amount=charge.amount.amount,
        currency=charge.amount.currency,
        status=charge.status,
        created_at=now,
        refunded_at=now if charge.status == REFUNDED else None,
    )


class DynamoOrderRepository:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    # ----------------------------------------------------------------- reads

    @translate_errors
    def get(self, order_id: str) -> Order | None:
        try:
            return to_order(self._t.Order.get(*order_key(order_id), consistent_read=True))
        except DoesNotExist:
            return None

    @translate_errors
    def get_many_products(
        self, product_ids: Sequence[str], *, consistent: bool = True
    ) -> dict[str, Product]:
        keys = [product_key(pid) for pid in dict.fromkeys(product_ids)]
        found = self._t.Product.batch_get(keys, consistent_read=consistent)
        return {p.id: p for p in (to_product(item) for item in found)}

    @translate_errors
    def get_idempotency(self, customer: str, key: str) -> IdempotencyRecord | None:
        try:
            item = self._t.Idempotency.get(
                *self._idempotency_key(customer, key), consistent_read=True
            )
        except DoesNotExist:
            return None
        return _to_record(customer, key, item)

    @staticmethod
    def _idempotency_key(customer: str, key: str) -> tuple[str, str]:
        return f"IDEMPOTENCY#{key_part(customer)}#{key_part(key)}", "IDEMPOTENCY"

    @translate_errors
    def get_charge(self, order_id: str) -> Charge | None:
        try:
            order = self._t.Order.get(*order_key(order_id), consistent_read=True)
        except DoesNotExist:
            return None
        paid: PaymentAttribute | PaymentItem | None = order.payment
        if paid is None:
            try:  # an order paid before the payment moved into the order item
                paid = self._t.Payment.get(f"ORDER#{order_id}", "PAYMENT", consistent_read=True)
            except DoesNotExist:
                return None
        return Charge(paid.charge_id, order_id, Money(int(paid.amount), paid.currency), paid.status)

    @translate_errors
    def list_for_customer(self, customer: str, limit: int, cursor: str | None) -> Page[Order]:
        """One Query of the customer's index partition, newest first, for the listed
        attributes only (not the payment, shipment and notifications each order carries),
        read straight from DynamoDB's answer: building pynamodb models for a page costs more
        than the query itself."""
        keys = {"pk", "sk", "gsi2pk", "gsi2sk"}
        hash_key = f"CUSTOMER#{customer}"
        start = decode_cursor(cursor, keys)
        if start is not None and start["gsi2pk"]["S"] != hash_key:
            raise InvalidRequest("cursor belongs to another listing", field="cursor")
        found: list[dict[str, Any]] = []
        while len(found) <= limit:  # one more than a page: is there a next one?
            answer = self._t.connection.query(
                self._t.table_name,
                hash_key,
                index_name="gsi2",
                scan_index_forward=False,
                limit=limit + 1 - len(found),
                exclusive_start_key=start,
                attributes_to_get=list(LISTED),
            )
            found += answer.get("Items", [])
            start = answer.get("LastEvaluatedKey")
            if not start:
                break
        page, more = found[:limit], len(found) > limit
        next_key = {k: page[-1][k] for k in keys} if more else None
        return Page(items=[order_from_raw(i) for i in page], next_cursor=encode_cursor(next_key))

    @translate_errors
    def open_orders(self, updated_before: str, limit: int) -> list[Order]:
        model = self._t.Order
        out: list[Order] = []
        for shard in range(OPEN_SHARDS):
            for item in model.query(
                f"ORDERS#OPEN#{shard}",
                model.gsi1sk < updated_before,
                index_name="gsi1",
                limit=limit,
            ):
                out.append(to_order(item))
        out.sort(key=lambda o: o.updated_at)
        return out[:limit]

    # ---------------------------------------------------------------- writes

    def _order_item(self, order: Order) -> OrderItem:
        item: OrderItem = self._t.Order(
            *order_key(order.id),
            customer=order.customer,
            status=order.status,
            lines=[
                LineAttribute(
                    product_id=line.product_id,
                    name=line.name,
                    unit_amount=line.unit_price.amount,
                    currency=line.unit_price.currency,
                    quantity=line.quantity,
                )
                for line in order.lines
            ],
            total_amount=order.total.amount,
            currency=order.total.currency,
            payment_token=order.payment_token,
            correlation_id=order.correlation_id,
            # the request's, stamped here so that the domain never handles trace context
            trace_context=order.trace_context or tracing.inject().get(tracing.TRACEPARENT),
            created_at=order.created_at,
            updated_at=order.updated_at,
            republish_count=0,
            gsi2pk=f"CUSTOMER#{order.customer}",
            gsi2sk=f"{order.created_at}#{order.id}",
        )
        partition = index_partition(order)
        if partition is not None:
            item.gsi1pk = partition
            item.gsi1sk = f"{order.updated_at}#{order.id}"
        return item

    @translate_errors
    def place(
        self, order: Order, product_versions: dict[str, int], record: IdempotencyRecord
    ) -> IdempotencyRecord:
        t = self._t
        idem = t.Idempotency(
            *self._idempotency_key(record.customer, record.key),
            fingerprint=record.fingerprint,
            status_code=record.status_code,
            response=json.dumps(record.response, separators=(",", ":")),
            expires_at=record.expires_at,
        )

        def build(tx: TransactWrite) -> None:
            # pynamodb sends puts before updates: reasons[0] is the order, [1] the key.
            # No read of the key first: its condition fails on a retry, and the failure
            # carries the stored record (ALL_OLD), so only a retry pays for reading it.
            tx.save(self._order_item(order), condition=t.Order.pk.does_not_exist())
            tx.save(idem, condition=t.Idempotency.pk.does_not_exist(), return_values=ALL_OLD)
            for line in order.lines:
                p = t.Product(*product_key(line.product_id))
                tx.update(
                    p,
                    actions=[t.Product.stock.set(t.Product.stock - line.quantity)],
                    condition=(t.Product.stock >= line.quantity)
                    & (t.Product.status == ACTIVE)
                    & (t.Product.version == product_versions[line.product_id]),
                    add_version_condition=False,
                )

        try:
            run_transaction(t, build)
        except TransactWriteError as exc:
            reasons = _reasons(exc)
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                stored = self._stored_record(record, exc)
                if stored is not None:
                    return stored
            failed = [
                line
                for line, reason in zip(order.lines, reasons[2:], strict=False)
                if reason == "ConditionalCheckFailed"
            ]
            if not failed:
                raise
            self._explain_stock_failure(failed)
        return record

    def _stored_record(
        self, record: IdempotencyRecord, exc: TransactWriteError
    ) -> IdempotencyRecord | None:
        """The record a failed idempotency condition found, from the failure itself."""
        raw = (exc.cancellation_reasons or [None, None])[1]
        if raw is not None and raw.raw_item:
            item = self._t.Idempotency.from_raw_data(raw.raw_item)
            return _to_record(record.customer, record.key, item)
        return self.get_idempotency(record.customer, record.key)

    def _explain_stock_failure(self, failed: list[OrderLine]) -> None:
        current = self.get_many_products([line.product_id for line in failed])
        short = [
            {
                "productId": line.product_id,
                "requested": line.quantity,
                "available": current[line.product_id].stock
                if line.product_id in current and current[line.product_id].active
                else 0,
            }
            for line in failed
            if line.product_id not in current
            or not current[line.product_id].active
            or current[line.product_id].stock < line.quantity
        ]
        if short:
            raise OutOfStock("not enough stock for some lines", lines=short)
        raise VersionConflict("a product changed while the order was placed")

    @translate_errors
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
        t = self._t
        order_model = t.Order
        actions = self._changes(current, new) + self._records(new, charge, shipment, notification)
        condition = order_model.status == current.status
        if not release_stock:
            # The order alone (its records live in it): one conditional UpdateItem.
            try:
                order_model(*order_key(current.id)).update(
                    actions=actions, condition=condition, add_version_condition=False
                )
            except UpdateError as exc:
                if is_conditional_failure(exc):
                    return False
                raise
            return True

        def build(tx: TransactWrite) -> None:
            tx.update(
                order_model(*order_key(current.id)),
                actions=actions,
                condition=condition,
                add_version_condition=False,
            )
            for line in current.lines:
                tx.update(
                    t.Product(*product_key(line.product_id)),
                    actions=[t.Product.stock.set(t.Product.stock + line.quantity)],
                    condition=t.Product.pk.exists(),
                    add_version_condition=False,
                )

        try:
            run_transaction(t, build)
        except TransactWriteError as exc:
            if _reasons(exc)[:1] == ["ConditionalCheckFailed"]:
                return False
            raise
        return True

    def _changes(self, current: Order, new: Order) -> list[Any]:
        """The update actions that take the stored order from `current` to `new`."""
        order_model = self._t.Order
        actions: list[Any] = [
            order_model.status.set(new.status),
            order_model.updated_at.set(new.updated_at),
        ]
        if new.failure_reason:
            actions.append(order_model.failure_reason.set(new.failure_reason))
        elif current.failure_reason:
            actions.append(order_model.failure_reason.remove())
        if new.flagged_from:
            actions.append(order_model.flagged_from.set(new.flagged_from))
        if new.actions != current.actions:
            actions.append(order_model.operator_actions.set(_action_attributes(new)))
        if new.status in OPEN_STATES and current.status not in OPEN_STATES:
            actions.append(order_model.republish_count.set(0))  # back in the pipeline
        partition = index_partition(new)
        if partition is not None:
            actions += [
                order_model.gsi1pk.set(partition),
                order_model.gsi1sk.set(f"{new.updated_at}#{new.id}"),
            ]
        else:
            actions += [order_model.gsi1pk.remove(), order_model.gsi1sk.remove()]
        return actions

    def _records(
        self,
        order: Order,
        charge: Charge | None,
        shipment: Shipment | None,
        notification: Notification | None,
    ) -> list[Any]:
        """The update actions that write a transition's records into the order item."""
        model = self._t.Order
        out: list[Any] = []
        if charge is not None:
            out.append(model.payment.set(_payment(charge, order.updated_at)))
        if shipment is not None:
            out.append(
                model.shipment.set(
                    ShipmentAttribute(
                        carrier=shipment.carrier,
                        tracking_number=shipment.tracking_number,
                        created_at=shipment.created_at,
                    )
                )
            )
        if notification is not None:
            note = NotificationAttribute(
                kind=notification.kind,
                message=notification.message,
                created_at=notification.created_at,
            )
            out.append(model.notifications.set((model.notifications | []).append([note])))
        return out

    @translate_errors
    def mark_refunded(self, order_id: str, now: str) -> None:
        charge = self.get_charge(order_id)
        if charge is not None:  # no payment record: nothing to mark
            self.record_charge(order_id, replace(charge, status=REFUNDED), now)

    @translate_errors
    def record_charge(self, order_id: str, charge: Charge, now: str) -> None:
        model = self._t.Order
        try:
            model(*order_key(order_id)).update(
                actions=[model.payment.set(_payment(charge, now))],
                condition=model.pk.exists(),  # never a stub order
                add_version_condition=False,
            )
        except UpdateError as exc:  # no such order: no record to agree with the ledger
            if not is_conditional_failure(exc):
                raise

    @translate_errors
    def list_by_state(self, state: str, limit: int, cursor: str | None) -> Page[Order]:
        """Each partition of the state queried from the cursor on, the pages merged by the
        index's sort key (the time of the last change, then the id)."""
        model = self._t.Order
        after = cursors.decode(cursor, {"state", "after"}) if cursor else None
        if after is not None and after["state"] != state:
            raise InvalidRequest("cursor belongs to another listing", field="cursor")
        found: list[OrderItem] = []
        for partition in index_partitions(state):
            condition = model.gsi1sk > after["after"] if after is not None else None
            found += model.query(
                partition,
                condition,
                index_name="gsi1",
                filter_condition=model.status == state,
                limit=limit + 1,
            )
        found.sort(key=lambda item: str(item.gsi1sk))
        page, more = found[:limit], len(found) > limit
        next_cursor = (
            cursors.encode({"state": state, "after": str(page[-1].gsi1sk)}) if more else None
        )
        return Page(items=[to_order(i) for i in page], next_cursor=next_cursor)

    @translate_errors
    def record_republish(self, order: Order, now: str) -> int | None:
        model = self._t.Order
        item = model(*order_key(order.id))
        try:
            item.update(
                actions=[
                    model.republish_count.add(1),
                    model.gsi1sk.set(f"{now}#{order.id}"),
                ],
                condition=model.status == order.status,
                add_version_condition=False,
            )
        except UpdateError as exc:
            if is_conditional_failure(exc):
                return None  # it moved on meanwhile
            raise
        return int(item.republish_count)
