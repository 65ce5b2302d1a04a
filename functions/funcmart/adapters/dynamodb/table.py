"""The single table's item types as pynamodb models, bound to a table at cold start.

`bind(...)` builds model classes for one table name and endpoint, so nothing global is
mutated and tests can bind the same models to DynamoDB Local, moto or AWS side by side.
Every model of one binding, and the transactions, share one pynamodb Connection and so one
botocore client, built by `bind` itself: left to itself pynamodb gives each model class its
own botocore session and client, which a cold start pays for once per model (tens of
milliseconds each, most of it re-reading botocore's JSON service descriptions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pynamodb.attributes import ListAttribute, MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection, TableConnection
from pynamodb.exceptions import TableError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from funcmart.adapters import cursors

if TYPE_CHECKING:
    from botocore.session import Session


def key_part(value: str) -> str:
    """One caller-given part of a key that joins several with "#": "%" and "#" percent-encoded,
    so no two different tuples of parts make one key (customer "a#b" with key "c" and customer
    "a" with key "b#c" are two items). A part with neither character is unchanged."""
    return value.replace("%", "%25").replace("#", "%23")


# Requests to the table: short timeouts and few retries, as a function's own timeout is short.
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5
MAX_RETRY_ATTEMPTS = 2
# Connections kept open to the table: one for each thread that calls it at once (a batch's
# BATCH_CONCURRENCY records, several batches where a host runs them at once, request
# threads). Past the pool's size, every call opens a connection and throws it away after.
# Only connections in use are ever opened, so a larger pool costs nothing where fewer run.
MAX_POOL_CONNECTIONS = 128


class _Gsi1(GlobalSecondaryIndex["_Item"]):
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class _Gsi2(GlobalSecondaryIndex["_Item"]):
    class Meta:
        index_name = "gsi2"
        projection = AllProjection()

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


class _Item(Model):
    """Key attributes every item of the table has."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    # Set on the items an index lists; absent (sparse) otherwise.
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi2pk = UnicodeAttribute(null=True)
    gsi2sk = UnicodeAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # epoch seconds; the table's TTL attribute
    gsi1 = _Gsi1()
    gsi2 = _Gsi2()


class ProductItem(_Item):
    """PRODUCT#<id> / PRODUCT."""

    name = UnicodeAttribute()
    description = UnicodeAttribute(default="")
    category = UnicodeAttribute()
    price_amount = NumberAttribute()
    currency = UnicodeAttribute()
    stock = NumberAttribute()
    status = UnicodeAttribute()
    version = NumberAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()


class LineAttribute(MapAttribute[str, Any]):
    product_id = UnicodeAttribute()
    name = UnicodeAttribute()
    unit_amount = NumberAttribute()
    currency = UnicodeAttribute()
    quantity = NumberAttribute()


class ActionAttribute(MapAttribute[str, Any]):
    """One operator action on an order: who, when, what, why, and the state it led to."""

    action = UnicodeAttribute()
    actor = UnicodeAttribute()
    at = UnicodeAttribute()
    reason = UnicodeAttribute()
    to = UnicodeAttribute()


class PaymentAttribute(MapAttribute[str, Any]):
    """The order's charge as the payment ledger has it (captured or refunded)."""

    charge_id = UnicodeAttribute()
    amount = NumberAttribute()
    currency = UnicodeAttribute()
    status = UnicodeAttribute()  # CAPTURED or REFUNDED
    created_at = UnicodeAttribute()
    refunded_at = UnicodeAttribute(null=True)


class ShipmentAttribute(MapAttribute[str, Any]):
    carrier = UnicodeAttribute()
    tracking_number = UnicodeAttribute()
    created_at = UnicodeAttribute()


class NotificationAttribute(MapAttribute[str, Any]):
    """What was sent to the order's customer."""

    kind = UnicodeAttribute()
    message = UnicodeAttribute()
    created_at = UnicodeAttribute()


class OrderItem(_Item):
    """ORDER#<id> / ORDER. In gsi1 while PENDING or PAID (ORDERS#OPEN#<shard>) or waiting
    for an operator (ORDERS#ATTENTION), by last change; in gsi2 (CUSTOMER#<sub>,
    created_at) always.

    The payment, the shipment and the notifications live in the order item itself: a state
    change and the record it makes are then one conditional UpdateItem (1 write unit per KB),
    not a transaction over several items (2 per KB per item)."""

    customer = UnicodeAttribute()
    status = UnicodeAttribute()
    lines = ListAttribute(of=LineAttribute)
    total_amount = NumberAttribute()
    currency = UnicodeAttribute()
    payment_token = UnicodeAttribute()
    correlation_id = UnicodeAttribute(default="")
    # The traceparent of the request that placed it (tracing on): the reconciler's re-published
    # events continue the order's trace.
    trace_context = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    failure_reason = UnicodeAttribute(null=True)
    republish_count = NumberAttribute(default=0)
    # The state it was in when flagged NEEDS_ATTENTION, and what operators did since.
    flagged_from = UnicodeAttribute(null=True)
    operator_actions = ListAttribute(of=ActionAttribute, null=True)
    payment = PaymentAttribute(null=True)
    shipment = ShipmentAttribute(null=True)
    notifications = ListAttribute(of=NotificationAttribute, null=True)


class IdempotencyItem(_Item):
    """IDEMPOTENCY#<customer>#<key> / IDEMPOTENCY: the first answer, replayed to retries.
    Both parts go through `key_part`."""

    fingerprint = UnicodeAttribute()
    status_code = NumberAttribute()
    response = UnicodeAttribute()  # JSON


class PaymentItem(_Item):
    """ORDER#<id> / PAYMENT: the charge that paid the order, as orders paid before the
    payment moved into the order item have it (read, never written)."""

    charge_id = UnicodeAttribute()
    amount = NumberAttribute()
    currency = UnicodeAttribute()
    status = UnicodeAttribute()  # CAPTURED or REFUNDED
    created_at = UnicodeAttribute()
    refunded_at = UnicodeAttribute(null=True)


class SimulatedChargeItem(_Item):
    """PAYSIM#<idempotency key> / CHARGE: the payment simulator's own ledger."""

    charge_id = UnicodeAttribute()
    amount = NumberAttribute()
    currency = UnicodeAttribute()
    token = UnicodeAttribute()
    status = UnicodeAttribute()
    captured_at = UnicodeAttribute()
    refunded_at = UnicodeAttribute(null=True)
    captures = NumberAttribute(default=0)


@dataclass(frozen=True)
class Tables:
    """Model classes bound to one table and endpoint, plus a connection for transactions."""

    table_name: str
    connection: Connection
    Product: type[ProductItem]
    Order: type[OrderItem]
    Idempotency: type[IdempotencyItem]
    Payment: type[PaymentItem]
    SimulatedCharge: type[SimulatedChargeItem]


class SharedConnection(Connection):
    """A pynamodb Connection that creates its client from a given botocore session (one per
    process, shared with the other AWS clients) instead of a new session of its own."""

    def __init__(self, session: Session | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shared_session = session

    @property
    def session(self) -> Session:
        if self._shared_session is None:
            return super().session
        return self._shared_session


def bind(table_name: str, region: str, host: str | None, session: Session | None = None) -> Tables:
    """Model classes for `table_name`, sharing one connection whose client is built now."""
    connection = SharedConnection(
        session,
        region=region,
        host=host,
        connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS,
        read_timeout_seconds=READ_TIMEOUT_SECONDS,
        max_retry_attempts=MAX_RETRY_ATTEMPTS,
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )

    def model(base: type[_Item]) -> Any:
        meta = type(
            "Meta",
            (),
            {
                "table_name": table_name,
                "region": region,
                "host": host,
                "connect_timeout_seconds": CONNECT_TIMEOUT_SECONDS,
                "read_timeout_seconds": READ_TIMEOUT_SECONDS,
                "max_retry_attempts": MAX_RETRY_ATTEMPTS,
            },
        )
        bound: Any = type(base.__name__, (base,), {"Meta": meta, "__module__": __name__})
        # pynamodb's per-model connection, built now (the key schema, no I/O), then pointed
        # at the shared one. Every model has the same keys and indexes: one schema serves all.
        table: TableConnection = bound._get_connection()
        try:
            connection.get_meta_table(table_name)
        except TableError:
            connection.add_meta_table(table.get_meta_table())
        table.connection = connection
        return bound

    tables = Tables(
        table_name=table_name,
        connection=connection,
        Product=model(ProductItem),
        Order=model(OrderItem),
        Idempotency=model(IdempotencyItem),
        Payment=model(PaymentItem),
        SimulatedCharge=model(SimulatedChargeItem),
    )
    connection.client  # noqa: B018 - built at cold start, not by the first request
    return tables


def encode_cursor(last_evaluated_key: dict[str, Any] | None) -> str | None:
    """An opaque, URL-safe page cursor from DynamoDB's LastEvaluatedKey."""
    if not last_evaluated_key:
        return None
    return cursors.encode({k: next(iter(v.values())) for k, v in last_evaluated_key.items()})


def decode_cursor(cursor: str | None, expected_keys: set[str]) -> dict[str, Any] | None:
    """The LastEvaluatedKey a cursor stands for; InvalidRequest for anything we did not issue."""
    if not cursor:
        return None
    return {k: {"S": v} for k, v in cursors.decode(cursor, expected_keys).items()}
